"""Rate limits (Flask-Limiter): search, log-in, failed API keys, feedback and writes, per client address and per credential.

Each limit is a setting (``KB_RATE_LIMIT_*``, see kb/config.py) and an
application-wide Flask-Limiter limit with its own scope, checked before any
other hook of a request:

    scope           counts                                         key
    search          GET/POST /api/v1/search, POST /api/v1/assist,    address; API key or user
                    POST /retrieval, POST /mcp, the search page
    login           POST /login                                    address
    login-failures  failed log-ins (MAX_FAILED_LOGINS per LOCKOUT)  name and address together
    key-failures    failed API-key authentications                 address
    feedback        POST /api/v1/feedback, POST /api/v1/sops/<id>/flags,  address; API key or user
                    the SOP page's POST /sops/<id>/feedback and /flag
    write           other POST/PUT/PATCH/DELETE (API and forms)     address; API key or user
    read            every other GET (pages, SOPs, history, diffs)   address (not static files, /healthz)

Failed log-ins are counted per name *and* address, so a stranger guessing at a
name from one address never locks its owner out elsewhere. Counts live in
``KB_RATE_LIMIT_STORAGE``: memory (each process its own) or Redis (shared by
workers and replicas). When Redis cannot be reached, Flask-Limiter logs a warning
and falls back to in-memory counts (per process) until Redis answers again:
limits keep holding, loosely, and no request fails because of it.

A breach answers 429 with ``Retry-After``: the one JSON error shape (code
``rate_limited``) for the API, the log-in page with the error for log-ins, an
error page for other browser requests. :func:`admit_audit` caps audit rows of
unauthenticated write attempts per address; the rest are counted, not stored.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from flask import Flask, current_app, g, render_template, request, session
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded
from limits import parse
from limits.storage import storage_from_string

from kb import accounts
from kb.errors import ConfigError, InputError, RateLimitedError
from kb.redaction import mask_credentials
from kb.web.errors import json_error, wants_json
from kb.web.paths import is_page_search, takes_key

log = logging.getLogger(__name__)
STRATEGY = "moving-window"  # exact: never more than N in any window, no burst at window edges
KEY_PREFIX = "kb"
MAX_FAILED_LOGINS = 5  # failed log-ins for one name from one address within LOCKOUT_SECONDS
LOCKOUT_SECONDS = 15 * 60
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SEARCH_ENDPOINTS = frozenset(
    {
        "api_search.search_get",
        "api_search.search_post",
        "api_assist.assist",
        "api_retrieval.retrieval",
        "pages.search_page",
        "mcp.endpoint",
    }
)
FEEDBACK_ENDPOINTS = frozenset(
    {"api_feedback.feedback_post", "api_feedback.flag", "sop_feedback.feedback_form", "sop_feedback.flag_form"}
)
READ_EXEMPT = frozenset({"static", "api_admin.healthz"})  # a load balancer's health checks are never refused
LOGIN_ENDPOINT = "auth.login"
REDIS_TIMEOUT = 0.5  # seconds: an unreachable Redis costs at most this before the in-memory fallback

MESSAGES = {
    "search": ("too many searches from this client", "client"),
    "login": ("too many log-in attempts from this address", "client"),
    "login-failures": ("too many failed log-ins for this name from this address", "name"),
    "key-failures": ("too many failed API-key authentications from this address", "Authorization"),
    "feedback": ("too many feedback answers and flags from this client", "client"),
    "write": ("too many changes from this client", "client"),
    "read": ("too many requests from this address", "client"),
}


def client_address() -> str:
    """The client's address as the server saw it."""
    return request.remote_addr or "-"


def credential() -> str:
    """Who a request claims to be, for per-credential limits: a hash of its API key, a session's user, or ''."""
    header = request.headers.get("Authorization", "")
    if takes_key(request.path) and not is_page_search(request):  # the search page's own searches: its user
        key = header.partition(" ")[2].strip()
        return "key:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:24] if key else ""
    name = session.get("user")
    return f"user:{name}" if isinstance(name, str) and name else ""


