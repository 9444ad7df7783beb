"""The JSON API's feedback area: POST /api/v1/feedback ("was this helpful?") and POST /api/v1/sops/<id>/flags
(flag an SOP as outdated), each answering 201 with the record as stored.

Both need a user: an API key with the search scope (kb/web/api.py ROUTE_SCOPES and NEEDS_USER), since the
callers that search (agents, support bots) are the ones that say whether an answer helped; anonymous callers get
401. A request made with a key is recorded as a ``bot``'s, one with a browser session (the SOP page's forms,
later) as a ``person``'s. kb.feedback checks and masks every field; an unknown SOP answers 404, an anchor that
is not a section of the SOP 422. The rate limit is KB_RATE_LIMIT_FEEDBACK per address and per key or user
(kb/web/limits.py).
"""

from __future__ import annotations

from flask import g, jsonify
from pydantic import Field

from kb import feedback, markdown
from kb.documents import ID_PATTERN, MAX_ID_LENGTH
from kb.web import auth
from kb.web.contract import Area, Body, Model, Path, responses
from kb.web.extensions import searcher
from kb.web.fields import matching

bp = Area(
    "api_feedback",
    __name__,
    tag="Feedback",
    description="What agents and bots say about an SOP: whether a section helped, and flags on outdated ones.",
)

SopId = matching(ID_PATTERN.pattern, "must be an SOP id, such as pay-duplicate-charge", maxLength=MAX_ID_LENGTH)
ANCHOR_FIELD = Field(max_length=feedback.MAX_ANCHOR_CHARS, description="A section's anchor on the SOP's page.")


class FeedbackRequest(Body):
    """A "was this helpful?" answer about one section of an SOP."""

    sop_id: SopId
    anchor: str = ANCHOR_FIELD
    helpful: bool
    reason: str | None = Field(
        None, max_length=feedback.MAX_REASON_CHARS, description="Why (optional); card numbers are masked."
    )
    query: str | None = Field(
        None,
        max_length=feedback.MAX_QUERY_CHARS,
        description="The search that led to the SOP (optional); card numbers are masked.",
    )


class FlagRequest(Body):
    """A flag on an SOP (or one of its sections) as outdated, with what is wrong."""

    anchor: str | None = Field(None, max_length=feedback.MAX_ANCHOR_CHARS, description="A section (optional).")
    comment: str = Field(
        min_length=1,
        max_length=feedback.MAX_COMMENT_CHARS,
        description="What is outdated (not blank); card numbers are masked.",
    )


class FlagPath(Path):
    """The SOP flagged."""

    sop_id: str = Field(json_schema_extra={"pattern": ID_PATTERN.pattern, "maxLength": MAX_ID_LENGTH})


class FeedbackRecord(Model):
    """A stored "was this helpful?" answer."""

    id: int
    sop_id: str
    anchor: str | None
    helpful: bool
    reason: str | None = Field(description="Masked.")
    query: str | None = Field(description="Masked.")
    actor: str | None = Field(description="The user's name.")
    actor_kind: str = Field(description="person (a browser session) or bot (an API key).")
    created: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SSZ.")


class FlagRecord(Model):
    """A stored flag."""

    id: int
    sop_id: str
    anchor: str | None
    comment: str = Field(description="Masked.")
    actor: str | None
    actor_kind: str
    created: str
    resolved: str | None = Field(description="When the owner resolved it; null while open.")


def _about(sop_id: str) -> tuple[set[str], list[str]]:
    """The ids of the SOPs served, and the anchors of sop_id's sections (none if it is not served)."""
    documents = searcher().generation.documents
    record = documents.get(sop_id)
    if record is None:
        return set(documents), []
    return set(documents), [h.anchor for h in markdown.headings(markdown.parse(record["body"]))]


def _who() -> dict:
    user = auth.current_user()
    return {"actor": user.name if user else None, "actor_kind": "bot" if g.get("via_key") else "person"}


@bp.post("/api/v1/feedback", responses=responses(FeedbackRecord, 404, 422, status=201))
def feedback_post(body: FeedbackRequest):
    """Say whether a section of an SOP helped (with an optional reason and the query that led there)."""
    known, anchors = _about(body.sop_id)
    with auth.connection() as db:
        record = feedback.record_feedback(
            db,
            sop_id=body.sop_id,
            anchor=body.anchor,
            helpful=body.helpful,
            reason=body.reason,
            query=body.query,
            known_ids=known,
            anchors=anchors,
            **_who(),
        )
    return jsonify(record), 201


@bp.post("/api/v1/sops/<sop_id>/flags", responses=responses(FlagRecord, 404, 422, status=201))
def flag(path: FlagPath, body: FlagRequest):
    """Flag an SOP, or one of its sections, as outdated, saying what is wrong."""
    known, anchors = _about(path.sop_id)
    with auth.connection() as db:
        record = feedback.record_flag(
            db,
            sop_id=path.sop_id,
            anchor=body.anchor,
            comment=body.comment,
            known_ids=known,
            anchors=anchors,
            **_who(),
        )
    return jsonify(record), 201
