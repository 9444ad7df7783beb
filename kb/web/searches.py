"""Each search answered goes into the search log, kb.search_log: the JSON API's and the search page's, Dify's
POST /retrieval, POST /api/v1/assist and the MCP tools over HTTP.

:func:`log_search` (a search's results) and :func:`log_query` (any other answer: the masked query as searched,
how many SOPs it answered, the first) record who asked by kind and through which channel, and prune the log of
searches older than KB_SEARCH_LOG_DAYS at most once an hour in each process (on the first search after start,
then hourly). Who asked: ``bot`` when an API key made the request, ``person`` for the search page (a browser)
or a logged-in user, ``anonymous`` for an API call without a key. :func:`recorder` gives the MCP server (whose
tools run outside any request) a logger for one kind of asker. A failure to write the log (a locked or full
database) is logged and never fails the search.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask, current_app, g, request

from kb import search_log
from kb.results import SearchResults
from kb.web import auth

log = logging.getLogger(__name__)
PRUNE_EVERY = 3600.0  # seconds between two prunings of the log by one process
PRUNED_KEY = "search_log_pruned"  # in app.extensions["kb"]: time.monotonic() of this process's last pruning
_prune_lock = threading.Lock()


def actor_kind() -> str:
    """Who made this request, by kind: bot (an API key), person (the search page or a user), or anonymous."""
    if g.get("via_key"):
        return "bot"
    if request.blueprint == "pages" or auth.current_user() is not None:
        return "person"
    return "anonymous"


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
    """Record one answered search in the search log (masked) and prune the log when due; the row's id or None."""
    top = results.hits[0].sop_id if results.hits else None
    channel = "page" if request.blueprint == "pages" else "api"
    return log_query(results.query, len(results.hits), top, results.mode, channel)


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
