"""Who is asking: browser sessions (log-in, log-out, idle expiry, revocation, CSRF) and API keys; roles checked here.

Pages use a signed session cookie (HttpOnly, SameSite=Lax, Secure unless
KB_COOKIE_SECURE=off) and a CSRF token on every form (Flask-WTF). The cookie
carries the user's session generation from log-in; every request compares it
with the database, so log-out, a password, role or disabled change ends every
session of that user in every worker. The JSON API uses
``Authorization: Bearer <key>`` only, never the cookie, so no API call can be
forged from another site; so does /mcp (kb/web/mcp.py). The one exception is the search page's own
GET /api/v1/search with ``X-KB-Page: search`` (kb/web/paths.py is_page_search): it reads the session, to log
the searcher as a person and keep their typing one search log row. Every refusal is written to the audit log; write
attempts without credentials are too, capped per address (kb.web.limits).
"""

from __future__ import annotations

import secrets
import time
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import Blueprint, Flask, abort, current_app, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFProtect

from kb import accounts, audit, store
from kb.errors import AuthRequiredError, ForbiddenError, InputError
from kb.files import atomic_write, file_lock
from kb.web import limits
from kb.web.limits import LOCKOUT_SECONDS, MAX_FAILED_LOGINS, WRITE_METHODS, client_address
from kb.web.paths import is_page_search, takes_key

__all__ = ["LOCKOUT_SECONDS", "MAX_FAILED_LOGINS", "client_address", "current_user", "require", "safe_next"]
bp = Blueprint("auth", __name__)
csrf = CSRFProtect()
SECRET_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
MAX_NEXT = 2000  # longest redirect target kept after log-in
CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, bidi/zero-width, surrogates, separators


def _secret_key(data_dir: Path) -> str:
    """The instance's session signing key, made once (mode 0600) and shared by every worker process."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        with file_lock(data_dir / f"{SECRET_FILE}.lock"):  # two workers starting together make one key
            if not path.exists():
                atomic_write(path, secrets.token_hex(32), mode=0o600)
    return path.read_text().strip()


def init_app(app: Flask) -> None:
    """Rate limits, session cookie settings, the user of each request, audit of anonymous writes, CSRF, headers."""
    settings = app.config["KB"]
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(settings["DATA_DIR"])
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings["COOKIE_SECURE"] == "on",
        SESSION_COOKIE_NAME="kb_session",
        PERMANENT_SESSION_LIFETIME=settings["SESSION_IDLE_MINUTES"] * 60,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
    )

    @app.before_request
    def load_user() -> None:
        g.user, g.via_key, g.key_scopes, g.via_page = None, False, frozenset(), False
        if takes_key(request.path):
            header = request.headers.get("Authorization", "")
            if header:
                g.user, g.key_scopes = _key_user(header)
                g.via_key = True
            elif is_page_search(request):  # the search page's own search: its session counts (kb/web/paths.py)
                g.user = _session_user(settings["SESSION_IDLE_MINUTES"] * 60)
                g.via_page = True
            return
        g.user = _session_user(settings["SESSION_IDLE_MINUTES"] * 60)

    @app.before_request
    def audit_unauthenticated_write() -> None:
        # Runs before the CSRF check, so a form posted without a session is recorded too.
        if g.user is not None or request.method not in WRITE_METHODS or not _authoring_route():
            return
        not_stored = limits.admit_audit("unauthenticated_write")
        if not_stored is None:
            return  # over RATE_LIMIT_AUDIT for this address: counted, not stored
        details = {"reason": "no credentials", "method": request.method, "path": request.path[:200]}
        if not_stored:
            details["not_stored"] = not_stored
        audit_event("unauthenticated_write", outcome="denied", details=details)

    csrf.init_app(app)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if g.get("user") is not None and not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.context_processor
    def user_in_templates() -> dict:
        return {"user": g.get("user"), "has_role": accounts.has_role}


def bearer_key(header: str) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header; None when the header is not of that form."""
    scheme, _, key = header.partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def _key_user(header: str) -> tuple[accounts.User, frozenset[str]]:
    """The user of an API key header and the key's scopes; a bad one is counted per address and refused."""
    key = bearer_key(header)
    if key is None:
        g.key_failed = True
        raise AuthRequiredError("Authorization: use 'Bearer <API key>'", {"field": "Authorization"})
    with connection() as db:
        grant = accounts.key_grant(db, key)
    if grant is None:
        g.key_failed = True
        audit_event("login_failed", outcome="denied", details={"via": "api key"})
        raise AuthRequiredError("Authorization: unknown or revoked API key", {"field": "Authorization"})
    return grant


def _session_user(idle_seconds: int) -> accounts.User | None:
    """The user of the session cookie, or None: no session, idle too long, or ended since (an older generation)."""
    name = session.get("user")
    if not name:
        return None
    if time.time() - session.get("seen", 0) > idle_seconds:
        session.clear()
        _audit_session_end(name, "idle")
        return None
    with connection() as db:
        user = accounts.get_user(db, name)
    if user is None or user.disabled or session.get("generation") != user.generation:
        session.clear()  # a replayed cookie of an ended session: anonymous from here on
        _audit_session_end(name, "ended")
        return None
    session["seen"] = int(time.time())
    return user


