"""The JSON API, version 1."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from kb.errors import KbError, QueryError
from kb.web import searcher

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__)


def _int_arg(name: str, value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise QueryError(f"{name}: must be a whole number, got {value[:20]!r}", {"field": name}) from None


def _search(query, k, mode, filters):
    results = searcher().search(query, k, mode, filters)
    log.info(
        "search mode=%s k=%s results=%d took_ms=%.1f query=%r",
        results.mode,
        k,
        len(results.hits),
        results.took_ms,
        results.query,
    )
    return jsonify(results.to_dict())


@bp.get("/api/v1/search")
def search_get():
    """Search with query-string parameters q, k, mode, business_line, category, type."""
    args = request.args
    settings = searcher().settings
    filters = {key: args[key] for key in ("business_line", "category", "type") if args.get(key)}
    return _search(
        args.get("q", ""),
        _int_arg("k", args.get("k"), settings["DEFAULT_K"]),
        args.get("mode") or "hybrid",
        filters or None,
    )


@bp.post("/api/v1/search")
def search_post():
    """Search with a JSON body {"query", "k", "mode", "filters"}."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise QueryError("body: must be a JSON object with a 'query' field", {"field": "body"})
    unknown = set(body) - {"query", "k", "mode", "filters"}
    if unknown:
        raise QueryError(f"body: unknown field {sorted(unknown)[0]!r}", {"field": sorted(unknown)[0]})
    return _search(
        body.get("query"),
        body.get("k", searcher().settings["DEFAULT_K"]),
        body.get("mode", "hybrid"),
        body.get("filters"),
    )


@bp.get("/api/v1/sops")
def list_sops():
    """Every document's metadata."""
    docs = searcher().list_documents()
    return jsonify({"sops": docs})


@bp.get("/api/v1/sops/<sop_id>")
def get_sop(sop_id: str):
    """One document: metadata, sections, rendered html, the stored markdown and its revision."""
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
    """Liveness and the generation being served."""
    try:
        gen = searcher().generation
    except KbError as error:
        return jsonify({"status": "unavailable", "reason": error.message}), 503
    return jsonify(
        {"status": "ok", "generation": gen.name, "documents": len(gen.documents), "sections": len(gen.sections)}
    )
