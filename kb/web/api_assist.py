"""The JSON API's assist area: POST /api/v1/assist, a whole ticket in, categories, citations and a macro out.

The request and the answer are pydantic models (AssistRequest, AssistAnswer; model names prefixed with the
area, so they stay unique when the API's models name the OpenAPI document's schemas). The request is
validated by hand here, so that every problem (a wrong type, an unknown or missing field, a value out of
range) is reported at once in the one error shape: 400 ``bad_request`` with details {"field": the first,
"problems": [{"field", "message"}, ...]}. The answer is kb.assist's; tests check it against AssistAnswer.
The key scope is "search" (kb/web/api.py ROUTE_SCOPES), the rate limit the search limit (kb/web/limits.py).
"""

from __future__ import annotations

import logging
import re
from typing import Literal

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from kb.documents import BUSINESS_LINES
from kb.errors import QueryError
from kb.web.extensions import assistant

log = logging.getLogger(__name__)
bp = Blueprint("api_assist", __name__)

BusinessLine = Literal[BUSINESS_LINES]  # type: ignore[valid-type]
_SHOULD = re.compile(r"^(Input|String|Value|List|Dictionary|Object) should ")  # pydantic's wording, as kb words it


class AssistRequest(BaseModel):
    """A ticket: its subject and body (either may be empty, not both), optional filters and how many results."""

    model_config = ConfigDict(extra="forbid", strict=True)

    subject: str = Field(description="The ticket's subject line; empty when it has none.")
    body: str = Field(description="The ticket's text. Card numbers are masked before anything reads it.")
    business_line: BusinessLine | None = Field(None, description="Only SOPs of this business line (and of all).")
    category: str | None = Field(
        None,
        pattern=r"^[a-z0-9-]+(/[a-z0-9-]+)?$",
        description="Only SOPs serving this category or group (a filter; it must exist).",
    )
    k: int | None = Field(None, description="How many SOPs (default 5, at most KB_MAX_K).")

    @field_validator("k")
    @classmethod
    def _k_in_range(cls, value: int | None, info: ValidationInfo) -> int | None:
        limit = (info.context or {}).get("max_k", 50)
        if value is not None and not 1 <= value <= limit:
            raise ValueError(f"must be a whole number from 1 to {limit}")
        return value

    @model_validator(mode="after")
    def _has_text(self) -> AssistRequest:
        if not self.subject.strip() and not self.body.strip():
            raise ValueError("the ticket has no text: give a subject, a body or both")
        return self


class AssistCategory(BaseModel):
    """A likely category of the ticket with its calibrated confidence."""

    id: str
    name: str
    confidence: float = Field(ge=0, le=1)


class AssistSection(BaseModel):
    """The cited section of a result."""

    heading: str
    anchor: str


class AssistCitation(BaseModel):
    """What to cite: the SOP, the section's anchor, the revision and a link to the section."""

    sop_id: str
    anchor: str
    revision: str | None
    url: str


class AssistResult(BaseModel):
    """A search result (as GET /api/v1/search answers it) with the section's text and its citation."""

    model_config = ConfigDict(extra="forbid")

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


class AssistMacro(BaseModel):
    """The customer macro to send, from a result that is not stale."""

    sop_id: str
    anchor: str
    heading: str
    text: str


class AssistAnswer(BaseModel):
    """POST /api/v1/assist's answer; reason is present only when the ticket is not answerable."""

    model_config = ConfigDict(extra="forbid")

    categories: list[AssistCategory]
    results: list[AssistResult]
    macro: AssistMacro | None
    answerable: bool
    reason: str | None = None
    redactions: int = Field(ge=0, description="Card numbers masked in the subject and body.")


def problems_of(error: ValidationError) -> list[tuple[str, str]]:
    """(field, message) for each problem pydantic found."""
    found = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "body"
        kind = item["type"]
        message = {"missing": "required", "extra_forbidden": "unknown field"}.get(kind, item["msg"])
        message = _SHOULD.sub("must ", message.removeprefix("Value error, "))
        found.append((field, message))
    return found


@bp.post("/api/v1/assist")
def assist():
    """Answer a ticket {"subject", "body", "business_line"?, "category"?, "k"?} (see kb.assist)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise QueryError("body: must be a JSON object with subject and body", {"field": "body"})
    settings = assistant().settings
    try:
        ticket = AssistRequest.model_validate(body, context={"max_k": settings["MAX_K"]})
    except ValidationError as error:
        problems = problems_of(error)
        raise QueryError(
            "; ".join(f"{field}: {message}" for field, message in problems),
            {"field": problems[0][0], "problems": [{"field": f, "message": m} for f, m in problems]},
        ) from None
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
