"""Published history of an SOP: its revisions, any revision rendered, diffs, and the revision in force on a date.

A revision is rendered with the shared values (values.yaml) of its own commit,
so the March revision of a refund policy shows the March refund window.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from kb import markdown, repository
from kb.diffing import diff_html, diff_stats, line_diff
from kb.documents import Document, parse_document
from kb.errors import InputError, NotFoundError
from kb.values import FILE_NAME as VALUES_FILE
from kb.values import parse_values

_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


def parse_day(value: object, field: str = "as_of") -> dt.date:
    """A YYYY-MM-DD date from a request.

    Raises:
        InputError: naming the field.
    """
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"{field}: must be a date as YYYY-MM-DD, got {str(value)[:20]!r}", {"field": field}) from None


class History:
    """Read published revisions from the content repository."""

    def __init__(self, content: Path):
        self.content = content

    def revisions(self, path: str) -> list[repository.Revision]:
        """Revisions of the file, newest first."""
        return repository.history(self.content, path)

    def _check(self, revision: str, field: str) -> str:
        if not isinstance(revision, str) or not _COMMIT.match(revision):
            raise InputError(f"{field}: must be a commit id (7 to 40 hex digits)", {"field": field})
        return revision

    def text(self, path: str, revision: str, field: str = "revision") -> str:
        """The file at a revision.

        Raises:
            InputError: a malformed revision.
            NotFoundError: the file did not exist at that revision.
        """
        text = repository.show(self.content, path, self._check(revision, field))
        if text is None:
            raise NotFoundError(f"{path} has no revision {revision}", {"field": field})
        return text

    def parsed(self, path: str, revision: str) -> tuple[str, Document | None, list]:
        """(text, document, problems) of the file at a revision, with the shared values of that revision."""
        text = self.text(path, revision)
        values_text = repository.show(self.content, VALUES_FILE, revision)
        values = parse_values(values_text)[0] if values_text else {}
        document, problems = parse_document(text, path, values)
        return text, document, problems

    def document(self, sop_id: str, path: str, revision: str) -> dict:
        """One revision in the shape of Searcher.document: metadata, sections, html, markdown, revision."""
        text, document, problems = self.parsed(path, revision)
        if document is None:
            body = text
            meta = {"id": sop_id, "path": path}
        else:
            body = document.body
            meta = document.metadata()
        sections = [
            {"heading": h.text, "anchor": h.anchor, "level": h.level} for h in markdown.headings(markdown.parse(body))
        ]
        full = self._full(path, revision)
        return {
            **meta,
            "revision": full,
            "sections": sections,
            "html": markdown.render_html(body),
            "markdown": text,
            "problems": [p.to_dict() for p in problems if p.severity == "error"],
        }

    def _full(self, path: str, revision: str) -> str:
        for item in self.revisions(path):
            if item.commit.startswith(revision):
                return item.commit
        return revision

    def as_of(self, path: str, day: dt.date) -> repository.Revision | None:
        """The revision in force on a day: the latest whose effective date is on or before it."""
        return repository.revision_as_of(self.content, path, day)

    def diff(self, path: str, old: str, new: str | None) -> dict:
        """Word-level (HTML) and unified diffs between two revisions; new None means the latest."""
        if not old:
            raise InputError("from: the revision to compare from is required", {"field": "from"})
        if new is None:
            latest = self.revisions(path)
            if not latest:
                raise NotFoundError(f"{path} has no published revision", {"field": "to"})
            new = latest[0].commit
        before, after = self.text(path, old, "from"), self.text(path, new, "to")
        return {
            "from": old,
            "to": new,
            "html": diff_html(before, after, context_lines=3),
            "unified": line_diff(before, after, f"{path}@{old[:10]}", f"{path}@{new[:10]}"),
            "stats": diff_stats(before, after),
        }
