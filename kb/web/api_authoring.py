"""The JSON API's authoring area: drafts, review and publish, restore."""

from __future__ import annotations

from typing import Annotated, Literal

from flask import jsonify
from pydantic import Field

from kb import drafts
from kb.documents import ID_PATTERN, MAX_DOCUMENT_CHARS, MAX_ID_LENGTH
from kb.errors import NotFoundError
from kb.web import auth
from kb.web.contract import Area, Body, FileProblem, Model, Path, Query, responses
from kb.web.extensions import searcher, workflow
from kb.web.fields import checked, matching

bp = Area(
    "api_authoring",
    __name__,
    tag="Authoring",
    description="Drafts of new revisions, their review (four eyes) and publication, and restoring old revisions.",
)

SopId = Annotated[
    str,
    Field(json_schema_extra={"pattern": ID_PATTERN.pattern, "maxLength": MAX_ID_LENGTH}),
    checked(drafts.check_sop_id),
]
Markdown = Annotated[
    str,
    Field(max_length=MAX_DOCUMENT_CHARS, description="The whole file, front matter included."),
    checked(drafts.check_markdown),
]
Summary = Annotated[
    str,
    Field(max_length=drafts.MAX_SUMMARY_CHARS, description="One line: the commit subject."),
    checked(drafts.check_summary),
]
Commit40 = matching(drafts.COMMIT.pattern, "must be a 40-character commit id")
BASE_FIELD = Field(
    default=None, description="The revision the text was written against (GET /api/v1/sops/{id}); null for a new SOP."
)


class DraftPath(Path):
    """A draft's id."""

    draft_id: str = Field(json_schema_extra={"pattern": r"^[0-9]{1,12}$"})


class SopPathForRestore(Path):
    """The SOP to restore a revision of."""

    sop_id: str = Field(json_schema_extra={"pattern": ID_PATTERN.pattern, "maxLength": MAX_ID_LENGTH})


class DraftListArgs(Query):
    """GET /api/v1/drafts: the drafts the caller may see (authors: their own; approvers: all)."""

    status: Literal[drafts.STATUSES] | None = None
    sop_id: str | None = Field(default=None, max_length=MAX_ID_LENGTH)


class NewDraft(Body):
    """POST /api/v1/drafts: a proposed revision of an SOP (or a new one)."""

    sop_id: SopId
    markdown: Markdown
    base_revision: Commit40 | None = BASE_FIELD
    summary: Summary


class DraftChange(Body):
    """PUT /api/v1/drafts/{draft_id}: any of the fields; base_revision null means a new SOP."""

    markdown: Markdown | None = None
    summary: Summary | None = None
    base_revision: Commit40 | None = BASE_FIELD


class ReturnComment(Body):
    """POST /api/v1/drafts/{draft_id}/return: what the author should change."""

    comment: Annotated[str, Field(max_length=drafts.MAX_COMMENT_CHARS), checked(drafts.check_comment)]


class RestoreRequest(Body):
    """POST /api/v1/sops/{sop_id}/restore: the revision to bring back (as a new draft, reviewed like any other)."""

    revision: Commit40


class Draft(Model):
    """A proposed revision of one SOP."""

    id: int
    sop_id: str
    base_revision: str | None
    markdown: str
    summary: str
    author: str
    status: Literal[drafts.STATUSES]
    reviewer: str | None
    comment: str | None
    revision: str | None = Field(description="The published commit, once approved.")
    restored_from: str | None
    created: str
    updated: str


class DraftWithWarnings(Draft):
    """A draft just written, with the lint warnings of its text (errors refuse it with 422)."""

    warnings: list[FileProblem]


class DraftWithProblems(Draft):
    """A draft with every lint problem of its text against the library as it is now."""

    problems: list[FileProblem]


class DraftList(Model):
    """Drafts, newest first."""

    drafts: list[Draft]


class Approval(Model):
    """A draft approved and published: the new revision."""

    revision: str
    draft: Draft


def _draft_response(draft, warnings=(), status: int = 200):
    return jsonify({**draft.to_dict(), "warnings": [p.to_dict() for p in warnings]}), status


def _draft_id(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise NotFoundError(f"no draft with id {value!r}", {"field": "id"})
    return int(value)


@bp.get("/api/v1/drafts", responses=responses(DraftList, 422))
def list_drafts(query: DraftListArgs):
    """Drafts the caller may see (authors: their own; approvers: all)."""
    user = auth.require("author")
    return jsonify({"drafts": [d.to_dict() for d in workflow().drafts(user, query.status, query.sop_id)]})


@bp.post("/api/v1/drafts", responses=responses(DraftWithWarnings, 404, 409, 422, status=201))
def create_draft(body: NewDraft):
    """A new draft: the whole file, the revision it was written against (null for a new SOP), a summary."""
    user = auth.require("author")
    draft, warnings = workflow().create(
        user, body.sop_id, body.markdown, body.base_revision, body.summary, auth.client_address()
    )
    return _draft_response(draft, warnings, 201)


@bp.get("/api/v1/drafts/<draft_id>", responses=responses(DraftWithProblems, 404))
def get_draft(path: DraftPath):
    """One draft, with its lint problems against the library as it is now."""
    draft = workflow().readable(auth.require("author"), _draft_id(path.draft_id))
    problems = workflow().checks.problems(draft.sop_id, draft.markdown)
    return jsonify({**draft.to_dict(), "problems": [p.to_dict() for p in problems]})


@bp.put("/api/v1/drafts/<draft_id>", responses=responses(DraftWithWarnings, 404, 409, 422))
def update_draft(path: DraftPath, body: DraftChange):
    """Change a draft: any of markdown, summary, base_revision."""
    user = auth.require("author")
    draft, warnings = workflow().update(
        user,
        _draft_id(path.draft_id),
        body.markdown,
        body.summary,
        body.base_revision if "base_revision" in body.model_fields_set else ...,
        auth.client_address(),
    )
    return _draft_response(draft, warnings)


@bp.post("/api/v1/drafts/<draft_id>/submit", responses=responses(DraftWithWarnings, 404, 409, 422))
def submit_draft(path: DraftPath):
    """Send a draft for review."""
    user = auth.require("author")
    return _draft_response(workflow().submit(user, _draft_id(path.draft_id), auth.client_address()))


@bp.post("/api/v1/drafts/<draft_id>/return", responses=responses(DraftWithWarnings, 404, 409, 422))
def return_draft(path: DraftPath, body: ReturnComment):
    """Send a draft in review back to its author with a comment."""
    user = auth.require("approver")
    draft = workflow().return_(user, _draft_id(path.draft_id), body.comment, auth.client_address())
    return _draft_response(draft)


@bp.post("/api/v1/drafts/<draft_id>/approve", responses=responses(Approval, 404, 409, 422))
def approve_draft(path: DraftPath):
    """Approve and publish a draft in review (never your own)."""
    user = auth.require("approver")
    revision = workflow().approve(user, _draft_id(path.draft_id), auth.client_address())
    return jsonify({"revision": revision, "draft": workflow().get(_draft_id(path.draft_id)).to_dict()})


@bp.post("/api/v1/sops/<sop_id>/restore", responses=responses(DraftWithWarnings, 404, 409, 422, status=201))
def restore_revision(path: SopPathForRestore, body: RestoreRequest):
    """A new draft from an old revision; it goes through review like any other."""
    user = auth.require("author")
    searcher().document(path.sop_id)  # 404 for an unknown SOP
    return _draft_response(workflow().restore(user, path.sop_id, body.revision, auth.client_address()), status=201)
