"""What a search request may be and what it answers: the request checks, Hit and SearchResults."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from kb.documents import BUSINESS_LINES, TYPES
from kb.errors import QueryError
from kb.indexing.filters import Filters

MODES = ("hybrid", "keyword", "semantic")
CATEGORY_PATTERN = r"^[a-z0-9-]+(/[a-z0-9-]+)?$"  # a category or group id, as a filter names it
_CATEGORY = re.compile(CATEGORY_PATTERN)
BADGES = ("recently_updated", "review_overdue", "retired")  # in this order on a result


def badges(record: dict, today: dt.date, recent_days: int) -> tuple[str, ...]:
    """A document's badges on a result: recently updated (effective within recent_days before today, or a
    ``revised`` date of its last revision there when the record has one), review overdue (review_by before
    today) and retired."""
    found = []
    dates = [record.get("effective"), record.get("revised")]
    if any(d and 0 <= (today - dt.date.fromisoformat(d[:10])).days <= recent_days for d in dates):
        found.append("recently_updated")
    if record.get("review_by") and dt.date.fromisoformat(record["review_by"]) < today:
        found.append("review_overdue")
    if record.get("status") == "retired":
        found.append("retired")
    return tuple(found)


@dataclass(frozen=True)
class Hit:
    """One SOP in the results, cited by its best section."""

    sop_id: str
    title: str
    type: str
    business_line: str
    categories: tuple[str, ...]
    heading: str
    anchor: str
    snippet: str
    score: float
    revision: str | None
    others: tuple[dict, ...] = ()
    in_force: str | None = None  # with as_of: the date searched for, when an older revision is cited
    effective: str | None = None  # the document's effective date, YYYY-MM-DD
    review_by: str | None = None
    badges: tuple[str, ...] = ()  # of BADGES, see badges()

    @property
    def url(self) -> str:
        """Deep link to the section on the SOP page (on the cited older revision's page with as_of)."""
        if self.in_force:
            return f"/sops/{self.sop_id}/revisions/{self.revision}#{self.anchor}"
        return f"/sops/{self.sop_id}#{self.anchor}"

    def to_dict(self) -> dict:
        """The API's result shape."""
        return {
            "sop_id": self.sop_id,
            "title": self.title,
            "type": self.type,
            "business_line": self.business_line,
            "categories": list(self.categories),
            "section": {"heading": self.heading, "anchor": self.anchor},
            "url": self.url,
            "snippet": self.snippet,
            "score": round(self.score, 6),
            "revision": self.revision,
            "other_sections": list(self.others),
            "effective": self.effective,
            "review_by": self.review_by,
            "badges": list(self.badges),
            **({"in_force_on": self.in_force} if self.in_force else {}),
        }


@dataclass(frozen=True)
class SearchResults:
    """The answer to one search."""

    query: str  # as redacted
    mode: str
    took_ms: float
    hits: tuple[Hit, ...] = field(default_factory=tuple)
    degraded: bool = False  # the query encoder failed: keyword-only results

    def to_dict(self) -> dict:
        """The API's response shape."""
        return {
            "query": self.query,
            "mode": self.mode,
            "took_ms": round(self.took_ms, 2),
            "degraded": self.degraded,
            "results": [h.to_dict() for h in self.hits],
        }


def validate_request(
    query: object, k: object, mode: object, filters: dict | None, max_chars: int, max_k: int
) -> tuple[str, int, str, Filters | None]:
    """Check a search request; raise QueryError naming the field and the problem."""
    if not isinstance(query, str) or not query.strip():
        raise QueryError("query: must be a non-empty string", {"field": "query"})
    if len(query) > max_chars:
        raise QueryError(f"query: longer than {max_chars} characters ({len(query)})", {"field": "query"})
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_k:
        raise QueryError(f"k: must be a whole number from 1 to {max_k}", {"field": "k"})
    if mode not in MODES:
        raise QueryError(f"mode: must be one of {', '.join(MODES)}", {"field": "mode"})
    if filters is None:
        return query, k, mode, None
    if not isinstance(filters, dict):
        raise QueryError("filters: must be an object", {"field": "filters"})
    unknown = set(filters) - {"business_line", "category", "type"}
    if unknown:
        raise QueryError(f"filters: unknown field {sorted(unknown)[0]!r}", {"field": "filters"})
    values = {key: (value or None) for key, value in filters.items()}
    checks = {
        "business_line": lambda v: v in BUSINESS_LINES,
        "type": lambda v: v in TYPES,
        "category": lambda v: isinstance(v, str) and bool(_CATEGORY.match(v)),
    }
    for key, value in values.items():
        if value is not None and not checks[key](value):
            raise QueryError(f"filters.{key}: {value!r} is not a valid value", {"field": f"filters.{key}"})
    result = Filters(**values)
    return query, k, mode, (result if result != Filters() else None)
