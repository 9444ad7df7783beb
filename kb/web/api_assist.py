"""The JSON API's assist area: POST /api/v1/assist, a whole ticket in, categories, citations and a macro out.

The request and answer models follow kb/web/contract.py: the request is validated before the view (every
problem at once, 400 ``bad_request`` like search, in the one error shape), the answer model documents
kb.assist's answer in /api/v1/openapi.json and the schemathesis test checks every answer against it.
Checks beyond the schema answer 400 from kb.assist: a ticket with no text, subject and body together past
KB_MAX_REQUEST_BYTES characters, a category that does not exist. The key scope is "search"
(kb/web/api.py ROUTE_SCOPES), the rate limit the search limit (kb/web/limits.py).
"""

from __future__ import annotations

import logging

from flask import jsonify
from pydantic import Field, model_validator

from kb.assist import DEFAULT_RESULTS
from kb.errors import QueryError
from kb.web.api_search import BusinessLine, CategoryId, SearchHit
from kb.web.contract import Area, Body, Model, responses
from kb.web.extensions import assistant
from kb.web.fields import at_most
from kb.web.searches import log_query

log = logging.getLogger(__name__)
bp = Area(
    "api_assist",
    __name__,
    tag="Assist",
    description="A whole ticket in: its likely categories, the SOP sections to cite, a macro, and whether kb "
    "knows the answer.",
    invalid=QueryError,  # like search: bad fields answer 400
)


class AssistRequest(Body):
    """A ticket: its subject and body (either may be empty, not both), optional filters and how many results."""

    subject: str = Field(description="The ticket's subject line; empty when it has none.")
    body: str = Field(
        description="The ticket's text. Card numbers are masked before anything reads it; the subject and the "
        "start of the body (KB_MAX_QUERY_CHARS characters) are searched and classified."
    )
    business_line: BusinessLine | None = Field(
        default=None, description="Only SOPs of this business line (and of 'all')."
    )
    category: CategoryId | None = Field(
        default=None, description="Only SOPs serving this category or group (a filter); it must exist."
    )
    k: at_most("MAX_K") | None = Field(default=None, description=f"How many SOPs (default {DEFAULT_RESULTS}).")

    @model_validator(mode="after")
    def _has_text(self) -> AssistRequest:
        if not self.subject.strip() and not self.body.strip():
            raise ValueError("the ticket has no text: give a subject, a body or both")
        return self


class AssistCategory(Model):
    """A likely category of the ticket with its calibrated confidence."""

    id: str
    name: str
    confidence: float = Field(ge=0, le=1, description="Calibrated on held-out phrasings; they sum to at most 1.")


class AssistCitation(Model):
    """What to cite: the SOP, the section's anchor, the revision and a link to the section."""

    sop_id: str
    anchor: str
    revision: str | None
    url: str


class AssistResult(SearchHit):
    """A search result (as /api/v1/search answers it) with the section's text and its citation."""

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
    """What kb makes of a ticket; reason is present only when it is not answerable."""

    categories: list[AssistCategory] = Field(description="The classifier's three likeliest, best first.")
    results: list[AssistResult]
    macro: AssistMacro | None = Field(description="Only when the ticket is answerable.")
    answerable: bool = Field(description="False when neither the classifier nor search is confident.")
    reason: str | None = Field(default=None, description="Why the ticket is not answerable.")
    redactions: int = Field(ge=0, description="Card numbers masked in the subject and body.")


@bp.post("/api/v1/assist", responses=responses(AssistAnswer))
def assist(body: AssistRequest):
    """Answer a whole ticket: categories, cited SOP sections, a macro, and whether kb knows.

    A named category filters the results; business_line too. See the README's "Agent assist".
    """
    assessment = assistant().assess(
        subject=body.subject, body=body.body, business_line=body.business_line, category=body.category, k=body.k
    )
    answer = assessment.to_dict()
    top = answer["results"][0]["sop_id"] if answer["results"] else None
    log_query(assessment.query, len(answer["results"]), top, "hybrid", "assist")
    log.info(
        "assist results=%d answerable=%s redactions=%d category=%s",
        len(answer["results"]),
        answer["answerable"],
        answer["redactions"],
        answer["categories"][0]["id"] if answer["categories"] else None,
    )
    return jsonify(answer)
