"""The search log: one row per search answered, for the owners' dashboard (searches per day, content gaps).

A row holds the query masked with kb.redaction.redact (never the raw text), who asked by kind (``person``: a
logged-in user or the search page; ``bot``: an API key; ``anonymous``: an API call without a key), how many
SOPs were found, the top one, the mode, and the channel it came through (CHANNELS: ``api`` GET/POST
/api/v1/search, ``page`` the search page, ``retrieval`` Dify's POST /retrieval, ``assist`` POST /api/v1/assist,
``mcp_search`` and ``mcp_assist`` the MCP tools; NULL before schema 8). Nothing else about the asker is kept. :func:`prune` deletes rows
older than KB_SEARCH_LOG_DAYS days; kb/web/searches.py records each search and prunes at most hourly.
:func:`record_quietly` records in a connection of its own and never raises: a search never fails for its log.

The search page searches as the agent types; :func:`revise` lets one typed search stay one row: a query that
continues the row's query (:func:`continues`: typed on, or its end edited) within REVISE_SECONDS of it replaces
it, instead of adding a row per pause in the typing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kb.database import Connection, DatabaseError
from kb.errors import InputError, KbError
from kb.redaction import redact
from kb.store import TIME_FORMAT, connect, fast_commits, now, transaction

log = logging.getLogger(__name__)
ACTOR_KINDS = ("person", "bot", "anonymous")
CHANNELS = ("api", "page", "retrieval", "assist", "mcp_search", "mcp_assist")
MAX_QUERY_CHARS = 2000  # a longer query (only possible with a larger KB_MAX_QUERY_CHARS) is stored cut
REVISE_SECONDS = 10  # a row is revised by a query that continues it at most this long after it was last written


def record(
    db: Connection,
    query: str,
    actor_kind: str,
    results: int,
    top_sop_id: str | None,
    mode: str,
    channel: str | None = None,
) -> int:
    """Store one search (its query masked) and return the row's id.

    Raises:
        InputError: an unknown actor_kind or channel, or a negative result count.
    """
    if actor_kind not in ACTOR_KINDS:
        raise InputError(f"actor_kind: must be one of {', '.join(ACTOR_KINDS)}", {"field": "actor_kind"})
    if channel is not None and channel not in CHANNELS:
        raise InputError(f"channel: must be one of {', '.join(CHANNELS)}", {"field": "channel"})
    if isinstance(results, bool) or not isinstance(results, int) or results < 0:
        raise InputError("results: must be a whole number, 0 or more", {"field": "results"})
    masked = redact(query).strip()[:MAX_QUERY_CHARS]
    with transaction(db):
        cursor = db.execute(
            "INSERT INTO search_log (at, query, actor_kind, results, top_sop_id, mode, channel)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (now(), masked, actor_kind, results, top_sop_id, mode, channel),
        )
    return cursor.lastrowid


def continues(previous: str, query: str) -> bool:
    """Whether query is the same search as previous, typed on: one starts with the other, or they share at least
    half of the shorter one from the start (the end was edited), case and spacing aside."""
    before, after = " ".join(previous.lower().split()), " ".join(query.lower().split())
    if not before or not after:
        return False
    if before.startswith(after) or after.startswith(before):
        return True
    shared = 0
    for a, b in zip(before, after, strict=False):
        if a != b:
            break
        shared += 1
    return shared >= max(2, (min(len(before), len(after)) + 1) // 2)


def revise(
    db: Connection,
    search_id: int,
    query: str,
    actor_kind: str,
    results: int,
    top_sop_id: str | None,
    mode: str,
    moment: datetime | None = None,
) -> bool:
    """Replace search search_id by query (masked) and its outcome, as one search typed on; return whether it was.

    It is not (False, nothing changed) when the row is gone, a result of it was opened, it was written more than
    REVISE_SECONDS before moment (default now), its asker's kind differs, or query does not continue its query.
    The caller decides which row is the asker's own (kb/web/searches.py keeps it in the signed session).
    """
    if actor_kind not in ACTOR_KINDS:
        raise InputError(f"actor_kind: must be one of {', '.join(ACTOR_KINDS)}", {"field": "actor_kind"})
    if isinstance(results, bool) or not isinstance(results, int) or results < 0:
        raise InputError("results: must be a whole number, 0 or more", {"field": "results"})
    masked = redact(query).strip()[:MAX_QUERY_CHARS]
    moment = moment or datetime.now(UTC)
    with transaction(db):
        row = db.execute("SELECT at, query, actor_kind, clicked FROM search_log WHERE id = ?", (search_id,)).fetchone()
        if row is None or row["clicked"] is not None or row["actor_kind"] != actor_kind:
            return False
        written = datetime.strptime(row["at"], TIME_FORMAT).replace(tzinfo=UTC)
        if not timedelta(0) <= moment - written <= timedelta(seconds=REVISE_SECONDS):
            return False
        if not continues(row["query"], masked):
            return False
        db.execute(
            "UPDATE search_log SET at = ?, query = ?, results = ?, top_sop_id = ?, mode = ? WHERE id = ?",
            (moment.strftime(TIME_FORMAT), masked, results, top_sop_id, mode, search_id),
        )
    return True


def record_quietly(
    data_dir: Path,
    query: str,
    actor_kind: str,
    results: int,
    top_sop_id: str | None,
    mode: str,
    channel: str | None = None,
    prune_days: int | None = None,
) -> int | None:
    """record() in a connection of its own, then prune() when prune_days is given; the row's id, or None when the
    database refused (logged as a warning, never raised: a search never fails for its log)."""
    try:
        db = connect(data_dir)
        try:
            # Commits wait for no fsync (this connection only, kb.store.fast_commits): a power cut may lose
            # the last few log rows, never corrupt the database. Worth it for a row written on every search.
            fast_commits(db)
            row = record(db, query, actor_kind, results, top_sop_id, mode, channel)
            if prune_days is not None:
                removed = prune(db, prune_days)
                if removed:
                    log.info("search log: pruned %d searches older than %d days", removed, prune_days)
            return row
        finally:
            db.close()
    except (*DatabaseError, KbError):
        log.warning("search log: could not record a search", exc_info=True)
        return None


def record_click(db: Connection, search_id: int, sop_id: str) -> bool:
    """Note that the search search_id led to the SOP sop_id; return whether it was its first click.

    Only the first SOP opened from a search is kept (a later click is the same search's second try). An unknown
    search id changes nothing: a link from a pruned or another instance's search is not an error.
    """
    if isinstance(search_id, bool) or not isinstance(search_id, int) or search_id < 1:
        raise InputError("search: must be a whole number, 1 or more", {"field": "search"})
    with transaction(db):
        cursor = db.execute("UPDATE search_log SET clicked = ? WHERE id = ? AND clicked IS NULL", (sop_id, search_id))
    return cursor.rowcount == 1


def prune(db: Connection, days: int, moment: datetime | None = None) -> int:
    """Delete rows older than days days before moment (default now); return how many were deleted."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InputError("days: must be a whole number, 1 or more", {"field": "days"})
    cutoff = ((moment or datetime.now(UTC)) - timedelta(days=days)).strftime(TIME_FORMAT)
    with transaction(db):
        return db.execute("DELETE FROM search_log WHERE at < ?", (cutoff,)).rowcount


def searches_per_day(db: Connection, since: str | None = None, until: str | None = None) -> list[dict]:
    """Searches per UTC day, oldest first, each {"day", "person", "bot", "anonymous", "total"}.

    Args:
        since, until: YYYY-MM-DD, both days included; None: no bound.
    """
    for name, day in (("since", since), ("until", until)):
        if day is not None:
            try:
                datetime.strptime(day, "%Y-%m-%d")
            except (TypeError, ValueError):
                raise InputError(f"{name}: must be a date as YYYY-MM-DD", {"field": name}) from None
    rows = db.execute(
        "SELECT substr(at, 1, 10) AS day, actor_kind, COUNT(*) AS n FROM search_log"
        " WHERE (CAST(? AS TEXT) IS NULL OR substr(at, 1, 10) >= ?) AND (CAST(? AS TEXT) IS NULL OR substr(at, 1, 10) <= ?)"
        " GROUP BY day, actor_kind ORDER BY day",
        (since, since, until, until),
    )
    days: dict[str, dict] = {}
    for row in rows:
        counts = days.setdefault(row["day"], {"day": row["day"], **dict.fromkeys(ACTOR_KINDS, 0), "total": 0})
        counts[row["actor_kind"]] += row["n"]
        counts["total"] += row["n"]
    return list(days.values())