def _audit_session_end(name: str, reason: str) -> None:
    """Record an expired or ended session, at most RATE_LIMIT_AUDIT rows per address (a cookie can be replayed)."""
    not_stored = limits.admit_audit("session_expired")
    if not_stored is None:
        return
    details = {"reason": reason} if reason != "idle" else None
    if not_stored:
        details = {**(details or {}), "not_stored": not_stored}
    audit_event("session_expired", actor=name, target=f"user:{name}", details=details)


def _authoring_route() -> bool:
    """Whether this request goes to a route that changes content, reviews it or administers (not search)."""
    if request.blueprint in ("authoring", "webhooks", "dashboard", "admin"):
        return True
    return (request.blueprint or "").startswith("api_") and request.blueprint not in ("api_search", "api_retrieval")


class connection:  # noqa: N801 - used like a function: `with connection() as db`
    """The instance database for this request."""

    def __enter__(self):
        self.db = store.connect(current_app.config["KB"]["DATA_DIR"])
        return self.db

    def __exit__(self, *exc) -> None:
        self.db.close()


def audit_event(action: str, actor: str | None = None, target: str | None = None, outcome: str = "ok", details=None):
    """Append an audit row for this request, with the client's address."""
    with connection() as db, db:
        audit.record(db, action, actor=actor, target=target, outcome=outcome, client=client_address(), details=details)


def current_user() -> accounts.User | None:
    """The user of this request (None for anonymous visitors)."""
    return g.get("user")


def require(role: str) -> accounts.User:
    """The current user if their role is at least role; else 401 (anonymous) or 403 (audited by the handler).

    Raises:
        AuthRequiredError: nobody is logged in (or no API key was sent).
        ForbiddenError: the user's role is too low.
    """
    user = current_user()
    if user is None:
        raise AuthRequiredError(f"log in (or send an API key) as a user with the {role} role", {"field": "user"})
    if not accounts.has_role(user, role):
        raise ForbiddenError(f"this needs the {role} role; {user.name} is {user.role}", {"field": "role"})
    return user


def require_scope(scope: str | None) -> None:
    """Refuse a request made with an API key that lacks the scope (a browser session or no key: no check).

    Raises:
        ForbiddenError: the key lacks the scope, or the route takes no key (scope None).
    """
    if not g.get("via_key"):
        return
    if scope is None:
        raise ForbiddenError("this route does not accept API keys", {"field": "scope"})
    if scope not in g.get("key_scopes", frozenset()):
        raise ForbiddenError(f"this API key lacks the {scope} scope", {"field": "scope", "scope": scope})


def denied(user: accounts.User | None, reason: str, target: str | None = None) -> None:
    """Record a refusal in the audit log (the error handler does it for every ForbiddenError)."""
    details = {"reason": reason, "method": request.method, "path": request.path}
    audit_event(
        "permission_denied", actor=user.name if user else None, target=target, outcome="denied", details=details
    )


def _has_controls(text: str) -> bool:
    return any(unicodedata.category(char) in CONTROL_CATEGORIES for char in text)


def safe_next(target: object = None) -> str:
    """Where to go after log-in: target (default: the request's ``next``) if it is a path on this site, else '/'.

    The target is parsed, not prefix-matched: no scheme and no host after urllib's parsing, no control, format
    or separator characters, no backslash, and a path that starts with exactly one '/', also once
    percent-decoded and NFKC-normalised (so neither ``/%2F%2Fevil`` nor full-width slashes make ``//evil``).
    """
    home = url_for("pages.search_page")
    target = request.values.get("next") if target is None else target
    if not isinstance(target, str) or not target or len(target) > MAX_NEXT:
        return home
    if _has_controls(target) or "\\" in target or not target.startswith("/") or target.startswith("//"):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return home
    path = unicodedata.normalize("NFKC", unquote(parts.path, errors="replace"))
    if _has_controls(path) or "\\" in path or not path.startswith("/") or path.startswith("//"):
        return home
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in with a user name and password."""
    next_url = safe_next()
    if request.method == "GET":
        return render_template("login.html", error=None, next=next_url)
    try:
        name = accounts.login_name(request.form.get("name", ""))
    except InputError as error:
        audit_event("login_failed", outcome="denied", details={"reason": error.message})
        message = "User name" + error.message.removeprefix("name") + "."
        return render_template("login.html", error=message, next=next_url), 422
    with connection() as db:
        user = accounts.authenticate(db, name, request.form.get("password", ""))
    if user is None:
        g.login_failed = True  # counted per name and address (kb.web.limits): MAX_FAILED_LOGINS, then refused
        audit_event("login_failed", actor=name, target=f"user:{name}", outcome="denied")
        return render_template("login.html", error="Unknown user name or wrong password.", next=next_url), 401
    session.clear()
    session.permanent = True
    session.update(user=user.name, seen=int(time.time()), generation=user.generation)
    audit_event("login", actor=user.name, target=f"user:{user.name}")
    return redirect(next_url, code=303)


@bp.post("/logout")
def logout():
    """End the session, and every other session of the same user."""
    user = current_user()
    if user is None:
        abort(400)
    with connection() as db:
        accounts.end_sessions(db, user.name)
    session.clear()
    audit_event("logout", actor=user.name, target=f"user:{user.name}")
    return redirect(url_for("pages.search_page"), code=303)
