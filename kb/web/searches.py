"""Each search answered (the JSON API's and the search page's) goes into the search log, kb.search_log.

:func:`log_search` records the masked query, who asked by kind and what was found, and prunes the log of
searches older than KB_SEARCH_LOG_DAYS at most once an hour in each process (on the first search after start,
then hourly). Who asked: ``bot`` when an API key made the request, ``person`` for the search page (a browser)
or a logged-in user, ``anonymous`` for an API call without a key. A failure to write the log (a locked or full
database) is logged and never fails the search.

The search page searches as the agent types (kb/web/static/search.js calls GET /api/v1/search with
``X-KB-Page: search``, kb/web/paths.py). So that typing "charged", "charged twice", "charged twice for the
order" is one search, not three, the page's searches (its own and its script's) keep the id of their last row in
the signed session (SESSION_KEY) and revise that row (kb.search_log.revise) when the new query continues it
within a few seconds. The id never comes from the request, so nobody can revise another's row.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from flask import current_app, g, request, session

from kb import search_log
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


def _prune_due() -> bool:
    """Whether this process should prune now (claims the turn, so concurrent searches prune once)."""
    state = current_app.extensions["kb"]
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
    kind, page = actor_kind(), from_page()
    try:
        with auth.connection() as db:
            # WAL with synchronous=NORMAL (this connection only): a commit waits for no fsync; a power cut may lose
            # the last few log rows, never corrupt the database. Worth it for a row written on every search.
            db.execute("PRAGMA synchronous=NORMAL")
            own = session.get(SESSION_KEY) if page else None
            outcome = (kind, len(results.hits), top, results.mode)
            if (
                isinstance(own, int)
                and not isinstance(own, bool)
                and search_log.revise(db, own, results.query, *outcome)
            ):
                row = own
            else:
                row = search_log.record(db, results.query, *outcome)
            if page:
                session[SESSION_KEY] = row
            if _prune_due():
                removed = search_log.prune(db, current_app.config["KB"]["SEARCH_LOG_DAYS"])
                if removed:
                    log.info(
                        "search log: pruned %d searches older than %d days",
                        removed,
                        current_app.config["KB"]["SEARCH_LOG_DAYS"],
                    )
            return row
    except (sqlite3.Error, KbError):
        log.warning("search log: could not record a search", exc_info=True)
        return None
