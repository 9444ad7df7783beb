"""The JSON API's documents area: SOPs, categories, revisions, diffs and review dates."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from kb.errors import NotFoundError
from kb.history import parse_day
from kb.web.extensions import history, path_of, searcher

bp = Blueprint("api_documents", __name__)


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
