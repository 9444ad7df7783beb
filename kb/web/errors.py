"""One error shape for the API, {"error": {"code", "message", "details"}}, and error pages."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from kb.errors import AuthRequiredError, ForbiddenError, KbError

log = logging.getLogger(__name__)


def error_body(code: str, message: str, details: object = None) -> dict:
    """The API's error shape."""
    return {"error": {"code": code, "message": message, "details": details}}


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def _respond(status: int, code: str, message: str, details: object = None):
    if _wants_json():
        return jsonify(error_body(code, message, details)), status
    return render_template("error.html", status=status, message=message), status


def register(app: Flask) -> None:
    """Install the error handlers on app."""

    @app.errorhandler(KbError)
    def kb_error(error: KbError):
        if isinstance(error, AuthRequiredError) and not _wants_json() and request.method == "GET":
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")), code=303)
        if isinstance(error, ForbiddenError):
            from kb.web import auth

            auth.denied(auth.current_user(), error.message)
        if error.http_status >= 500:
            log.error("%s: %s", error.code, error.message)
        return _respond(error.http_status, error.code, error.message, error.details)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = (error.name or "error").lower().replace(" ", "_")
        return _respond(error.code or 500, code, error.description or error.name)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _respond(500, "internal_error", "an unexpected error occurred")
