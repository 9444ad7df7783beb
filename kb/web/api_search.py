"""The JSON API's search area: GET and POST /api/v1/search, their request and answer models."""

from __future__ import annotations

import logging
from typing import Literal

from flask import jsonify
from pydantic import Field

from kb.documents import BUSINESS_LINES, TYPES
from kb.errors import QueryError
from kb.history import parse_day
from kb.results import BADGES, CATEGORY_PATTERN, MODES
from kb.web.contract import Area, Body, Model, Query, responses
from kb.web.extensions import searcher
from kb.web.fields import Day, at_most, chars_at_most, matching
from kb.web.searches import log_search

log = logging.getLogger(__name__)
bp = Area(
    "api_search",
    __name__,
    tag="Search",
    description="Hybrid search over the published SOPs, one result per SOP cited by its best section.",
    invalid=QueryError,  # search requests answer 400 for bad fields
)

Mode = Literal[MODES]
BusinessLine = Literal[BUSINESS_LINES]
DocumentType = Literal[TYPES]
CategoryId = matching(CATEGORY_PATTERN, "must be a category or group id, such as payments/duplicate-charge")
K_FIELD = Field(default=None, description="How many SOPs to return (default KB_DEFAULT_K).")
AS_OF_FIELD = Field(default=None, description="Cite the revision of each SOP in force that day.")


class SearchArgs(Query):
    """GET /api/v1/search: the query and its options in the query string."""

    q: chars_at_most("MAX_QUERY_CHARS") = Field(description="What to search for (card numbers are masked first).")
    k: at_most("MAX_K") | None = K_FIELD
    mode: Mode = "hybrid"
    business_line: BusinessLine | None = Field(default=None, description="Only SOPs of this line (and 'all').")
    category: CategoryId | None = Field(default=None, description="A category or group id.")
    type: DocumentType | None = None
    as_of: Day | None = AS_OF_FIELD


class SearchFilters(Body):
    """Filters of a POST search; an empty string or null is no filter."""

    business_line: Literal[(*BUSINESS_LINES, "")] | None = None
    category: matching(f"^$|{CATEGORY_PATTERN}", "must be a category or group id, or empty") | None = None
    type: Literal[(*TYPES, "")] | None = None


class SearchBody(Body):
    """POST /api/v1/search: the query and its options as JSON."""

    query: chars_at_most("MAX_QUERY_CHARS") = Field(description="What to search for (card numbers are masked first).")
    k: at_most("MAX_K") | None = K_FIELD
    mode: Mode = "hybrid"
    filters: SearchFilters | None = None
    as_of: Day | None = AS_OF_FIELD


class SectionRef(Model):
    """A section of an SOP: its heading and its anchor on the SOP's page."""

    heading: str
    anchor: str


class OtherSection(Model):
    """Another section of the same SOP that matched, with its score."""

    heading: str
    anchor: str
    score: float


class SearchHit(Model):
    """One SOP in the results, cited by its best section."""

    sop_id: str
    title: str
    type: str
    business_line: str
    categories: list[str]
    section: SectionRef
    url: str = Field(description="Deep link to the section (on the cited older revision's page with as_of).")
    snippet: str = Field(description="Escaped text; only <mark> and </mark> are markup.")
    score: float
    revision: str | None = Field(description="The commit of the revision cited.")
    other_sections: list[OtherSection]
    in_force_on: str | None = Field(default=None, description="With as_of: the day searched for.")
    effective: str | None = Field(default=None, description="The document's effective date (YYYY-MM-DD).")
    review_by: str | None = Field(default=None, description="The date its owner must review it by.")
    badges: list[Literal[BADGES]] = Field(
        default_factory=list,
        description="recently_updated (effective within KB_RECENT_DAYS), review_overdue (review_by passed), retired.",
    )


class SearchAnswer(Model):
    """The answer to one search."""

    query: str = Field(description="The query as searched: card numbers masked.")
    mode: str
    took_ms: float
    degraded: bool = Field(description="True when the query encoder failed: keyword-only results.")
    results: list[SearchHit]
    search_id: int | None = Field(
        default=None, description="The search log's row for this search, when it was logged (see the search page)."
    )


def _search(query: str, k: int | None, mode: str, filters: dict | None, as_of: str | None):
    day = parse_day(as_of) if as_of is not None else None
    results = searcher().search(query, k, mode, filters, as_of=day)
    log.info(
        "search mode=%s k=%s results=%d took_ms=%.1f degraded=%s query=%r",
        results.mode,
        k,
        len(results.hits),
        results.took_ms,
        results.degraded,
        results.query,
    )
    answer = results.to_dict()
    search_id = log_search(results)
    if search_id is not None:
        answer["search_id"] = search_id
    return jsonify(answer)


@bp.get("/api/v1/search", responses=responses(SearchAnswer))
def search_get(query: SearchArgs):
    """Search with query-string parameters."""
    filters = {key: getattr(query, key) for key in ("business_line", "category", "type") if getattr(query, key)}
    return _search(query.q, query.k, query.mode, filters or None, query.as_of)


@bp.post("/api/v1/search", responses=responses(SearchAnswer))
def search_post(body: SearchBody):
    """Search with a JSON body."""
    filters = {key: value for key, value in body.filters.model_dump().items() if value} if body.filters else None
    return _search(body.query, body.k, body.mode, filters or None, body.as_of)
