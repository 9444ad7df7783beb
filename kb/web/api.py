"""The JSON API, version 1."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from kb import audit
from kb.errors import InputError, NotFoundError, QueryError
from kb.history import parse_day
from kb.web import auth, history, path_of, searcher, workflow

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__)

# The scope an API key needs for each route (method, rule); a route missing here refuses every key.
ROUTE_SCOPES = {
    ("GET", "/api/v1/search"): "search",
    ("POST", "/api/v1/search"): "search",
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


@bp.before_request
def check_key_scope() -> None:
    """A request made with an API key needs the route's scope (403 naming it); HEAD is checked as GET."""
    if request.url_rule is None or not request.path.startswith("/api/"):
        return
    method = "GET" if request.method == "HEAD" else request.method
    auth.require_scope(ROUTE_SCOPES.get((method, request.url_rule.rule)))


def _int_arg(name: str, value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise QueryError(f"{name}: must be a whole number, got {value[:20]!r}", {"field": name}) from None


def _search(query, k, mode, filters, as_of=None):
    try:
        day = parse_day(as_of) if as_of not in (None, "") else None
    except InputError as error:
        raise QueryError(error.message, error.details) from None  # search requests answer 400 for bad fields
    results = searcher().search(query, k, mode, filters, as_of=day)
    log.info(
        "search mode=%s k=%s results=%d took_ms=%.1f degraded=%s query=%r",
        results.mode,
        k,
        len(results.hits),
        results.took_ms,
        results.degraded,
        results.query,
    )
    return jsonify(results.to_dict())


@bp.get("/api/v1/search")
def search_get():
    """Search with query-string parameters q, k, mode, business_line, category, type, as_of."""
    args = request.args
    settings = searcher().settings
    filters = {key: args[key] for key in ("business_line", "category", "type") if args.get(key)}
    return _search(
        args.get("q", ""),
        _int_arg("k", args.get("k"), settings["DEFAULT_K"]),
        args.get("mode") or "hybrid",
        filters or None,
        args.get("as_of"),
    )


@bp.post("/api/v1/search")
def search_post():
    """Search with a JSON body {"query", "k", "mode", "filters", "as_of"}."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise QueryError("body: must be a JSON object with a 'query' field", {"field": "body"})
    unknown = set(body) - {"query", "k", "mode", "filters", "as_of"}
    if unknown:
        raise QueryError(f"body: unknown field {sorted(unknown)[0]!r}", {"field": sorted(unknown)[0]})
    return _search(
        body.get("query"),
        body.get("k", searcher().settings["DEFAULT_K"]),
        body.get("mode", "hybrid"),
        body.get("filters"),
        body.get("as_of"),
    )


@bp.get("/api/v1/sops")
def list_sops():
    """Every document's metadata."""
    docs = searcher().list_documents()
    return jsonify({"sops": docs})


@bp.get("/api/v1/sops/<sop_id>")
def get_sop(sop_id: str):
    """One document: metadata, sections, rendered html, the stored markdown and its revision.

    With ?as_of=YYYY-MM-DD, the revision in force that day (the latest whose effective date is on or before it).
    """
    if request.args.get("as_of"):
        day = parse_day(request.args["as_of"])
        path = path_of(sop_id)
        found = history().as_of(path, day)
        if found is None:
            raise NotFoundError(f"{sop_id} had no revision in force on {day}", {"field": "as_of"})
        return jsonify({**history().document(sop_id, path, found.commit), "as_of": day.isoformat()})
    return jsonify(searcher().document(sop_id))


@bp.get("/api/v1/categories")
def list_categories():
    """The issue taxonomy: groups, their categories, the documents of each, and the uncovered categories."""
    return jsonify(searcher().taxonomy())


@bp.get("/api/v1/categories/<path:category_id>")
def get_category(category_id: str):
    """One category or group with its documents."""
    return jsonify(searcher().category(category_id))


@bp.get("/healthz")
def healthz():
    """Health: 200 ok, 200 degraded (with the reason and what to run), 503 unavailable (nothing can serve)."""
    health = searcher().health()
    return jsonify(health), 503 if health["status"] == "unavailable" else 200


# -- authoring: drafts, review, publish ------------------------------------------------------------------


def _body(allowed: set[str], required: set[str] = frozenset()) -> dict:
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


def _draft_response(draft, warnings=(), status: int = 200):
    return jsonify({**draft.to_dict(), "warnings": [p.to_dict() for p in warnings]}), status


def _draft_id(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise NotFoundError(f"no draft with id {value!r}", {"field": "id"})
    return int(value)


@bp.get("/api/v1/drafts")
def list_drafts():
    """Drafts the caller may see (authors: their own; approvers: all); ?status=&sop_id=."""
    user = auth.require("author")
    drafts = workflow().drafts(user, request.args.get("status") or None, request.args.get("sop_id") or None)
    return jsonify({"drafts": [d.to_dict() for d in drafts]})


@bp.post("/api/v1/drafts")
def create_draft():
    """A new draft: {"sop_id", "markdown" (the whole file), "base_revision" (null for a new SOP), "summary"}."""
    user = auth.require("author")
    body = _body({"sop_id", "markdown", "base_revision", "summary"}, {"sop_id", "markdown", "summary"})
    draft, warnings = workflow().create(
        user, body["sop_id"], body["markdown"], body.get("base_revision"), body["summary"], auth.client_address()
    )
    return _draft_response(draft, warnings, 201)


@bp.get("/api/v1/drafts/<draft_id>")
def get_draft(draft_id: str):
    """One draft, with its lint problems against the library as it is now."""
    draft = workflow().readable(auth.require("author"), _draft_id(draft_id))
    problems = workflow().problems(draft.sop_id, draft.markdown)
    return jsonify({**draft.to_dict(), "problems": [p.to_dict() for p in problems]})


@bp.put("/api/v1/drafts/<draft_id>")
def update_draft(draft_id: str):
    """Change a draft: any of {"markdown", "summary", "base_revision"}."""
    user = auth.require("author")
    body = _body({"markdown", "summary", "base_revision"})
    draft, warnings = workflow().update(
        user,
        _draft_id(draft_id),
        body.get("markdown"),
        body.get("summary"),
        body["base_revision"] if "base_revision" in body else ...,
        auth.client_address(),
    )
    return _draft_response(draft, warnings)


@bp.post("/api/v1/drafts/<draft_id>/submit")
def submit_draft(draft_id: str):
    """Send a draft for review."""
    user = auth.require("author")
    return _draft_response(workflow().submit(user, _draft_id(draft_id), auth.client_address()))


@bp.post("/api/v1/drafts/<draft_id>/return")
def return_draft(draft_id: str):
    """Send a draft in review back to its author: {"comment"}."""
    user = auth.require("approver")
    body = _body({"comment"}, {"comment"})
    return _draft_response(workflow().return_(user, _draft_id(draft_id), body["comment"], auth.client_address()))


@bp.post("/api/v1/drafts/<draft_id>/approve")
def approve_draft(draft_id: str):
    """Approve and publish a draft in review (never your own): {"revision": <commit>}."""
    user = auth.require("approver")
    revision = workflow().approve(user, _draft_id(draft_id), auth.client_address())
    return jsonify({"revision": revision, "draft": workflow().get(_draft_id(draft_id)).to_dict()})


@bp.post("/api/v1/sops/<sop_id>/restore")
def restore_revision(sop_id: str):
    """A new draft from an old revision: {"revision"}; it goes through review like any other."""
    user = auth.require("author")
    body = _body({"revision"}, {"revision"})
    searcher().document(sop_id)  # 404 for an unknown SOP
    return _draft_response(workflow().restore(user, sop_id, body["revision"], auth.client_address()), status=201)


# -- history -----------------------------------------------------------------------------------------------


@bp.get("/api/v1/sops/<sop_id>/revisions")
def list_revisions(sop_id: str):
    """The SOP's published revisions, newest first: revision, date, author, approver, summary, effective."""
    revisions = history().revisions(path_of(sop_id))
    return jsonify({"sop_id": sop_id, "revisions": [r.to_dict() for r in revisions]})


@bp.get("/api/v1/sops/<sop_id>/revisions/<revision>")
def get_revision(sop_id: str, revision: str):
    """One revision of an SOP: metadata, sections, markdown and rendered html."""
    return jsonify(history().document(sop_id, path_of(sop_id), revision))


@bp.get("/api/v1/sops/<sop_id>/diff")
def diff_revisions(sop_id: str):
    """The difference between two revisions (?from=&to=; to defaults to the latest): word-level and unified."""
    return jsonify(history().diff(path_of(sop_id), request.args.get("from", ""), request.args.get("to") or None))


@bp.get("/api/v1/review-due")
def review_due_api():
    """Documents whose review_by has passed or falls in the next 30 days, by owner."""
    from kb.reviews import review_due

    return jsonify({"owners": review_due(searcher().list_documents())})


@bp.get("/api/v1/audit")
def audit_log():
    """The audit log (admin only): ?actor=&action=&target=&outcome=&since=&until=&limit=&offset=."""
    auth.require("admin")
    args = request.args
    filters = {key: args.get(key) or None for key in ("actor", "action", "target", "outcome", "since", "until")}
    limit = _int_arg("limit", args.get("limit"), 100)
    offset = _int_arg("offset", args.get("offset"), 0)
    with auth.connection() as db:
        rows = audit.query(db, **filters, limit=limit, offset=offset)
    return jsonify({"events": rows, "limit": limit, "offset": offset})
