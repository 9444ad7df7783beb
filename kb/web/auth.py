"""Who is asking: browser sessions (log-in, log-out, idle expiry, CSRF) and API keys; roles checked here.

Pages use a signed session cookie (HttpOnly, SameSite=Lax, Secure unless
KB_COOKIE_SECURE=off) and a CSRF token on every form (Flask-WTF). The JSON API
uses ``Authorization: Bearer <key>`` only, never the cookie, so no API call can
be forged from another site. Every refusal is written to the audit log.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
from pathlib import Path

from flask import Blueprint, Flask, abort, current_app, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFProtect

from kb import accounts, audit, store
from kb.errors import AuthRequiredError, ForbiddenError

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()
MAX_FAILED_LOGINS = 5  # failed log-ins for one name within LOCKOUT_SECONDS before it is refused outright
LOCKOUT_SECONDS = 15 * 60
SECRET_FILE = "secret_key"  # noqa: S105 - a file name, not a secret


def _secret_key(data_dir: Path) -> str:
    """The instance's session signing key, made once and shared by every worker process."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        os.replace(path.with_suffix(".tmp"), path)
    return path.read_text().strip()


def init_app(app: Flask) -> None:
    """Session cookie settings, CSRF, security headers and the user of each request."""
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
    csrf.init_app(app)

    @app.before_request
    def load_user() -> None:
        g.user, g.via_key = None, False
        header = request.headers.get("Authorization", "")
        if request.path.startswith("/api/"):
            if header:
                scheme, _, key = header.partition(" ")
                if scheme.lower() != "bearer" or not key.strip():
                    raise AuthRequiredError("Authorization: use 'Bearer <API key>'", {"field": "Authorization"})
                with connection() as db:
                    g.user = accounts.user_for_key(db, key.strip())
                if g.user is None:
                    _audit("login_failed", outcome="denied", details={"via": "api key"})
                    raise AuthRequiredError("Authorization: unknown or revoked API key", {"field": "Authorization"})
                g.via_key = True
            return
        name = session.get("user")
        if not name:
            return
        idle = settings["SESSION_IDLE_MINUTES"] * 60
        if time.time() - session.get("seen", 0) > idle:
            session.clear()
            _audit("session_expired", actor=name, target=f"user:{name}")
            return
        session["seen"] = int(time.time())
        with connection() as db:
            g.user = accounts.get_user(db, name)
        if g.user is None or g.user.disabled:
            session.clear()
            g.user = None

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


class connection:  # noqa: N801 - used like a function: `with connection() as db`
    """The instance database for this request."""

    def __enter__(self):
        self.db = store.connect(current_app.config["KB"]["DATA_DIR"])
        return self.db

    def __exit__(self, *exc) -> None:
        self.db.close()


def client_address() -> str:
    """The client's address as the server saw it."""
    return request.remote_addr or "-"


def _audit(action: str, actor: str | None = None, target: str | None = None, outcome: str = "ok", details=None):
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


def denied(user: accounts.User | None, reason: str, target: str | None = None) -> None:
    """Record a refusal in the audit log (the error handler does it for every ForbiddenError)."""
    details = {"reason": reason, "method": request.method, "path": request.path}
    _audit("permission_denied", actor=user.name if user else None, target=target, outcome="denied", details=details)


def _recent_failures(name: str) -> int:
    """Failed log-ins for a user name in the last LOCKOUT_SECONDS (a guard against guessing passwords)."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=LOCKOUT_SECONDS)
    with connection() as db:
        rows = audit.query(db, action="login_failed", target=f"user:{name}", since=since, limit=MAX_FAILED_LOGINS)
    return sum(1 for row in rows if row["target"] == f"user:{name}")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in with a user name and password."""
    error = None
    next_url = request.values.get("next") or url_for("pages.search_page")
    if not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url:
        next_url = url_for("pages.search_page")  # only local redirects
    if request.method == "POST":
        name = request.form.get("name", "").strip()[:64]
        password = request.form.get("password", "")
        if _recent_failures(name) >= MAX_FAILED_LOGINS:
            _audit(
                "login_failed", actor=name or None, target=f"user:{name}", outcome="denied", details={"locked": True}
            )
            minutes = LOCKOUT_SECONDS // 60
            error = f"Too many failed log-ins for this name: try again in {minutes} minutes."
            return render_template("login.html", error=error, next=next_url), 429
        with connection() as db:
            user = accounts.authenticate(db, name, password)
        if user is None:
            _audit("login_failed", actor=name[:64] or None, target=f"user:{name[:64]}", outcome="denied")
            error = "Unknown user name or wrong password."
        else:
            session.clear()
            session.permanent = True
            session.update(user=user.name, seen=int(time.time()))
            _audit("login", actor=user.name, target=f"user:{user.name}")
            return redirect(next_url, code=303)
    return render_template("login.html", error=error, next=next_url), (401 if error else 200)


@bp.post("/logout")
def logout():
    """End the session."""
    user = current_user()
    if user is None:
        abort(400)
    session.clear()
    _audit("logout", actor=user.name, target=f"user:{user.name}")
    return redirect(url_for("pages.search_page"), code=303)
