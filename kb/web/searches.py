"""Each search answered (the JSON API's and the search page's) goes into the search log, kb.search_log.

:func:`log_search` records the masked query, who asked by kind and what was found, and prunes the log of
searches older than KB_SEARCH_LOG_DAYS at most once an hour in each process (on the first search after start,
then hourly). Who asked: ``bot`` when an API key made the request, ``person`` for the search page (a browser)
or a logged-in user, ``anonymous`` for an API call without a key. A failure to write the log (a locked or full
database) is logged and never fails the search.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from flask import current_app, g, request

from kb import search_log
from kb.errors import KbError
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


def _prune_due() -> bool:
    """Whether this process should prune now (claims the turn, so concurrent searches prune once)."""
    state = current_app.extensions["kb"]
    with _prune_lock:
        last = state.get(PRUNED_KEY)
        if last is not None and time.monotonic() - last < PRUNE_EVERY:
            return False
        state[PRUNED_KEY] = time.monotonic()
        return True


def log_search(results: SearchResults) -> None:
    """Record one answered search in the search log (masked) and prune the log when due."""
    top = results.hits[0].sop_id if results.hits else None
    try:
        with auth.connection() as db:
            # WAL with synchronous=NORMAL (this connection only): a commit waits for no fsync; a power cut may lose
            # the last few log rows, never corrupt the database. Worth it for a row written on every search.
            db.execute("PRAGMA synchronous=NORMAL")
            search_log.record(db, results.query, actor_kind(), len(results.hits), top, results.mode)
            if _prune_due():
                removed = search_log.prune(db, current_app.config["KB"]["SEARCH_LOG_DAYS"])
                if removed:
                    log.info(
                        "search log: pruned %d searches older than %d days",
                        removed,
                        current_app.config["KB"]["SEARCH_LOG_DAYS"],
                    )
    except (sqlite3.Error, KbError):
        log.warning("search log: could not record a search", exc_info=True)
