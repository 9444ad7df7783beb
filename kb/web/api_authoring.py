"""The JSON API's authoring area: drafts, review and publish, restore."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from kb.errors import NotFoundError
from kb.web import auth
from kb.web.api import json_body
from kb.web.extensions import searcher, workflow

bp = Blueprint("api_authoring", __name__)


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
    body = json_body({"sop_id", "markdown", "base_revision", "summary"}, {"sop_id", "markdown", "summary"})
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
    body = json_body({"markdown", "summary", "base_revision"})
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
    body = json_body({"comment"}, {"comment"})
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
    body = json_body({"revision"}, {"revision"})
    searcher().document(sop_id)  # 404 for an unknown SOP
    return _draft_response(workflow().restore(user, sop_id, body["revision"], auth.client_address()), status=201)
