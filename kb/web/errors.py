"""One error shape for the API, {"error": {"code", "message", "details"}}, and error pages.

Every message and every string in details is redacted here, once for every error: a value echoed
back (a filter, a field, a name) never carries a card number out. A refused request (400, 422) names
its first field in details.field and lists every problem in details.problems, [{"field", "message"}]
(kb/web/contract.py lists several when a request's models find several; a single check lists one). A route that must answer another
protocol's error shape (Dify's /retrieval) registers a shape for its path (register_shape); every error
on that path, from any hook or view, is then answered in it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlencode

from flask import Flask, Response, current_app, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from kb.database import DatabaseError
from kb.errors import AuthRequiredError, ForbiddenError, InputError, KbError, QueryError, StorageError, TooLargeError
from kb.redaction import install_log_filter, redact, redact_data
from kb.web.paths import takes_key

log = logging.getLogger(__name__)
# (HTTP status, kb error code, message, details) -> (body, HTTP status)
Shape = Callable[[int, str, str, object], tuple[dict, int]]


def error_body(code: str, message: str, details: object = None) -> dict:
    """The API's error shape."""
    return {"error": {"code": code, "message": message, "details": details}}


def _with_problems(error: KbError) -> object:
    """A refused request's details with its problems listed: one, from the message, when the check found one."""
    details = error.details
    if not isinstance(error, QueryError | InputError) or not isinstance(details, dict) or "problems" in details:
        return details
    field = details.get("field")
    message = error.message.removeprefix(f"{field}: ") if isinstance(field, str) else error.message
    return {**details, "problems": [{"field": field, "message": message}]}


def register_shape(app: Flask, path: str, shape: Shape) -> None:
    """Answer every error on one path in another shape (shape gets the status, code, message and details)."""
    app.extensions["kb"].setdefault("error_shapes", {})[path] = shape


def _shape() -> Shape | None:
    return current_app.extensions.get("kb", {}).get("error_shapes", {}).get(request.path)


def wants_json() -> bool:
    """Whether this request's errors are answered in JSON (the machine API and /healthz) rather than a page."""
    return takes_key(request.path) or request.path == "/healthz"


def json_error(status: int, code: str, message: str, details: object = None) -> Response:
    """A JSON error answer: the one error shape, or the shape registered for this path."""
    shape = _shape()
    body, status = shape(status, code, message, details) if shape else (error_body(code, message, details), status)
    response = jsonify(body)
    response.status_code = status
    return response


def _respond(status: int, code: str, message: str, details: object = None):
    if wants_json():
        response = json_error(status, code, message, details)
        return response, response.status_code
    return render_template("error.html", status=status, message=message), status


def _redacted_path() -> str:
    """The path and query of this request with card numbers masked in the path and in every argument."""
    pairs = [(redact(key), redact(value)) for key, value in request.args.items(multi=True)]
    return redact(request.path) + ("?" + urlencode(pairs) if pairs else "")


RETRY_AFTER_SECONDS = 5  # a 503 from storage (the database unreachable, git failing): try again after this


def _first_line(error: BaseException) -> str:
    """A driver's message, first line only (PostgreSQL adds hints and context below), masked."""
    text = str(error).strip()
    return redact(text.splitlines()[0]) if text else type(error).__name__


def register(app: Flask) -> None:
    """Install the error handlers on app, and the redacting log filter on kb's and gunicorn's loggers."""
    install_log_filter()
    app.jinja_env.filters["redact"] = redact  # templates echoing request values: {{ value|redact }}

    @app.errorhandler(KbError)
    def kb_error(error: KbError):
        if isinstance(error, AuthRequiredError) and not wants_json() and request.method == "GET":
            return redirect(url_for("auth.login", next=_redacted_path()), code=303)
        if isinstance(error, ForbiddenError):
            from kb.web import auth

            auth.denied(auth.current_user(), redact(error.message))
        if error.http_status >= 500:
            log.error("%s: %s", error.code, error.message)
        response, status = _respond(
            error.http_status, error.code, redact(error.message), redact_data(_with_problems(error))
        )
        retry_after = getattr(error, "retry_after", None)
        if retry_after is None and isinstance(error, StorageError):  # the database or git unreachable
            retry_after = RETRY_AFTER_SECONDS
        if retry_after:  # UnavailableError (a remote out of reach), StorageError, RateLimitedError: a retry may succeed
            response = make_response(response, status)
            response.headers["Retry-After"] = str(retry_after)
        return response, status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code == 413:  # werkzeug stopped a body (chunked, or a form field) past MAX_CONTENT_LENGTH
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"body: more than the {limit:,} bytes a request may send" if limit else "body: too large"
            return _respond(413, TooLargeError.code, message, {"field": "body"})
        code = (error.name or "error").lower().replace(" ", "_")
        response, status = _respond(error.code or 500, code, redact(error.description or error.name or ""))
        if getattr(error, "valid_methods", None):  # 405 names the methods the route takes (RFC 9110)
            response = make_response(response, status)
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response, status

    def database_error(error: Exception):
        """The workflow database failed (a full disk, a locked or damaged file, a PostgreSQL server gone): 503 with
        StorageError's code and a Retry-After; the transaction was rolled back, so nothing was half written."""
        log.error("the workflow database failed on %s %s: %s", request.method, request.path, error)
        message = f"the workflow database failed ({_first_line(error)}); nothing was half written, retry shortly"
        response, status = _respond(StorageError.http_status, StorageError.code, message, {"field": None})
        response = make_response(response, status)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response, status

    for kind in DatabaseError:
        app.register_error_handler(kind, database_error)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _respond(500, "internal_error", "an unexpected error occurred")
