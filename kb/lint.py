"""`kb lint`: every check on a library, each problem as ``file:line: message``.

Loading a library already reports what makes a document unusable (front
matter, duplicate id, unknown category, unknown placeholder, card numbers,
no headings). Lint adds the rules that keep a library healthy:

- the id matches the file name, and the folder the business line (warning);
- links to other SOPs name a known id and, with ``#anchor``, an existing section;
- an SOP has the required sections: purpose, procedure, customer macro, escalation;
- ``review_by`` is not in the past (warning);
- every category of the taxonomy is served by a document (warning);
- every shared value is used by a document (warning);
- an SOP runs 350 to 1,200 words and a policy 400 to 1,500 (warning);
- a figure written out where a shared value of the same unit holds it, in a sentence
  naming that value's key words, should be the value's placeholder (warning, kb.figures);
- a customer macro names a risk signal listed in pay-risk-block's do-not-say table
  (error, kb.disclosure).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from kb import markdown
from kb.disclosure import disclosures
from kb.documents import Document, parse_document
from kb.errors import Problem
from kb.figures import written_figures
from kb.indexing.chunking import OVERVIEW_ANCHOR
from kb.library import Library, load_library
from kb.redaction import find_pans, mask_pans
from kb.values import placeholders

REQUIRED_SOP_SECTIONS = {
    "purpose": ("purpose",),
    "procedure": ("procedure",),
    "customer macro": ("customer-macro", "macro"),
    "escalation": ("escalation",),
}
WORD_RANGE = {"sop": (350, 1200), "policy": (400, 1500)}
_SOP_LINK = re.compile(r"^/sops/([^#?/]+)(?:#(.*))?$")


@dataclass
class LintReport:
    """The problems found, with counts."""

    documents: int
    problems: list[Problem] = field(default_factory=list)
    words: dict[str, dict[str, int]] = field(default_factory=dict)  # per type: min, median, max

    @property
    def errors(self) -> int:
        """Number of errors."""
        return sum(1 for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> int:
        """Number of warnings."""
        return sum(1 for p in self.problems if p.severity == "warning")

    def to_dict(self) -> dict:
        """The report as plain data."""
        return {
            "documents": self.documents,
            "errors": self.errors,
            "warnings": self.warnings,
            "problems": [p.to_dict() for p in self.problems],
        }


def anchors_of(document: Document) -> set[str]:
    """Every anchor a link may point at in a document."""
    tokens = markdown.parse(document.body)
    return {h.anchor for h in markdown.headings(tokens)} | {OVERVIEW_ANCHOR}


def word_count(document: Document) -> int:
    """Words of the body as a reader sees them (Markdown syntax left out)."""
    return len(markdown.plain_text(markdown.parse(document.body)).split())


def _links(document: Document) -> list[tuple[str, int]]:
    """(href, line in the file) of every link in the body."""
    found = []
    lines = document.body.splitlines()
    for token in markdown.parse(document.body):
        start, end = token.map if token.map else (0, 0)
        for child in token.children or []:
            if child.type == "link_open":
                href = str(child.attrGet("href") or "")
                offset = next((i for i in range(start, end) if f"]({href}" in lines[i]), start)
                found.append((href, document.body_line + offset))
    return found


def check_document(document: Document, library: Library, anchors: dict[str, set[str]], today: dt.date) -> list[Problem]:
    """The lint rules that look at one document in the context of its library."""
    problems = []
    name = document.path
    stem = Path(name).stem
    if stem != document.id:
        problems.append(
            Problem(
                name, document.line_of("id"), f"id {document.id!r} does not match the file name {stem}.md", field="id"
            )
        )
    folder = Path(name).parent.name
    if folder and folder != document.business_line:
        problems.append(
            Problem(
                name,
                document.line_of("business_line"),
                f"file is in {folder}/ but business_line is {document.business_line!r}",
                field="business_line",
                severity="warning",
            )
        )
    for href, line in _links(document):
        match = _SOP_LINK.match(href)
        if not match:
            continue
        target, anchor = match.group(1), match.group(2)
        if target not in library.documents:
            problems.append(Problem(name, line, f"link to unknown SOP {target!r}"))
        elif anchor and anchor not in anchors[target]:
            problems.append(Problem(name, line, f"link to missing section #{anchor} of {target}"))
    if document.type == "sop":
        h2 = [h.anchor for h in markdown.headings(markdown.parse(document.body)) if h.level == 2]
        for label, stems in REQUIRED_SOP_SECTIONS.items():
            if not any(any(s in anchor for s in stems) for anchor in h2):
                problems.append(
                    Problem(name, document.body_line, f"SOP has no {label} section (an H2 heading naming it)")
                )
    low, high = WORD_RANGE[document.type]
    words = word_count(document)
    if not low <= words <= high:
        problems.append(
            Problem(
                name,
                document.body_line,
                f"{document.type} has {words:,} words; {document.type}s run {low:,} to {high:,}",
                severity="warning",
            )
        )
    for figure in written_figures(document.text, library.values):
        if figure.line + 1 >= document.body_line:
            problems.append(
                Problem(
                    name,
                    figure.line + 1,
                    f"writes out {figure.text!r}, which the shared value {{{{{figure.value.name}}}}} holds: "
                    "use the placeholder (or a value of its own if the figure differs on purpose)",
                    severity="warning",
                )
            )
    for found in disclosures(document.body, library.values):
        problems.append(
            Problem(
                name,
                document.body_line + found.line,
                f"macro {found.heading!r} names the risk signal {found.signal!r}: pay-risk-block forbids telling "
                "a customer which signal our checks used; give the outcome without it",
            )
        )
    if document.review_by and document.review_by < today:
        problems.append(
            Problem(
                name,
                document.line_of("review_by"),
                f"review date {document.review_by} has passed",
                field="review_by",
                severity="warning",
            )
        )
    return problems


def check_text(library: Library, path: str, text: str, today: dt.date | None = None) -> list[Problem]:
    """Every problem of one document's text as if it were stored at path in the library (for drafts).

    Args:
        library: the published library that gives the context (ids, anchors, categories, values).
        path: where the file would live, relative to the content folder.
        text: the whole file, front matter included.
        today: the date review_by is compared with (default: today).
    """
    document, problems = parse_document(text, path, library.values)
    if document is None and find_pans(text):
        # A card number alone makes the file invalid; check the rest of it as if the number were masked.
        document, _ = parse_document(mask_pans(text), path, library.values)
    if document is None:
        return problems
    other = library.documents.get(document.id)
    if other is not None and other.path != path:
        problems.append(
            Problem(path, document.line_of("id"), f"duplicate id {document.id!r}: also in {other.path}", field="id")
        )
    for category in document.categories:
        if library.categories and category not in library.categories:
            problems.append(
                Problem(
                    path,
                    document.line_of("categories"),
                    f"unknown category {category!r} (not in categories.yaml)",
                    field="categories",
                )
            )
    documents = {**library.documents, document.id: document}
    context = dataclasses.replace(library, documents=documents)
    anchors = {i: anchors_of(d) for i, d in documents.items()}
    problems.extend(check_document(document, context, anchors, today or dt.date.today()))
    return sorted(problems, key=lambda p: (p.line, p.message))


def check_library(library: Library) -> list[Problem]:
    """The lint rules that look at the library as a whole."""
    problems = []
    served = {c for d in library.documents.values() for c in d.categories}
    for category in library.categories.values():
        if category.parent is not None and category.id not in served:
            problems.append(
                Problem("categories.yaml", 1, f"category {category.id!r} is served by no document", severity="warning")
            )
    used = {n for d in library.documents.values() for n, _ in placeholders(d.text)}
    for value in library.values.values():
        if value.name not in used:
            problems.append(
                Problem("values.yaml", value.line, f"value {value.name!r} is used by no document", severity="warning")
            )
    return problems


def lint(root: Path, only: list[Path] | None = None, today: dt.date | None = None) -> LintReport:
    """Lint the library in root; with only, report just the problems of those files or folders.

    Args:
        root: the content folder (the library gives the context: ids, anchors, categories, values).
        only: files or folders under root to report on; None for everything.
        today: the date review_by is compared with (default: today).
    """
    today = today or dt.date.today()
    library = load_library(root)
    anchors = {i: anchors_of(d) for i, d in library.documents.items()}
    problems = list(library.problems)
    for document in library.documents.values():
        problems.extend(check_document(document, library, anchors, today))
    wanted = [p.resolve() for p in only or []]

    def selected(name: str) -> bool:
        path = (root / name).resolve()
        return any(path == w or w in path.parents for w in wanted)

    if only is None:
        problems.extend(check_library(library))
        count = len(library.documents) + len(library.skipped)
    else:
        problems = [p for p in problems if selected(p.file)]
        count = sum(1 for n in [d.path for d in library.documents.values()] + library.skipped if selected(n))
    problems.sort(key=lambda p: (p.file, p.line, p.message))
    counts: dict[str, list[int]] = {}
    for document in library.documents.values():
        if only is None or selected(document.path):
            counts.setdefault(document.type, []).append(word_count(document))
    words = {kind: {"min": min(c), "median": int(statistics.median(c)), "max": max(c)} for kind, c in counts.items()}
    return LintReport(count, problems, words)
