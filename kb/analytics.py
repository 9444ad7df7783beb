"""The owners' dashboard figures for a period: what was searched, what was not found, what agents said.

:func:`period` checks since/until (YYYY-MM-DD, UTC days, both included; default the last DEFAULT_DAYS days up to
today; at most KB_SEARCH_LOG_DAYS days long, since the search log keeps no more). :func:`analytics` computes, from
the instance database (kb.search_log, kb.feedback; every text in it already masked) and the served generation:

- ``searches_per_day``: every day of the period, searches by person, bot and anonymous, and the total;
- ``top_queries``: the most frequent queries, counted by their normalised form (NFKC, case-folded, whitespace runs
  as one space: kb.indexing.query_encoder.query_key, the query cache's key), by kind of asker;
- ``zero_result_queries``: queries that found nothing (every kind of asker);
- ``no_click_queries``: people's searches that found SOPs of which none was opened (search_log.clicked is null);
- ``content_gaps``: queries with no good answer grouped by meaning (kb/content_gaps.py): zero-result queries (all
  askers), people's no-click queries, and the queries of "not helpful" feedback;
- ``unhelpful``: SOPs most often rated not helpful in the period, with their latest reasons and queries;
- ``flags``: SOPs with open flags (whenever raised) or flags raised in the period, with the open ones' comments;
- ``review_due``: documents whose review date has passed or falls in the next REVIEW_DAYS days (kb.reviews, as the
  "Needs review" page), whatever the period;
- ``redactions_per_day``: masks (card numbers, CVVs, expiries: kb.redaction.count_masks) in the texts stored that
  day: search log queries, feedback reasons and queries, flag comments.

An owner (a team from the front matter) narrows the inbox parts (unhelpful, flags, review_due) to its documents.
The work is bounded: counting and grouping are SQL, every list is cut to TOP rows, and content gaps embed at most
kb.content_gaps.MAX_QUERIES distinct queries.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from kb import content_gaps, search_log
from kb.database import Connection
from kb.errors import InputError
from kb.indexing.query_encoder import query_key
from kb.redaction import MASK_KINDS, count_masks
from kb.reviews import review_due
from kb.search import Searcher

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
TOP = 20  # rows per list
REASONS = 5  # latest reasons per unhelpful SOP
COMMENTS = 10  # open flags' comments per SOP
REVIEW_DAYS = 30  # review_due: past, or within this many days
MAX_OWNER_CHARS = 100
KEYS = (
    "searches_per_day",
    "top_queries",
    "zero_result_queries",
    "no_click_queries",
    "content_gaps",
    "unhelpful",
    "flags",
    "review_due",
    "redactions_per_day",
)


@dataclass(frozen=True)
class Period:
    """UTC days since to until, both included, as YYYY-MM-DD."""

    since: str
    until: str

    @property
    def days(self) -> list[str]:
        """Every day of the period, oldest first."""
        first = dt.date.fromisoformat(self.since)
        count = (dt.date.fromisoformat(self.until) - first).days + 1
        return [(first + dt.timedelta(days=n)).isoformat() for n in range(count)]


def _day(field: str, value: object) -> dt.date | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) != 10:
        raise InputError(f"{field}: must be a date as YYYY-MM-DD", {"field": field})
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{field}: must be a date as YYYY-MM-DD", {"field": field}) from None


def period(since: object = None, until: object = None, max_days: int = 90, today: dt.date | None = None) -> Period:
    """The period asked for, checked: until defaults to today, since to DEFAULT_DAYS days before until.

    Raises:
        InputError: a date that is not YYYY-MM-DD, until after today, since after until, or a period longer than
            max_days (KB_SEARCH_LOG_DAYS), naming the field.
    """
    today = today or dt.datetime.now(dt.UTC).date()
    first, last = _day("since", since), _day("until", until)
    last = last or today
    if last > today:
        raise InputError(f"until: must be today ({today}) or earlier", {"field": "until"})
    first = first or max(last - dt.timedelta(days=min(DEFAULT_DAYS, max_days) - 1), dt.date.min)
    if first > last:
        raise InputError(f"since: must be on or before until ({last})", {"field": "since"})
    if (last - first).days + 1 > max_days:
        raise InputError(
            f"since: the period may be at most {max_days} days (KB_SEARCH_LOG_DAYS), got {(last - first).days + 1}",
            {"field": "since"},
        )
    return Period(first.isoformat(), last.isoformat())


def check_owner(owner: object) -> str | None:
    """An owner filter: None for all, else a team name (bounded text)."""
    if owner is None or owner == "":
        return None
    if not isinstance(owner, str) or len(owner) > MAX_OWNER_CHARS or not owner.isprintable():
        raise InputError(f"owner: must be a team name of at most {MAX_OWNER_CHARS} characters", {"field": "owner"})
    return owner


# -- the search log ---------------------------------------------------------------------------------------------

_IN_PERIOD = "substr(at, 1, 10) BETWEEN ? AND ?"


def _by_key(rows, counts: tuple[str, ...], latest: str | None = None) -> dict[str, dict]:
    """Rows grouped by their stored text (column q) merged by query_key, the normalised form (in Python, the same on
    both engines): counts summed, latest the greatest."""
    merged: dict[str, dict] = {}
    for row in rows:
        key = query_key(row["q"] or "")
        if not key:
            continue
        into = merged.setdefault(key, {"query": key, **dict.fromkeys(counts, 0), **({latest: None} if latest else {})})
        for name in counts:
            into[name] += row[name] or 0
        if latest and (into[latest] is None or (row[latest] or "") > into[latest]):
            into[latest] = row[latest]
    return merged


def _top(merged: dict[str, dict], limit: int) -> list[dict]:
    return sorted(merged.values(), key=lambda r: (-r["n"], r["query"]))[:limit]


def _count(condition: str) -> str:
    """SQL counting the rows where condition holds (portable: PostgreSQL sums no booleans)."""
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


def searches_per_day(db: Connection, when: Period) -> list[dict]:
    """Every day of the period (none left out) with its searches by kind of asker and the total."""
    counted = {row["day"]: row for row in search_log.searches_per_day(db, when.since, when.until)}
    empty = dict.fromkeys((*search_log.ACTOR_KINDS, "total"), 0)
    return [counted.get(day, {"day": day, **empty}) for day in when.days]


def top_queries(db: Connection, when: Period, limit: int = TOP) -> list[dict]:
    """The most frequent queries (normalised), each {"query", "count", "person", "bot", "anonymous"}."""
    kinds = ", ".join(f"{_count(f'actor_kind = {kind!r}')} AS {kind}" for kind in ("person", "bot", "anonymous"))
    rows = db.execute(
        f"SELECT query AS q, COUNT(*) AS n, {kinds}"  # noqa: S608 - constants only; values are parameters
        f" FROM search_log WHERE {_IN_PERIOD} GROUP BY query",
        (when.since, when.until),
    )
    return [
        {"query": r["query"], "count": r["n"], "person": r["person"], "bot": r["bot"], "anonymous": r["anonymous"]}
        for r in _top(_by_key(rows, ("n", "person", "bot", "anonymous")), limit)
    ]


def _counted(db: Connection, when: Period, condition: str, limit: int) -> list[dict]:
    rows = db.execute(
        "SELECT query AS q, COUNT(*) AS n, MAX(at) AS last FROM search_log"  # noqa: S608 - constants only; values are parameters
        f" WHERE {_IN_PERIOD} AND {condition} GROUP BY query",
        (when.since, when.until),
    )
    return [
        {"query": r["query"], "count": r["n"], "last": r["last"]} for r in _top(_by_key(rows, ("n",), "last"), limit)
    ]


ZERO_RESULTS = "results = 0"
NO_CLICK = "actor_kind = 'person' AND results > 0 AND clicked IS NULL"


def zero_result_queries(db: Connection, when: Period, limit: int = TOP) -> list[dict]:
    """Queries that found nothing, most frequent first: {"query", "count", "last"} (last: UTC time)."""
    return _counted(db, when, ZERO_RESULTS, limit)


def no_click_queries(db: Connection, when: Period, limit: int = TOP) -> list[dict]:
    """People's queries that found SOPs of which none was opened, most frequent first."""
    return _counted(db, when, NO_CLICK, limit)


