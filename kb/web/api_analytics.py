"""The JSON API's analytics area: GET /api/v1/analytics?since=&until=&owner=, the owners' dashboard as numbers.

Its scope is ``read`` (it only reads; a reporting bot needs no write key), and it needs a user of the author role
or above (kb/web/api.py ROUTE_ROLES): the figures hold what agents searched for and said, which the dashboard
shows to owners, approvers and admins, not to agents or anonymous callers. The period is checked by
kb.analytics.period (YYYY-MM-DD, at most KB_SEARCH_LOG_DAYS days, default the last 30); every text is masked.
"""

from __future__ import annotations

from flask import current_app, jsonify
from pydantic import Field

from kb import analytics
from kb.web import auth
from kb.web.contract import Area, Day, Model, Query, responses
from kb.web.extensions import searcher

bp = Area(
    "api_analytics",
    __name__,
    tag="Analytics",
    description="The owners' dashboard as numbers: searches, content gaps, feedback, flags, reviews, redactions.",
)


class AnalyticsArgs(Query):
    """The period (UTC days, both included) and an optional owner team for the inbox parts."""

    since: Day | None = Field(default=None, description="YYYY-MM-DD; default 29 days before until.")
    until: Day | None = Field(default=None, description="YYYY-MM-DD, today or earlier; default today.")
    owner: str | None = Field(
        default=None,
        max_length=analytics.MAX_OWNER_CHARS,
        description="An owner team (front matter `owner`): unhelpful, flags and review_due only for its SOPs.",
    )


class AnalyticsPeriod(Model):
    """The period the figures cover."""

    since: str
    until: str


class SearchDay(Model):
    """Searches on one UTC day, by who searched."""

    day: str
    person: int
    bot: int
    anonymous: int
    total: int


class TopQuery(Model):
    """A query (normalised: case-folded, whitespace collapsed; masked) and how often it was searched."""

    query: str
    count: int
    person: int
    bot: int
    anonymous: int


class CountedQuery(Model):
    """A query (normalised, masked), how often, and when last (UTC)."""

    query: str
    count: int
    last: str


class GapExample(Model):
    """One query of a content gap and its volume."""

    query: str
    count: int


class NearestCategory(Model):
    """The taxonomy category whose phrasing is closest to the group (cosine)."""

    id: str
    name: str
    similarity: float


class ContentGap(Model):
    """Queries with no good answer that mean the same thing."""

    count: int = Field(description="Searches and ratings in the group.")
    queries: int = Field(description="Distinct queries in the group.")
    examples: list[GapExample]
    sources: dict[str, int] = Field(description="zero_results, no_click, unhelpful: how many of each.")
    category: NearestCategory | None


class UnhelpfulReason(Model):
    """A "not helpful" answer with a reason or a query."""

    anchor: str | None
    reason: str | None
    query: str | None
    created: str


class UnhelpfulSop(Model):
    """An SOP rated not helpful in the period."""

    sop_id: str
    title: str | None
    owner: str | None
    unhelpful: int
    helpful: int
    reasons: list[UnhelpfulReason]


class OpenFlag(Model):
    """An open flag's comment."""

    id: int
    anchor: str | None
    comment: str
    actor: str | None
    created: str


class FlaggedSop(Model):
    """An SOP with open flags or flags raised in the period."""

    sop_id: str
    title: str | None
    owner: str | None
    open: int = Field(description="Open flags, whenever raised.")
    raised: int = Field(description="Flags raised in the period.")
    comments: list[OpenFlag]


class ReviewDueDocument(Model):
    """A document whose review date has passed or falls in the next 30 days."""

    id: str
    title: str
    type: str
    owner: str
    review_by: str
    overdue: bool
    days_left: int


class RedactionDay(Model):
    """Masks in the texts stored on one UTC day, by kind."""

    day: str
    card: int
    cvv: int
    expiry: int
    total: int


class Analytics(Model):
    """The dashboard's figures for a period."""

    period: AnalyticsPeriod
    owner: str | None
    searches_per_day: list[SearchDay]
    top_queries: list[TopQuery]
    zero_result_queries: list[CountedQuery]
    no_click_queries: list[CountedQuery]
    content_gaps: list[ContentGap]
    unhelpful: list[UnhelpfulSop]
    flags: list[FlaggedSop]
    review_due: list[ReviewDueDocument]
    redactions_per_day: list[RedactionDay]


@bp.get("/api/v1/analytics", responses=responses(Analytics, 422))
def analytics_get(query: AnalyticsArgs):
    """The dashboard's figures for a period (authors, approvers and admins)."""
    when = analytics.period(query.since, query.until, current_app.config["KB"]["SEARCH_LOG_DAYS"])
    owner = analytics.check_owner(query.owner)
    with auth.connection() as db:
        return jsonify(analytics.analytics(db, searcher(), when, owner))
