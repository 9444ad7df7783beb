"""The JSON API, version 1: shared request helpers, the key scope of every route, and its areas.

Each area is a blueprint of its own: kb/web/api_search.py (search), api_assist.py (a whole ticket),
api_documents.py (documents, categories, history), api_authoring.py (drafts, review, publish) and
api_admin.py (audit, health).
register() adds them all, exempts them from CSRF (the API takes API keys, never the session cookie) and
checks every /api/ request made with a key against ROUTE_SCOPES.
"""

from __future__ import annotations

from flask import Flask, request

from kb.errors import InputError, QueryError
from kb.web import auth

# The scope an API key needs for each route (method, rule); a route missing here refuses every key.
ROUTE_SCOPES = {
    ("GET", "/api/v1/search"): "search",
    ("POST", "/api/v1/search"): "search",
    ("POST", "/api/v1/assist"): "search",
    ("GET", "/api/v1/sops"): "read",
    ("GET", "/api/v1/sops/<sop_id>"): "read",
    ("GET", "/api/v1/categories"): "read",
    ("GET", "/api/v1/categories/<path:category_id>"): "read",
    ("GET", "/api/v1/sops/<sop_id>/revisions"): "read",
    ("GET", "/api/v1/sops/<sop_id>/revisions/<revision>"): "read",
    ("GET", "/api/v1/sops/<sop_id>/diff"): "read",
    ("GET", "/api/v1/review-due"): "read",
    ("GET", "/api/v1/drafts"): "write",
    ("POST", "/api/v1/drafts"): "write",
    ("GET", "/api/v1/drafts/<draft_id>"): "write",
    ("PUT", "/api/v1/drafts/<draft_id>"): "write",
    ("POST", "/api/v1/drafts/<draft_id>/submit"): "write",
    ("POST", "/api/v1/sops/<sop_id>/restore"): "write",
    ("POST", "/api/v1/drafts/<draft_id>/return"): "review",
    ("POST", "/api/v1/drafts/<draft_id>/approve"): "review",
    ("GET", "/api/v1/audit"): "admin",
}


def check_key_scope() -> None:
    """A request made with an API key needs the route's scope (403 naming it); HEAD is checked as GET."""
    if request.url_rule is None or not request.path.startswith("/api/"):
        return
    method = "GET" if request.method == "HEAD" else request.method
    auth.require_scope(ROUTE_SCOPES.get((method, request.url_rule.rule)))


def register(app: Flask) -> None:
    """Register every area of the API on the app."""
    from kb.web import api_admin, api_assist, api_authoring, api_documents, api_search

    for area in (api_search, api_assist, api_documents, api_authoring, api_admin):
        auth.csrf.exempt(area.bp)
        app.register_blueprint(area.bp)
    app.before_request(check_key_scope)


def int_arg(name: str, value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise QueryError(f"{name}: must be a whole number, got {value[:20]!r}", {"field": name}) from None


def json_body(allowed: set[str], required: set[str] = frozenset()) -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InputError("body: must be a JSON object", {"field": "body"})
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InputError(f"{unknown[0]}: unknown field", {"field": unknown[0]})
    for name in sorted(required):
        if name not in body:
            raise InputError(f"{name}: required", {"field": name})
    return body