def _is_search() -> bool:
    return request.endpoint in SEARCH_ENDPOINTS


def _is_login() -> bool:
    return request.endpoint == LOGIN_ENDPOINT and request.method == "POST"


def _is_read() -> bool:
    """Every other request an anonymous client can make (pages, SOPs, history, diffs), but static files and health."""
    return (
        request.method in ("GET", "HEAD")
        and not _is_search()
        and request.endpoint not in READ_EXEMPT
        and not request.path.startswith("/static/")
    )


def _is_feedback() -> bool:
    return request.endpoint in FEEDBACK_ENDPOINTS


def _is_write() -> bool:
    return (
        request.method in WRITE_METHODS
        and not _is_search()
        and not _is_feedback()
        and request.endpoint != LOGIN_ENDPOINT
    )


def _login_key() -> str:
    """The failed-log-in counter of this request: the normalised name and the address ('' for an invalid name)."""
    try:
        name = accounts.login_name(request.form.get("name", ""))
    except InputError:
        return ""
    return f"{name}|{client_address()}"


def _limits(settings: dict) -> list[ApplicationLimit]:
    def rate(name: str):
        return lambda: settings[name]

    def unless(*conditions):
        return lambda: not all(condition() for condition in conditions)

    def has_key() -> bool:
        return takes_key(request.path) and bool(request.headers.get("Authorization"))

    def failed(flag: str):
        return lambda response: bool(g.get(flag))  # counted after the answer, only when the view set the flag

    lockout = f"{MAX_FAILED_LOGINS} per {LOCKOUT_SECONDS // 60} minutes"
    return [
        ApplicationLimit(rate("RATE_LIMIT_SEARCH"), scope="search", exempt_when=unless(_is_search)),
        ApplicationLimit(
            rate("RATE_LIMIT_SEARCH"),
            key_function=credential,
            scope="search",
            exempt_when=unless(_is_search, credential),
        ),
        ApplicationLimit(rate("RATE_LIMIT_LOGIN"), scope="login", exempt_when=unless(_is_login)),
        ApplicationLimit(
            lockout,
            key_function=_login_key,
            scope="login-failures",
            exempt_when=unless(_is_login, _login_key),
            deduct_when=failed("login_failed"),
        ),
        ApplicationLimit(
            rate("RATE_LIMIT_LOGIN"),
            scope="key-failures",
            exempt_when=unless(has_key),
            deduct_when=failed("key_failed"),
        ),
        ApplicationLimit(rate("RATE_LIMIT_READ"), scope="read", exempt_when=unless(_is_read)),
        ApplicationLimit(rate("RATE_LIMIT_FEEDBACK"), scope="feedback", exempt_when=unless(_is_feedback)),
        ApplicationLimit(
            rate("RATE_LIMIT_FEEDBACK"),
            key_function=credential,
            scope="feedback",
            exempt_when=unless(_is_feedback, credential),
        ),
        ApplicationLimit(rate("RATE_LIMIT_WRITE"), scope="write", exempt_when=unless(_is_write)),
        ApplicationLimit(
            rate("RATE_LIMIT_WRITE"), key_function=credential, scope="write", exempt_when=unless(_is_write, credential)
        ),
    ]


