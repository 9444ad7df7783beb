"""The JSON API's admin area: the audit log; and /healthz for load balancers."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from kb import audit
from kb.web import auth
from kb.web.api import int_arg
from kb.web.extensions import searcher

bp = Blueprint("api_admin", __name__)


@bp.get("/healthz")
def healthz():
    """Health: 200 ok, 200 degraded (with the reason and what to run), 503 unavailable (nothing can serve)."""
    health = searcher().health()
    return jsonify(health), 503 if health["status"] == "unavailable" else 200


@bp.get("/api/v1/audit")
def audit_log():
    """The audit log (admin only): ?actor=&action=&target=&outcome=&since=&until=&limit=&offset=."""
    auth.require("admin")
    args = request.args
    filters = {key: args.get(key) or None for key in ("actor", "action", "target", "outcome", "since", "until")}
    limit = int_arg("limit", args.get("limit"), 100)
    offset = int_arg("offset", args.get("offset"), 0)
    with auth.connection() as db:
        rows = audit.query(db, **filters, limit=limit, offset=offset)
    return jsonify({"events": rows, "limit": limit, "offset": offset})
