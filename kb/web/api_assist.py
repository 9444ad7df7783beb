"""The JSON API's assist area: POST /api/v1/assist, a whole ticket in, categories, citations and a macro out.

The request and the answer are pydantic models in the API's contract (kb/web/contract.py): every problem (a
wrong type, an unknown or missing field, a value out of range) is reported at once in the one error shape,
400 ``bad_request`` with details {"field": the first, "problems": [{"field", "message"}, ...]}. The answer is
kb.assist's, documented by AssistAnswer (which the MCP server's assist_ticket tool also answers). The key
scope is "search" (kb/web/api.py ROUTE_SCOPES), the rate limit the search limit (kb/web/limits.py).
"""

from __future__ import annotations

import logging
from typing import Literal

from flask import jsonify
from pydantic import Field, model_validator

from kb.documents import BUSINESS_LINES
from kb.errors import QueryError
from kb.results import CATEGORY_PATTERN
from kb.web.contract import Area, Body, Model, responses
from kb.web.extensions import assistant
from kb.web.fields import at_most, matching

log = logging.getLogger(__name__)
bp = Area(
    "api_assist",
    __name__,
    tag="Assist",
    description="A whole ticket in: its likely categories, the SOP sections to cite, the macro to send, and "
    "whether kb has a confident answer at all.",
    invalid=QueryError,  # like search: bad fields answer 400
)

BusinessLine = Literal[BUSINESS_LINES]  # type: ignore[valid-type]


class AssistRequest(Body):
    """A ticket: its subject and body (either may be empty, not both), optional filters and how many results.

    The body may be as long as a request may be (KB_MAX_REQUEST_BYTES); kb.assist reads its start.
    """

    subject: str = Field(description="The ticket's subject line; empty when it has none.")
    body: str = Field(description="The ticket's text. Card numbers are masked before anything reads it.")
    business_line: BusinessLine | None = Field(None, description="Only SOPs of this business line (and of all).")
    category: matching(CATEGORY_PATTERN, "must be a category or group id, such as payments/duplicate-charge") | None = (
        Field(None, description="Only SOPs serving this category or group (a filter; it must exist).")
    )
    k: at_most("MAX_K") | None = Field(None, description="How many SOPs (default 5, at most KB_MAX_K).")

    @model_validator(mode="after")
    def _has_text(self) -> AssistRequest:
        if not self.subject.strip() and not self.body.strip():
            raise ValueError("the ticket has no text: give a subject, a body or both")
        return self


class AssistCategory(Model):
    """A likely category of the ticket with its calibrated confidence."""

    id: str
    name: str
    confidence: float = Field(ge=0, le=1)


class AssistSection(Model):
    """The cited section of a result."""

    heading: str
    anchor: str


class AssistCitation(Model):
    """What to cite: the SOP, the section's anchor, the revision and a link to the section."""

    sop_id: str
    anchor: str
    revision: str | None
    url: str


class AssistResult(Model):
    """A search result (as GET /api/v1/search answers it) with the section's text and its citation."""

    sop_id: str
    title: str
    type: str
    business_line: str
    categories: list[str]
    section: AssistSection
    url: str
    snippet: str
    score: float
    revision: str | None
    other_sections: list[dict]
    text: str = Field(description="The section as plain text, shared values resolved.")
    citation: AssistCitation
    stale: bool = Field(description="The SOP is past its review_by date; it never supplies the macro.")


class AssistMacro(Model):
    """The customer macro to send, from a result that is not stale."""

    sop_id: str
    anchor: str
    heading: str
    text: str


class AssistAnswer(Model):
    """POST /api/v1/assist's answer; reason is present only when the ticket is not answerable."""

    categories: list[AssistCategory]
    results: list[AssistResult]
    macro: AssistMacro | None
    answerable: bool
    reason: str | None = None
    redactions: int = Field(ge=0, description="Card numbers masked in the subject and body.")


@bp.post("/api/v1/assist", responses=responses(AssistAnswer, 404))
def assist(body: AssistRequest):
    """Answer a whole ticket: likely categories, the sections to cite, the macro, and whether kb is confident.

    `answerable` is false, with a `reason`, when neither the category classifier nor search is confident;
    results from SOPs past their review date carry `stale` and never supply the macro (see kb.assist).
    """
    ticket = body
    answer = assistant().assist(
        subject=ticket.subject,
        body=ticket.body,
        business_line=ticket.business_line,
        category=ticket.category,
        k=ticket.k,
    )
    log.info(
        "assist results=%d answerable=%s redactions=%d categories=%s",
        len(answer["results"]),
        answer["answerable"],
        answer["redactions"],
        [c["id"] for c in answer["categories"][:1]],
    )
    return jsonify(answer)
