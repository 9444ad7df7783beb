"""Documents: the front-matter schema, parsing and validation.

A document is a Markdown file that starts with YAML front matter between two
``---`` lines. :func:`parse_document` is pure: it takes the text and a name for
messages and returns the document (or None) with every problem found, each with
its line and field, so an author fixes a file in one pass.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field

import yaml

from kb import markdown, yamlio
from kb.errors import Problem
from kb.redaction import find_pans
from kb.values import Value, resolve

ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
TYPES = ("sop", "policy")
BUSINESS_LINES = ("subscriptions", "in-app-purchases", "e-commerce", "creator-payouts", "all")
STATUSES = ("published", "retired")
REQUIRED = ("id", "title", "type", "business_line", "categories", "owner", "status", "effective")
OPTIONAL = ("review_by", "tags")
FIELDS = REQUIRED + OPTIONAL
MAX_ID_LENGTH = 80


@dataclass(frozen=True)
class Document:
    """One SOP or policy: validated front matter, its Markdown body and the whole file."""

    id: str
    title: str
    type: str
    business_line: str
    categories: tuple[str, ...]
    owner: str
    status: str
    effective: dt.date
    review_by: dt.date | None
    tags: tuple[str, ...]
    path: str
    body: str  # the Markdown body with shared values substituted
    body_line: int  # 1-based line number of the first body line in the file
    text: str = field(repr=False)  # the whole file as stored, placeholders included
    field_lines: tuple[tuple[str, int], ...] = field(default=(), repr=False, compare=False)

    def line_of(self, key: str) -> int:
        """The 1-based line of a front-matter field in the file (1 if unknown)."""
        return dict(self.field_lines).get(key, 1)

    @property
    def content_hash(self) -> str:
        """sha256 of the stored file and its resolved body: changes when either changes."""
        return hashlib.sha256(f"{self.text}\0{self.body}".encode()).hexdigest()

    def metadata(self) -> dict:
        """Return the front matter as plain JSON-ready data."""
        return {
            "id": self.id,
            "title": self.title,
            "type": self.type,
            "business_line": self.business_line,
            "categories": list(self.categories),
            "owner": self.owner,
            "status": self.status,
            "effective": self.effective.isoformat(),
            "review_by": self.review_by.isoformat() if self.review_by else None,
            "tags": list(self.tags),
            "path": self.path,
        }


def split_front_matter(text: str) -> tuple[str, str, int] | None:
    """Split a file into (front matter, body, 1-based body line); None if it has none."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != "---":
        return None
    for number, line in enumerate(lines[1:], start=1):
        if line.rstrip("\r\n") in ("---", "..."):
            return "".join(lines[1:number]), "".join(lines[number + 1 :]), number + 2
    return None


def _field_lines(front: str) -> dict[str, int]:
    """Map each top-level key of the front matter to its 1-based line in the file."""
    try:
        node = yamlio.compose(front)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 2 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}


def _as_date(value: object) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _string_list(value: object) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(v.strip() for v in value)
    return None


def _check_fields(data: dict, lines: dict[str, int], name: str) -> tuple[dict, list[Problem]]:
    """Validate front-matter values; return the cleaned values and the problems."""
    problems: list[Problem] = []
    clean: dict = {}

    def problem(key: str, message: str) -> None:
        problems.append(Problem(name, lines.get(key, 1), message, field=key))

    for key in data:
        if key not in FIELDS:
            problem(str(key), f"unknown field (allowed: {', '.join(FIELDS)})")
    for key in REQUIRED:
        if key not in data or data[key] is None or data[key] == "":
            problems.append(Problem(name, 1, "required field is missing", field=key))
    for key in ("id", "title", "owner"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            problem(key, f"must be text, got {type(value).__name__}")
        elif isinstance(value, str):
            clean[key] = value.strip()
    if "id" in clean and not (ID_PATTERN.match(clean["id"]) and len(clean["id"]) <= MAX_ID_LENGTH):
        problem("id", f"{clean['id']!r} must be lowercase letters, digits and single dashes ([a-z0-9-])")
        clean.pop("id")
    for key, allowed in (("type", TYPES), ("business_line", BUSINESS_LINES), ("status", STATUSES)):
        value = data.get(key)
        if value is None:
            continue
        if value not in allowed:
            problem(key, f"{value!r} is not one of {', '.join(allowed)}")
        else:
            clean[key] = value
    for key in ("categories", "tags"):
        value = data.get(key, [] if key == "tags" else None)
        if value is None:
            continue
        items = _string_list(value)
        if items is None:
            problem(key, "must be a list of non-empty text values")
        elif key == "categories" and not items:
            problem(key, "must name at least one category")
        else:
            clean[key] = items
    for key in ("effective", "review_by"):
        value = data.get(key)
        if value is None:
            continue
        date = _as_date(value)
        if date is None:
            problem(key, f"{value!r} is not a date (YYYY-MM-DD)")
        else:
            clean[key] = date
    return clean, problems


def parse_document(
    text: str, name: str, values: dict[str, Value] | None = None
) -> tuple[Document | None, list[Problem]]:
    """Parse and validate one document, substituting shared values in its body.

    Args:
        text: the whole file, already decoded.
        name: the file's path as shown in messages (relative to the content folder).
        values: the library's shared values; a placeholder naming no value is an error.

    Returns:
        (document, problems): document is None when any problem is an error.
    """
    split = split_front_matter(text)
    if split is None:
        return None, [
            Problem(name, 1, "no front matter: the file must start with a '---' line and close it with another")
        ]
    front, body, body_line = split
    try:
        data = yamlio.load(front)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 2 if mark else 1
        reason = getattr(error, "problem", None) or str(error)
        return None, [Problem(name, line, f"malformed YAML front matter: {reason}")]
    if not isinstance(data, dict):
        return None, [Problem(name, 2, "front matter must be a mapping of field: value")]
    lines = _field_lines(front)
    clean, problems = _check_fields(data, lines, name)
    body, placeholder_problems = resolve(body, values or {}, name, body_line)
    problems.extend(placeholder_problems)
    for pan in find_pans(text):
        line = text.count("\n", 0, pan.start) + 1
        problems.append(Problem(name, line, f"contains a card number (ending {pan.last4}): remove it, PCI DSS"))
    if not markdown.headings(markdown.parse(body)):
        problems.append(Problem(name, body_line, "document has no H2 or H3 headings: sections cannot be found"))
    if any(p.severity == "error" for p in problems):
        return None, problems
    document = Document(
        id=clean["id"],
        title=clean["title"],
        type=clean["type"],
        business_line=clean["business_line"],
        categories=clean["categories"],
        owner=clean["owner"],
        status=clean["status"],
        effective=clean["effective"],
        review_by=clean.get("review_by"),
        tags=clean.get("tags", ()),
        path=name,
        body=body,
        body_line=body_line,
        text=text,
        field_lines=tuple(lines.items()),
    )
    return document, problems