def gap_queries(db: Connection, when: Period, limit: int = content_gaps.MAX_QUERIES) -> list:
    """The distinct queries with no good answer (see the module docstring), most frequent first."""
    rows = db.execute(
        "SELECT q, source, COUNT(*) AS n FROM ("  # noqa: S608 - constants only; values are parameters
        f" SELECT query AS q, 'zero_results' AS source FROM search_log WHERE {_IN_PERIOD} AND {ZERO_RESULTS}"
        f" UNION ALL SELECT query, 'no_click' FROM search_log WHERE {_IN_PERIOD} AND {NO_CLICK}"
        " UNION ALL SELECT query, 'unhelpful' FROM feedback"
        "  WHERE substr(created, 1, 10) BETWEEN ? AND ? AND helpful = 0 AND query IS NOT NULL"
        ") AS asked GROUP BY q, source",
        (when.since, when.until) * 3,
    )
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        key = query_key(row["q"] or "")
        if key:
            sources = found.setdefault(key, {})
            sources[row["source"]] = sources.get(row["source"], 0) + row["n"]
    queries = [content_gaps.GapQuery(q, sum(s.values()), s) for q, s in found.items()]
    return sorted(queries, key=lambda g: (-g.count, g.query))[:limit]


# -- feedback and flags -----------------------------------------------------------------------------------------


