"""Drafts: the record of a proposed revision, and the checks on its fields that need no library.

A draft's text is a whole document (front matter included) of at most
:data:`kb.documents.MAX_DOCUMENT_CHARS`; its summary, one line, becomes the
commit subject when it is published.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from kb.documents import ID_PATTERN, MAX_DOCUMENT_CHARS, MAX_ID_LENGTH
from kb.errors import InputError

STATUSES = ("draft", "in_review", "published")
MAX_SUMMARY_CHARS = 200
MAX_COMMENT_CHARS = 5000
COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Draft:
    """A proposed revision of one SOP."""

    id: int
    sop_id: str
    base_revision: str | None
    markdown: str
    summary: str
    author: str
    status: str
    reviewer: str | None
    comment: str | None
    revision: str | None
    restored_from: str | None
    created: str
    updated: str

    def to_dict(self) -> dict:
        """The API's draft shape."""
        return asdict(self)


def check_fields(sop_id: object, markdown: object, summary: object, base_revision: object) -> None:
    """Check a draft's fields for type and size.

    Raises:
        InputError: naming the first bad field.
    """
    check_sop_id(sop_id)
    check_markdown(markdown)
    check_summary(summary)
    check_base_revision(base_revision)


def check_sop_id(sop_id: object) -> None:
    """Check a draft's SOP id (InputError naming the field)."""
    if not isinstance(sop_id, str) or not ID_PATTERN.match(sop_id) or len(sop_id) > MAX_ID_LENGTH:
        raise InputError("sop_id: must be lowercase letters, digits and single dashes", {"field": "sop_id"})


def check_markdown(markdown: object) -> None:
    """Check a draft's text: the whole file, not blank, within MAX_DOCUMENT_CHARS (InputError naming the field)."""
    if not isinstance(markdown, str) or not markdown.strip():
        raise InputError("markdown: must be the whole file as text", {"field": "markdown"})
    if len(markdown) > MAX_DOCUMENT_CHARS:
        raise InputError(f"markdown: longer than {MAX_DOCUMENT_CHARS:,} characters", {"field": "markdown"})


def check_summary(summary: object) -> None:
    """Check a draft's summary: one line within MAX_SUMMARY_CHARS (InputError naming the field)."""
    if not isinstance(summary, str) or not summary.strip() or any(c in summary.strip() for c in "\r\n\u2028\u2029"):
        raise InputError("summary: must be one line of text describing the change", {"field": "summary"})
    if len(summary) > MAX_SUMMARY_CHARS:
        raise InputError(f"summary: longer than {MAX_SUMMARY_CHARS} characters", {"field": "summary"})


def check_base_revision(base_revision: object) -> None:
    """Check a draft's base revision: a 40-character commit id or None (InputError naming the field)."""
    if base_revision is not None and (not isinstance(base_revision, str) or not COMMIT.match(base_revision)):
        raise InputError("base_revision: must be a 40-character commit id or null", {"field": "base_revision"})


def check_comment(comment: object) -> None:
    """Check a reviewer's return comment.

    Raises:
        InputError: the comment is missing, not text, or too long.
    """
    if not isinstance(comment, str) or not comment.strip():
        raise InputError("comment: say what the author should change", {"field": "comment"})
    if len(comment) > MAX_COMMENT_CHARS:
        raise InputError(f"comment: longer than {MAX_COMMENT_CHARS:,} characters", {"field": "comment"})