def init_app(app: Flask) -> Limiter:
    """Install this app's limiter (its own counts, in memory or Redis) and the 429 handlers; return the limiter."""
    settings = app.config["KB"]
    limiter = Limiter(
        key_func=client_address,
        application_limits=_limits(settings),
        strategy=STRATEGY,
        storage_uri=settings["RATE_LIMIT_STORAGE"],
        storage_options={"socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT}
        if settings["RATE_LIMIT_STORAGE"].startswith("redis")
        else {},
        in_memory_fallback_enabled=True,  # Redis down: per-process counts, never a 500
        swallow_errors=True,
        key_prefix=KEY_PREFIX,
        headers_enabled=False,  # Retry-After goes on 429 answers only
    )
    limiter.init_app(app)
    app.extensions["kb"]["limiter"] = limiter
    app.register_error_handler(RateLimitExceeded, _exceeded)
    app.register_error_handler(RateLimitedError, too_many)
    return limiter


def check_storage(settings: dict) -> None:
    """At start-up: a Redis KB_RATE_LIMIT_STORAGE that does not answer stops kb, naming the setting (once serving,
    an outage falls back to per-process counts instead, see the module docstring).

    Raises:
        ConfigError: Redis does not answer PING within REDIS_TIMEOUT; the address is shown without credentials.
    """
    uri = settings["RATE_LIMIT_STORAGE"]
    if not uri.startswith("redis"):
        return
    reason = "it does not answer"
    try:
        storage = storage_from_string(uri, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)
        if storage.check():
            return
    except Exception as error:  # noqa: BLE001 - whatever the client raises, the answer is "cannot reach"
        reason = str(error) or type(error).__name__
    raise ConfigError(
        f"setting KB_RATE_LIMIT_STORAGE: cannot reach {mask_credentials(uri)}: {mask_credentials(reason)[:300]} "
        "(start Redis, or use memory:// for one machine)"
    )


def _limiter() -> Limiter:
    return current_app.extensions["kb"]["limiter"]


def _exceeded(error: RateLimitExceeded):
    """Flask-Limiter's breach, answered as a kb RateLimitedError (and audited for a locked log-in name)."""
    scope = error.limit.scope if isinstance(error.limit.scope, str) else "write"
    current = _limiter().current_limit
    retry_after = max(1, math.ceil(current.window[0] - time.time())) if current is not None else 60
    what, field = MESSAGES.get(scope, MESSAGES["write"])
    minutes = max(1, math.ceil(retry_after / 60))
    message = (
        f"{what}: try again in {retry_after} s" if retry_after < 120 else f"{what}: try again in {minutes} minutes"
    )
    details = {"field": field, "limit": str(error.limit.limit), "retry_after": retry_after}
    if scope == "login-failures":
        from kb.web import auth

        name = _login_key().rpartition("|")[0]
        auth.audit_event("login_failed", actor=name, target=f"user:{name}", outcome="denied", details={"locked": True})
    return too_many(RateLimitedError(message, retry_after, details))


def too_many(error: RateLimitedError):
    """A 429 with Retry-After: JSON for the API, the log-in page for log-ins, an error page for other pages."""
    if wants_json():
        response = json_error(429, error.code, error.message, error.details)
    elif request.endpoint == LOGIN_ENDPOINT:
        from kb.web import auth

        sentence = error.message[:1].upper() + error.message[1:] + "."
        response = current_app.make_response(render_template("login.html", error=sentence, next=auth.safe_next()))
    else:
        response = current_app.make_response(render_template("error.html", status=429, message=error.message))
    response.status_code = 429
    response.headers["Retry-After"] = str(error.retry_after)
    return response


def admit_audit(kind: str) -> int | None:
    """Whether one more audit row of kind may be stored for this address (RATE_LIMIT_AUDIT).

    Returns:
        None when the row must not be stored (it is counted instead); otherwise how many rows of kind from this
        address were counted, not stored, since the last one stored (to be recorded with it).
    """
    address = client_address()
    strategy = _limiter().limiter  # the in-memory fallback while Redis is unreachable
    skipped = f"{KEY_PREFIX}/not-audited/{kind}/{address}"
    try:
        if not strategy.hit(parse(current_app.config["KB"]["RATE_LIMIT_AUDIT"]), KEY_PREFIX, "audit", kind, address):
            strategy.storage.incr(skipped, LOCKOUT_SECONDS * 4)
            return None
        count = int(strategy.storage.get(skipped) or 0)
        if count:
            strategy.storage.clear(skipped)
        return count
    except Exception:  # the storage failed mid-request: store the row rather than lose it
        log.exception("rate-limit storage failed while capping audit rows; storing this one")
        return 0