def _owned(documents: Mapping[str, Mapping], owner: str | None) -> tuple[str, list[str]]:
    """An owner's filter as SQL on sop_id and its parameters (every SOP when owner is None)."""
    if owner is None:
        return "1 = 1", []
    ids = sorted(i for i, record in documents.items() if record.get("owner") == owner)
    return (f"sop_id IN ({', '.join('?' * len(ids))})", ids) if ids else ("1 = 0", [])


def _about(documents: Mapping[str, Mapping], sop_id: str) -> dict:
    record = documents.get(sop_id) or {}
    return {"sop_id": sop_id, "title": record.get("title"), "owner": record.get("owner")}


def unhelpful(
    db: Connection, when: Period, documents: Mapping[str, Mapping], owner: str | None = None, limit: int = TOP
) -> list[dict]:
    """SOPs most often rated not helpful in the period: {"sop_id", "title", "owner", "unhelpful", "helpful",
    "reasons": the latest REASONS [{"anchor", "reason", "query", "created"}]}."""
    owned, ids = _owned(documents, owner)
    rows = db.execute(
        f"SELECT sop_id, {_count('helpful = 0')} AS bad, {_count('helpful = 1')} AS good FROM feedback"  # noqa: S608 - constants and placeholders only
        f" WHERE substr(created, 1, 10) BETWEEN ? AND ? AND {owned}"
        f" GROUP BY sop_id HAVING {_count('helpful = 0')} > 0 ORDER BY bad DESC, sop_id LIMIT ?",
        (when.since, when.until, *ids, limit),
    ).fetchall()
    answer = []
    for row in rows:
        reasons = db.execute(
            "SELECT anchor, reason, query, created FROM feedback WHERE sop_id = ? AND helpful = 0"
            " AND substr(created, 1, 10) BETWEEN ? AND ? AND (reason IS NOT NULL OR query IS NOT NULL)"
            " ORDER BY created DESC, id DESC LIMIT ?",
            (row["sop_id"], when.since, when.until, REASONS),
        )
        answer.append(
            {
                **_about(documents, row["sop_id"]),
                "unhelpful": row["bad"],
                "helpful": row["good"],
                "reasons": [dict(r) for r in reasons],
            }
        )
    return answer


def flags(
    db: Connection, when: Period, documents: Mapping[str, Mapping], owner: str | None = None, limit: int = TOP
) -> list[dict]:
    """SOPs most flagged: {"sop_id", "title", "owner", "open" (open flags, whenever raised), "raised" (flags raised in
    the period), "comments": the latest COMMENTS open flags [{"id", "anchor", "comment", "actor", "created"}]}."""
    owned, ids = _owned(documents, owner)
    is_open, raised = _count("resolved IS NULL"), _count("substr(created, 1, 10) BETWEEN ? AND ?")
    rows = db.execute(
        f"SELECT sop_id, {is_open} AS open, {raised} AS raised FROM flags WHERE {owned}"  # noqa: S608 - constants and placeholders only
        f" GROUP BY sop_id HAVING {is_open} > 0 OR {raised} > 0 ORDER BY open DESC, raised DESC, sop_id LIMIT ?",
        (when.since, when.until, *ids, when.since, when.until, limit),
    ).fetchall()
    answer = []
    for row in rows:
        comments = db.execute(
            "SELECT id, anchor, comment, actor, created FROM flags WHERE sop_id = ? AND resolved IS NULL"
            " ORDER BY created DESC, id DESC LIMIT ?",
            (row["sop_id"], COMMENTS),
        )
        answer.append(
            {
                **_about(documents, row["sop_id"]),
                "open": row["open"],
                "raised": row["raised"],
                "comments": [dict(c) for c in comments],
            }
        )
    return answer


