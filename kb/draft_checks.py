"""The checks a draft passes against the library as published now: where its file lives, its lint problems,
the SOP's current revision and the base-revision rule. kb.workflow runs them when a draft is created, edited,
submitted and approved; the authoring pages and API show their problems.
"""

from __future__ import annotations

import re
from pathlib import Path

from kb import repository
from kb.documents import split_front_matter
from kb.drafts import check_fields
from kb.errors import ConflictError, DocumentError, Problem
from kb.library import Library, load_library
from kb.lint import check_text
from kb.values import load_values


class DraftChecks:
    """Checks of draft texts against the library in one content folder."""

    def __init__(self, content: Path):
        self.content = content

    def path_of(self, sop_id: str, markdown: str | None = None, library: Library | None = None) -> str:
        """Where an SOP's file lives (relative to the content folder): its current path, else <line>/<id>.md."""
        library = library or load_library(self.content)
        if sop_id in library.documents:
            return library.documents[sop_id].path
        line = "all"
        parts = split_front_matter(markdown or "")
        if parts:
            match = re.search(r"^business_line:\s*([a-z-]+)\s*$", parts[0], re.MULTILINE)
            line = match.group(1) if match else line
        return f"{line}/{sop_id}.md"

    def values(self) -> dict:
        """The library's shared values as published now."""
        return load_values(self.content)[0]

    def problems(self, sop_id: str, markdown: str, library: Library | None = None) -> list[Problem]:
        """Every lint problem of markdown as the new text of sop_id."""
        library = library or load_library(self.content)
        return check_text(library, self.path_of(sop_id, markdown, library), markdown)

    def current_revision(self, sop_id: str, library: Library | None = None) -> str | None:
        """The commit that last changed the SOP's file, or None if it has never been published."""
        path = self.path_of(sop_id, library=library)
        if not (self.content / path).exists():
            return None
        history = repository.history(self.content, path, limit=1)
        return history[0].commit if history else None

    def validate(self, sop_id: object, markdown: object, summary: object, base_revision: object) -> list[Problem]:
        """Check a draft's fields, its base revision and its lint errors; return its warnings.

        Raises:
            InputError: a field is malformed.
            ConflictError: a new SOP whose id exists already.
            DocumentError: the text has lint errors.
        """
        check_fields(sop_id, markdown, summary, base_revision)
        library = load_library(self.content)
        current = self.current_revision(sop_id, library)
        if base_revision is None and current is not None:
            raise ConflictError(
                f"base_revision: {sop_id} exists (revision {current}); name the revision the draft starts from",
                {"field": "base_revision", "current_revision": current},
            )
        problems = self.problems(sop_id, markdown, library)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise DocumentError(errors)
        return problems
