"""The JSON API, version 1: the key scope of every route, who may call it, and its areas.

Each area is a blueprint of its own (a kb.web.contract.Area, whose routes declare their request and answer
models): kb/web/api_search.py (search), api_assist.py (a whole ticket), api_documents.py (documents,
categories, history), api_feedback.py (feedback and flags on SOPs), api_analytics.py (the owners' dashboard
as numbers), api_authoring.py (drafts, review, publish), api_admin.py (audit, health) and api_reference.py
(the OpenAPI document and its reference page); api_retrieval.py (Dify's External Knowledge API, POST
/retrieval) is a plain blueprint with its own error shape. register() adds them all and exempts them from
CSRF (the API takes API keys, never the session cookie); check_access() checks every request to the machine
API (kb/web/paths.py: /api/, /retrieval; /mcp checks its own) against ROUTE_SCOPES and ROUTE_ROLES before its
fields are validated.
"""

from __future__ import annotations

from flask import Flask, request

from kb.accounts import SCOPE_ROLES
from kb.web import auth
from kb.web.paths import MCP_PATH, takes_key

PUBLIC = "public"  # not a scope: anyone may call the route, with or without a key (the contract itself)
ANONYMOUS_SCOPES = frozenset({"search", "read"})  # routes of these scopes answer without credentials too

# The scope an API key needs for each route (method, rule); a route missing here refuses every key. A route
# whose scope is not in ANONYMOUS_SCOPES also needs a user whose role reaches it (SCOPE_ROLES).
ROUTE_SCOPES = {
    ("GET", "/api/v1/openapi.json"): PUBLIC,
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
    ("GET", "/api/v1/analytics"): "read",
    ("POST", "/api/v1/feedback"): "search",
    ("POST", "/api/v1/sops/<sop_id>/flags"): "search",
    ("GET", "/api/v1/drafts"): "write",
    ("POST", "/api/v1/drafts"): "write",
    ("GET", "/api/v1/drafts/<draft_id>"): "write",
    ("PUT", "/api/v1/drafts/<draft_id>"): "write",
    ("POST", "/api/v1/drafts/<draft_id>/submit"): "write",
    ("POST", "/api/v1/sops/<sop_id>/restore"): "write",
    ("POST", "/api/v1/drafts/<draft_id>/return"): "review",
    ("POST", "/api/v1/drafts/<draft_id>/approve"): "review",
    ("GET", "/api/v1/audit"): "admin",
    ("POST", "/retrieval"): "search",
}

# Routes of an anonymous scope that still need a user (an API key, or later a browser session): they store what
# someone said about an SOP, for its owner to read. Their scope is "search" because the callers that search (agents,
# support bots) are the ones that give feedback; a key made for search alone can post it, without write.
NEEDS_USER = frozenset({("POST", "/api/v1/feedback"), ("POST", "/api/v1/sops/<sop_id>/flags")})

# Routes that need a user of a higher role than their scope's (and so no anonymous callers). The analytics only
# read (scope read: a reporting bot's key needs no write), but they hold what agents searched for and said, which
# the dashboard shows to owners, approvers and admins only.
ROUTE_ROLES = {("GET", "/api/v1/analytics"): "author"}


def route_role(method: str, rule: str) -> str | None:
    """The role a route needs beyond its scope's (ROUTE_ROLES), None for most; HEAD is GET."""
    return ROUTE_ROLES.get(("GET" if method == "HEAD" else method, rule))


def route_scope(method: str, rule: str) -> str | None:
    """The scope of a route (PUBLIC for the open ones), None when it takes no key; HEAD is GET."""
    return ROUTE_SCOPES.get(("GET" if method == "HEAD" else method, rule))


def anonymous_allowed(method: str, rule: str) -> bool:
    """Whether a route answers callers without credentials (an anonymous scope, not in NEEDS_USER)."""
    scope = route_scope(method, rule)
    if route_role(method, rule) is not None:
        return False
    return scope == PUBLIC or (scope in ANONYMOUS_SCOPES and (method, rule) not in NEEDS_USER)


def check_access() -> None:
    """Before a /api/ request is validated: a key needs the route's scope (403 naming it), and a route that is
    not open to anonymous callers needs a user with the scope's role (401, or 403 with the role)."""
    if request.url_rule is None or not takes_key(request.path) or request.path == MCP_PATH:
        return  # /mcp: kb/web/mcp.py checks the key (search or read) and each tool's scope
    scope = route_scope(request.method, request.url_rule.rule)
    if scope == PUBLIC:
        return
    auth.require_scope(scope)
    role = route_role(request.method, request.url_rule.rule)
    if role is not None:
        auth.require(role)
    elif scope is not None and not anonymous_allowed(request.method, request.url_rule.rule):
        auth.require(SCOPE_ROLES[scope])


def register(app: Flask) -> None:
    """Register every area of the API on the app (flask-openapi3's register_api: routes and their models)."""
    from kb.web import (
        api_admin,
        api_analytics,
        api_assist,
        api_authoring,
        api_documents,
        api_feedback,
        api_reference,
        api_retrieval,
        api_search,
    )

    areas = (
        api_search,
        api_assist,
        api_documents,
        api_feedback,
        api_analytics,
        api_authoring,
        api_admin,
        api_reference,
    )
    for area in areas:
        auth.csrf.exempt(area.bp)
        app.register_api(area.bp)
    auth.csrf.exempt(api_retrieval.bp)
    app.register_blueprint(api_retrieval.bp)  # Dify's shape, not the contract's: validated by its own models
    api_retrieval.register(app)
    app.register_blueprint(api_reference.assets)
    app.before_request(check_access)
