"""The JSON API's search area: GET and POST /api/v1/search."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from kb.errors import InputError, QueryError
from kb.history import parse_day
from kb.web.api import int_arg
from kb.web.extensions import searcher

log = logging.getLogger(__name__)
bp = Blueprint("api_search", __name__)


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
        int_arg("k", args.get("k"), settings["DEFAULT_K"]),
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
