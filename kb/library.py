"""The library: every document under the content folder, validated together.

Checks that need more than one file live here: duplicate ids and categories
that the taxonomy does not know. A file with a problem is skipped and reported;
the rest load. Reading never raises on bad content: a file that cannot be read
(a folder named x.md, a pipe, a symlink loop or a link out of the content
folder, no permission, too large, not UTF-8) is a Problem like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kb.documents import MAX_DOCUMENT_CHARS, Document, parse_document
from kb.errors import Problem
from kb.files import read_text
from kb.glossary import Glossary, load_glossary
from kb.taxonomy import Category, load_taxonomy
from kb.values import Value, load_values


@dataclass
class Library:
    """The valid documents of a content folder, with every problem found."""

    root: Path
    documents: dict[str, Document] = field(default_factory=dict)
    categories: dict[str, Category] = field(default_factory=dict)
    values: dict[str, Value] = field(default_factory=dict)
    glossary: Glossary = field(default_factory=Glossary)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        """Problems of severity error."""
        return [p for p in self.problems if p.severity == "error"]


MAX_DOCUMENT_BYTES = 4 * MAX_DOCUMENT_CHARS  # a longer file is refused unread; parse_document counts characters


def read_document(root: Path, path: Path) -> tuple[str | None, list[Problem]]:
    """The text of one document file, or the Problem that stops it being read."""
    name = path.relative_to(root).as_posix()
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None, [Problem(name, 1, "is a broken symbolic link or a link loop: cannot be read")]
        if root.resolve() not in target.parents:
            return None, [Problem(name, 1, "is a symbolic link to a file outside the content folder: not read")]
    return read_text(path, name, MAX_DOCUMENT_BYTES)


def document_paths(root: Path) -> list[Path]:
    """Every Markdown file under root, in a stable order, hidden folders left out."""
    return sorted(p for p in root.rglob("*.md") if not any(part.startswith(".") for part in p.relative_to(root).parts))


_PARSED: dict[tuple, tuple] = {}  # (name, text, values) -> parse_document's answer; documents are immutable
_PARSED_MAX = 2000


def _parse(text: str, name: str, values: dict[str, Value]) -> tuple[Document | None, list[Problem]]:
    """parse_document, remembered per process: a server reloads the library on every publish."""
    key = (name, text, tuple(sorted((v.name, v.value) for v in values.values())))
    if key not in _PARSED:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = parse_document(text, name, values)
    document, problems = _PARSED[key]
    return document, list(problems)


def load_library(root: Path) -> Library:
    """Load and validate every document under root."""
    library = Library(root=root)
    library.categories, taxonomy_problems = load_taxonomy(root)
    library.problems.extend(taxonomy_problems)
    library.values, value_problems, _ = load_values(root)
    library.problems.extend(value_problems)
    library.glossary, glossary_problems = load_glossary(root)
    library.problems.extend(glossary_problems)
    first_seen: dict[str, str] = {}
    for path in document_paths(root):
        name = path.relative_to(root).as_posix()
        text, problems = read_document(root, path)
        document = None
        if text is not None:
            document, problems = _parse(text, name, library.values)
        if document is not None and document.id in first_seen:
            problems.append(
                Problem(
                    name,
                    document.line_of("id"),
                    f"duplicate id {document.id!r}: also in {first_seen[document.id]}",
                    field="id",
                )
            )
            document = None
        if document is not None and library.categories:
            unknown = [c for c in document.categories if c not in library.categories]
            for category in unknown:
                problems.append(
                    Problem(
                        name,
                        document.line_of("categories"),
                        f"unknown category {category!r} (not in categories.yaml)",
                        field="categories",
                    )
                )
            if unknown:
                document = None
        library.problems.extend(problems)
        if document is None:
            library.skipped.append(name)
            continue
        first_seen[document.id] = name
        library.documents[document.id] = document
    return library
