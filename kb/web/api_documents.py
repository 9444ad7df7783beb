"""The JSON API's documents area: SOPs, categories, revisions, diffs and review dates."""

from __future__ import annotations

from flask import jsonify
from pydantic import Field

from kb.documents import ID_PATTERN, MAX_ID_LENGTH
from kb.errors import NotFoundError
from kb.history import parse_day
from kb.repository import COMMIT_PATTERN
from kb.results import CATEGORY_PATTERN
from kb.web.contract import Area, FileProblem, Model, Path, Query, responses
from kb.web.extensions import history, path_of, searcher
from kb.web.fields import Day, matching

bp = Area(
    "api_documents",
    __name__,
    tag="Documents",
    description="The published SOPs and policies, their revisions and diffs, and the issue categories they serve.",
)

Commit = matching(COMMIT_PATTERN.pattern, "must be a commit id (7 to 40 hex digits)")


class SopPath(Path):
    """An SOP's id."""

    sop_id: str = Field(json_schema_extra={"pattern": ID_PATTERN.pattern, "maxLength": MAX_ID_LENGTH})


class RevisionPath(Path):
    """An SOP's id and one of its revisions."""

    sop_id: str = Field(json_schema_extra={"pattern": ID_PATTERN.pattern, "maxLength": MAX_ID_LENGTH})
    revision: str = Field(json_schema_extra={"pattern": COMMIT_PATTERN.pattern})


class CategoryPath(Path):
    """A category (group/name) or a group id."""

    category_id: str = Field(json_schema_extra={"pattern": CATEGORY_PATTERN})


class SopArgs(Query):
    """GET /api/v1/sops/{sop_id}: the latest revision, or the one in force on a day."""

    as_of: Day | None = Field(default=None, description="The revision in force that day (its effective date).")


class DiffArgs(Query):
    """GET /api/v1/sops/{sop_id}/diff: two revisions."""

    from_: Commit = Field(alias="from")
    to: Commit | None = Field(default=None, description="Default: the latest revision.")


class SopSummary(Model):
    """A document's metadata."""

    id: str
    title: str
    type: str
    business_line: str
    categories: list[str]
    owner: str
    status: str
    effective: str
    review_by: str | None
    tags: list[str]
    path: str
    revision: str | None


class SopList(Model):
    """Every document's metadata, by id."""

    sops: list[SopSummary]


class Heading(Model):
    """A heading of a document and its anchor."""

    heading: str
    anchor: str
    level: int


class SopDocument(Model):
    """One revision of a document: metadata (when that revision parses), sections, html and the stored text."""

    id: str
    path: str
    revision: str | None
    title: str | None = None
    type: str | None = None
    business_line: str | None = None
    categories: list[str] | None = None
    owner: str | None = None
    status: str | None = None
    effective: str | None = None
    review_by: str | None = None
    tags: list[str] | None = None
    sections: list[Heading]
    html: str = Field(description="The body rendered (raw HTML disabled, safe links only).")
    markdown: str = Field(description="The whole file as stored, front matter included.")
    problems: list[FileProblem] | None = Field(default=None, description="An older revision's errors today.")
    as_of: str | None = Field(default=None, description="With ?as_of: the day asked for.")


class DocumentRef(Model):
    """A document serving a category."""

    id: str
    title: str
    type: str
    status: str


class GroupRef(Model):
    """A category's group."""

    id: str
    name: str


class Category(Model):
    """A category (or a group, with its children) and the documents that serve it."""

    id: str
    name: str
    description: str | None
    examples: list[str]
    parent: str | None
    documents: list[DocumentRef]
    children: list[Category] | None = Field(default=None, description="A group's categories.")
    group: GroupRef | None = Field(default=None, description="A category's group.")


class Taxonomy(Model):
    """The issue taxonomy: groups, their categories, the documents of each, and the uncovered categories."""

    categories: list[Category]
    uncovered: list[str]


class RevisionInfo(Model):
    """One published revision: the commit, who wrote and approved it, and from when it applies."""

    commit: str
    date: str
    author: str
    author_email: str
    reviewer: str | None
    reviewer_email: str | None
    summary: str
    effective: str | None


class RevisionList(Model):
    """An SOP's published revisions, newest first."""

    sop_id: str
    revisions: list[RevisionInfo]


class DiffStats(Model):
    """Words inserted and deleted."""

    words_inserted: int
    words_deleted: int


class Diff(Model):
    """The difference between two revisions: word level (HTML) and unified."""

    from_: str = Field(alias="from")
    to: str
    html: str
    unified: str
    stats: DiffStats


class DueDocument(Model):
    """A document whose review is due."""

    id: str
    title: str
    type: str
    owner: str
    review_by: str
    overdue: bool
    days_left: int


class ReviewDue(Model):
    """Documents whose review_by has passed or falls in the next 30 days, by owner."""

    owners: dict[str, list[DueDocument]]


@bp.get("/api/v1/sops", responses=responses(SopList))
def list_sops():
    """Every document's metadata."""
    return jsonify({"sops": searcher().list_documents()})


@bp.get("/api/v1/sops/<sop_id>", responses=responses(SopDocument, 404, 422))
def get_sop(path: SopPath, query: SopArgs):
    """One document: metadata, sections, rendered html, the stored markdown and its revision."""
    if query.as_of:
        day = parse_day(query.as_of)
        file = path_of(path.sop_id)
        found = history().as_of(file, day)
        if found is None:
            raise NotFoundError(f"{path.sop_id} had no revision in force on {day}", {"field": "as_of"})
        return jsonify({**history().document(path.sop_id, file, found.commit), "as_of": day.isoformat()})
    return jsonify(searcher().document(path.sop_id))


@bp.get("/api/v1/categories", responses=responses(Taxonomy))
def list_categories():
    """The issue taxonomy: groups, their categories, the documents of each, and the uncovered categories."""
    return jsonify(searcher().taxonomy())


@bp.get("/api/v1/categories/<path:category_id>", responses=responses(Category, 404))
def get_category(path: CategoryPath):
    """One category or group with its documents."""
    return jsonify(searcher().category(path.category_id))


@bp.get("/api/v1/sops/<sop_id>/revisions", responses=responses(RevisionList, 404))
def list_revisions(path: SopPath):
    """The SOP's published revisions, newest first."""
    revisions = history().revisions(path_of(path.sop_id))
    return jsonify({"sop_id": path.sop_id, "revisions": [r.to_dict() for r in revisions]})


@bp.get("/api/v1/sops/<sop_id>/revisions/<revision>", responses=responses(SopDocument, 404, 422))
def get_revision(path: RevisionPath):
    """One revision of an SOP: metadata, sections, markdown and rendered html."""
    return jsonify(history().document(path.sop_id, path_of(path.sop_id), path.revision))


@bp.get("/api/v1/sops/<sop_id>/diff", responses=responses(Diff, 404, 422))
def diff_revisions(path: SopPath, query: DiffArgs):
    """The difference between two revisions (to defaults to the latest): word-level and unified."""
    return jsonify(history().diff(path_of(path.sop_id), query.from_, query.to))


@bp.get("/api/v1/review-due", responses=responses(ReviewDue))
def review_due_api():
    """Documents whose review_by has passed or falls in the next 30 days, by owner."""
    from kb.reviews import review_due

    return jsonify({"owners": review_due(searcher().list_documents())})
