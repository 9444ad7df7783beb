"""Each search answered goes into the search log, kb.search_log: the JSON API's and the search page's, Dify's
POST /retrieval, POST /api/v1/assist and the MCP tools over HTTP.

:func:`log_search` (a search's results) and :func:`log_query` (any other answer: the masked query as searched,
how many SOPs it answered, the first) record who asked by kind and through which channel, and prune the log of
searches older than KB_SEARCH_LOG_DAYS at most once an hour in each process (on the first search after start,
then hourly). Who asked: ``bot`` when an API key made the request, ``person`` for the search page (a browser)
or a logged-in user, ``anonymous`` for an API call without a key. :func:`recorder` gives the MCP server (whose
tools run outside any request) a logger for one kind of asker. A failure to write the log (a locked or full
database) is logged and never fails the search.

The search page searches as the agent types (kb/web/static/search.js calls GET /api/v1/search with
``X-KB-Page: search``, kb/web/paths.py). So that typing "charged", "charged twice", "charged twice for the
order" is one search, not three, the page's searches (its own and its script's) keep the id of their last row in
the signed session (SESSION_KEY) and revise that row (kb.search_log.revise) when the new query continues it
within a few seconds. The id never comes from the request, so nobody can revise another's row.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask, current_app, g, request, session

from kb import search_log, store
from kb.database import DatabaseError
from kb.errors import KbError
from kb.results import SearchResults
from kb.web import auth

log = logging.getLogger(__name__)
PRUNE_EVERY = 3600.0  # seconds between two prunings of the log by one process
PRUNED_KEY = "search_log_pruned"  # in app.extensions["kb"]: time.monotonic() of this process's last pruning
SESSION_KEY = "search_row"  # in the signed session: the id of the page's last search log row
_prune_lock = threading.Lock()


def actor_kind() -> str:
    """Who made this request, by kind: bot (an API key), person (the search page or a user), or anonymous."""
    if g.get("via_key"):
        return "bot"
    if from_page() or auth.current_user() is not None:
        return "person"
    return "anonymous"


def from_page() -> bool:
    """Whether the search page asked: its form (pages blueprint) or its script (X-KB-Page, read in auth)."""
    return request.blueprint == "pages" or bool(g.get("via_page"))


def _prune_due(app: Flask) -> bool:
    """Whether this process should prune now (claims the turn, so concurrent searches prune once)."""
    state = app.extensions["kb"]
    with _prune_lock:
        last = state.get(PRUNED_KEY)
        if last is not None and time.monotonic() - last < PRUNE_EVERY:
            return False
        state[PRUNED_KEY] = time.monotonic()
        return True


def log_search(results: SearchResults) -> int | None:
    """Record one answered search in the search log (masked) and prune the log when due; return its row's id
    (None when the log could not be written). The search page's searches revise their session's last row when
    they continue it (see above)."""
    top = results.hits[0].sop_id if results.hits else None
    if not from_page():
        return log_query(results.query, len(results.hits), top, results.mode, "api")
    outcome = (actor_kind(), len(results.hits), top, results.mode)
    own = session.get(SESSION_KEY)
    if isinstance(own, int) and not isinstance(own, bool) and _revised(own, results.query, *outcome):
        return own
    row = _write(current_app._get_current_object(), results.query, *outcome, "page")
    if row is not None:
        session[SESSION_KEY] = row
    return row


def _revised(row: int, query: str, kind: str, results: int, top_sop_id: str | None, mode: str) -> bool:
    """search_log.revise of the page's own last row; False (logged) when the database refused."""
    try:
        with auth.connection() as db:
            store.fast_commits(db)  # as in search_log.record_quietly
            return search_log.revise(db, row, query, kind, results, top_sop_id, mode)
    except (*DatabaseError, KbError):
        log.warning("search log: could not revise a search", exc_info=True)
        return False


def log_query(query: str, results: int, top_sop_id: str | None, mode: str, channel: str) -> int | None:
    """Record one answer of this request (its query masked, who asked by kind) and prune the log when due."""
    return _write(current_app._get_current_object(), query, actor_kind(), results, top_sop_id, mode, channel)


def recorder(app: Flask, kind: str) -> Callable[[str, int, str | None, str, str], None]:
    """A logger for answers given outside a request (the MCP tools), all asked by one kind: (query, results,
    top SOP id, mode, channel)."""

    def record(query: str, results: int, top_sop_id: str | None, mode: str, channel: str) -> None:
        _write(app, query, kind, results, top_sop_id, mode, channel)

    return record


def _write(app: Flask, query: str, kind: str, results: int, top_sop_id: str | None, mode: str, channel: str):
    """search_log.record_quietly in the app's data folder, pruning when this process's turn has come."""
    settings = app.config["KB"]
    days = settings["SEARCH_LOG_DAYS"] if _prune_due(app) else None
    return search_log.record_quietly(settings["DATA_DIR"], query, kind, results, top_sop_id, mode, channel, days)