def due_for_review(documents: list[dict], owner: str | None = None, today: dt.date | None = None) -> list[dict]:
    """kb.reviews.review_due as one list, soonest first: {"id", "title", "type", "owner", "review_by", "overdue",
    "days_left"}; only owner's when given."""
    due = review_due(documents, today, REVIEW_DAYS)
    rows = [entry for team, entries in due.items() if owner is None or team == owner for entry in entries]
    return sorted(rows, key=lambda e: (e["review_by"], e["id"]))


def redactions_per_day(db: Connection, when: Period) -> list[dict]:
    """Every day of the period with the masks in the texts stored that day: {"day", "card", "cvv", "expiry",
    "total"}. SQL keeps only the texts holding a mask; kb.redaction.count_masks counts them."""
    feedback_text = "coalesce(reason, '') || ' ' || coalesce(query, '')"
    texts = db.execute(
        "SELECT day, text FROM ("  # noqa: S608 - constants only; values are parameters
        f" SELECT substr(at, 1, 10) AS day, query AS text FROM search_log WHERE {_IN_PERIOD}"
        f" UNION ALL SELECT substr(created, 1, 10), {feedback_text} FROM feedback"
        "  WHERE substr(created, 1, 10) BETWEEN ? AND ?"
        " UNION ALL SELECT substr(created, 1, 10), comment FROM flags WHERE substr(created, 1, 10) BETWEEN ? AND ?"
        ") AS texts WHERE text LIKE '%[card ending %' OR text LIKE '%[cvv]%' OR text LIKE '%[expiry]%'",
        (when.since, when.until) * 3,
    )
    days = {day: {"day": day, **dict.fromkeys((*MASK_KINDS, "total"), 0)} for day in when.days}
    for row in texts:
        counts = days.get(row["day"])
        if counts is None:
            continue
        for kind, n in count_masks(row["text"]).items():
            counts[kind] += n
            counts["total"] += n
    return list(days.values())


# -- everything -------------------------------------------------------------------------------------------------


def gaps(db: Connection, when: Period, searcher: Searcher) -> list[dict]:
    """The content gaps of the period, grouped with the searcher's query encoder; [] when the encoder fails."""
    queries = gap_queries(db, when)
    if not queries:
        return []
    gen = searcher.generation
    names = {c["id"]: c.get("name") or c["id"] for c in gen.categories}
    try:
        return content_gaps.content_gaps(queries, searcher.encoder.encode, gen.taxonomy, names)
    except Exception as error:  # noqa: BLE001 - onnxruntime, tokenizers or torch: the rest of the dashboard stands
        log.error("content gaps: the query encoder failed (%s); no groups", error)
        return []


def analytics(
    db: Connection, searcher: Searcher, when: Period, owner: str | None = None, today: dt.date | None = None
) -> dict:
    """Every figure of the dashboard for a period (see the module docstring), keyed as KEYS, plus "period" and
    "owner"."""
    documents = searcher.generation.documents
    return {
        "period": {"since": when.since, "until": when.until},
        "owner": owner,
        "searches_per_day": searches_per_day(db, when),
        "top_queries": top_queries(db, when),
        "zero_result_queries": zero_result_queries(db, when),
        "no_click_queries": no_click_queries(db, when),
        "content_gaps": gaps(db, when, searcher),
        "unhelpful": unhelpful(db, when, documents, owner),
        "flags": flags(db, when, documents, owner),
        "review_due": due_for_review(searcher.list_documents(), owner, today),
        "redactions_per_day": redactions_per_day(db, when),
    }


def owners(searcher: Searcher) -> list[str]:
    """The owner teams of the served documents, sorted (for the owner filter)."""
    return sorted({record["owner"] for record in searcher.generation.documents.values() if record.get("owner")})
