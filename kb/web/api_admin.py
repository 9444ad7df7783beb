"""The JSON API's admin area: the audit log; and /healthz for load balancers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import jsonify
from pydantic import Field

from kb import audit
from kb.errors import QueryError
from kb.web import auth
from kb.web.contract import Area, Model, Query, responses
from kb.web.extensions import searcher
from kb.web.fields import checked

bp = Area(
    "api_admin",
    __name__,
    tag="Admin",
    description="The audit log (admins) and the health of the served index.",
    invalid=QueryError,  # audit filters answer 400, as audit.query's own checks do
)

Since = Annotated[str, Field(max_length=40), checked(lambda value: audit.parse_moment("since", value, False))]
Until = Annotated[str, Field(max_length=40), checked(lambda value: audit.parse_moment("until", value, True))]


class AuditArgs(Query):
    """GET /api/v1/audit: filters (each optional), newest first."""

    actor: str | None = Field(default=None, max_length=256)
    action: Literal[audit.ACTIONS] | None = None
    target: str | None = Field(default=None, max_length=512, description="A target, or its prefix up to / or #.")
    outcome: Literal[audit.OUTCOMES] | None = None
    since: Since | None = Field(default=None, description="YYYY-MM-DD, or a date and time (YYYY-MM-DDTHH:MM:SSZ).")
    until: Until | None = Field(default=None, description="YYYY-MM-DD (to the end of that day), or a date and time.")
    limit: int = Field(default=100, ge=1, le=audit.MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=audit.MAX_OFFSET)


class AuditEvent(Model):
    """One audited action."""

    id: int
    at: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SSZ.")
    actor: str | None
    action: str
    target: str | None
    outcome: str
    client: str | None
    details: dict[str, Any] | None


class AuditAnswer(Model):
    """Audit events, newest first."""

    events: list[AuditEvent]
    limit: int
    offset: int


class Health(Model):
    """Whether this process can serve, and what."""

    status: Literal["ok", "degraded", "unavailable"]
    reason: str | None = Field(default=None, description="Why it is degraded or unavailable, and what to run.")
    generation: str | None
    documents: int | None = None
    sections: int | None = None


@bp.get("/healthz", responses=responses(Health, common=(400, 413)) | {503: Health})
def healthz():
    """Health: 200 ok, 200 degraded (with the reason and what to run), 503 unavailable (nothing can serve)."""
    health = searcher().health()
    return jsonify(health), 503 if health["status"] == "unavailable" else 200


@bp.get("/api/v1/audit", responses=responses(AuditAnswer))
def audit_log(query: AuditArgs):
    """The audit log (admins only)."""
    auth.require("admin")
    filters = query.model_dump(exclude={"limit", "offset"})
    with auth.connection() as db:
        rows = audit.query(db, **filters, limit=query.limit, offset=query.offset)
    return jsonify({"events": rows, "limit": query.limit, "offset": query.offset})
