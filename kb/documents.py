"""Documents: the front-matter schema, parsing and validation.

A document is a Markdown file that starts with YAML front matter between two
``---`` lines. :func:`parse_document` is pure: it takes the text and a name for
messages and returns the document (or None) with every problem found, each with
its line and field, so an author fixes a file in one pass. It works within
bounds and never raises on bad content: a document longer than
:data:`MAX_DOCUMENT_CHARS`, a NUL or lone surrogate, front matter over
:data:`MAX_FRONT_MATTER_BYTES` (checked before YAML is parsed), anything
kb.yamlio refuses (anchors, aliases, duplicate keys, impossible dates), a value
of the wrong type, bidi control characters in the title or a heading, and
Markdown over kb.markdown's limits are each a Problem.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field

from yaml.nodes import MappingNode, ScalarNode

from kb import markdown, yamlio
from kb.errors import Problem
from kb.redaction import find_pans, redact
from kb.values import Value, resolve

ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
TYPES = ("sop", "policy")
BUSINESS_LINES = ("subscriptions", "in-app-purchases", "e-commerce", "creator-payouts", "all")
STATUSES = ("published", "retired")
REQUIRED = ("id", "title", "type", "business_line", "categories", "owner", "status", "effective")
OPTIONAL = ("review_by", "tags")
FIELDS = REQUIRED + OPTIONAL
MAX_ID_LENGTH = 80
MAX_DOCUMENT_CHARS = 200_000  # the whole file; kb.workflow refuses a longer draft
MAX_FRONT_MATTER_BYTES = 16 * 1024  # checked before YAML is parsed
# Bidirectional controls (embeddings, overrides, isolates, marks): they make a title or heading read otherwise.
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")  # NUL and lone surrogates
_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:")


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


def _show(value: object) -> str:
    """A value as echoed in a message: short, with card numbers masked, never the whole of a huge value."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else f"a {value.bit_length()}-bit number"
    if isinstance(value, (float, dt.date)):
        return repr(value)
    if isinstance(value, str):
        shown = redact(value[:60])
        return repr(shown + "…" if len(value) > 60 else shown)
    return f"a {type(value).__name__}"


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _front_key(front: str, line: int) -> str:
    """The top-level front-matter key that a 1-based line of the file belongs to ('front matter' if none)."""
    lines = front.splitlines()[: max(0, line - 1)]
    keys = [m.group(1) for m in map(_TOP_KEY.match, lines) if m]
    return keys[-1] if keys else "front matter"


def _field_lines(node: object) -> dict[str, int]:
    """Map each top-level key of the front matter's node to its 1-based line in the file."""
    if not isinstance(node, MappingNode):
        return {}
    return {key.value: key.start_mark.line + 2 for key, _ in node.value if isinstance(key, ScalarNode)}


def _text_problems(text: str, name: str) -> list[Problem]:
    """A document too long, or holding a NUL or a lone surrogate: checked before anything is parsed."""
    if len(text) > MAX_DOCUMENT_CHARS:
        line = _line_at(text, MAX_DOCUMENT_CHARS)
        return [Problem(name, line, f"document is longer than {MAX_DOCUMENT_CHARS:,} characters ({len(text):,})")]
    problems = []
    for match in list(_FORBIDDEN.finditer(text))[:10]:
        char = match.group(0)
        what = "a NUL character (U+0000)" if char == "\x00" else f"a lone surrogate (U+{ord(char):04X})"
        problems.append(Problem(name, _line_at(text, match.start()), f"contains {what}: not allowed in a document"))
    return problems


def _front_matter(front: str, name: str) -> tuple[object, dict[str, int], list[Problem]]:
    """(data, field lines, problems) of the front matter, within its size bound."""
    size = len(front.encode("utf-8"))
    if size > MAX_FRONT_MATTER_BYTES:
        over = len(front.encode("utf-8")[:MAX_FRONT_MATTER_BYTES].decode("utf-8", "ignore"))
        line = _line_at(front, over) + 1
        message = f"front matter is {size:,} bytes; the limit is {MAX_FRONT_MATTER_BYTES:,} (16 KB)"
        return None, {}, [Problem(name, line, message, field=_front_key(front, line))]
    try:
        data, node = yamlio.parse(front, MAX_FRONT_MATTER_BYTES)
    except yamlio.YAMLProblem as error:
        line = error.line + 1 if error.line else 1
        field = error.field.split(".")[0] if error.field else None
        return None, {}, [Problem(name, line, f"malformed YAML front matter: {error.problem}", field=field)]
    return data, _field_lines(node), []


def _markdown_problems(body: str, body_line: int, name: str) -> list[Problem]:
    """Markdown over kb.markdown's limits, bidi controls in headings, and no H2/H3 heading at all."""
    tokens, refusals = markdown.parse_bounded(body)
    problems = [Problem(name, body_line + r.line, f"Markdown too complex: {r.message}") for r in refusals]
    if refusals:
        return problems
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        text = tokens[index + 1].content + markdown.inline_text(tokens[index + 1])
        bidi = BIDI_CONTROLS.search(text)
        if bidi:
            line = body_line + (token.map[0] if token.map else 0)
            message = f"contains a bidirectional control character (U+{ord(bidi.group(0)):04X}): not allowed"
            problems.append(Problem(name, line, message, field="heading"))
    if not markdown.headings(tokens):
        problems.append(Problem(name, body_line, "document has no H2 or H3 headings: sections cannot be found"))
    return problems


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
            problem(key if isinstance(key, str) else _show(key), f"unknown field (allowed: {', '.join(FIELDS)})")
    for key in REQUIRED:
        if key not in data or data[key] is None or data[key] == "":
            problems.append(Problem(name, 1, "required field is missing", field=key))
    for key in ("id", "title", "owner"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            problem(key, f"must be text, got {type(value).__name__}")
        elif isinstance(value, str):
            clean[key] = value.strip()
    bidi = BIDI_CONTROLS.search(clean.get("title", ""))
    if bidi:
        problem("title", f"contains a bidirectional control character (U+{ord(bidi.group(0)):04X}): not allowed")
    if "id" in clean and not (ID_PATTERN.match(clean["id"]) and len(clean["id"]) <= MAX_ID_LENGTH):
        problem("id", f"{_show(clean['id'])} must be lowercase letters, digits and single dashes ([a-z0-9-])")
        clean.pop("id")
    for key, allowed in (("type", TYPES), ("business_line", BUSINESS_LINES), ("status", STATUSES)):
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or value not in allowed:
            problem(key, f"{_show(value)} is not one of {', '.join(allowed)}")
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
            kind = "a date and time" if isinstance(value, dt.datetime) else _show(value)
            problem(key, f"{kind} is not a date (YYYY-MM-DD)")
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
    problems = _text_problems(text, name)
    if problems:
        return None, problems
    split = split_front_matter(text)
    if split is None:
        return None, [
            Problem(name, 1, "no front matter: the file must start with a '---' line and close it with another")
        ]
    front, body, body_line = split
    data, lines, problems = _front_matter(front, name)
    if problems:
        return None, problems
    if not isinstance(data, dict):
        return None, [Problem(name, 2, "front matter must be a mapping of field: value")]
    clean, problems = _check_fields(data, lines, name)
    body, placeholder_problems = resolve(body, values or {}, name, body_line)
    problems.extend(placeholder_problems)
    for pan in find_pans(text):
        line = text.count("\n", 0, pan.start) + 1
        problems.append(Problem(name, line, f"contains a card number (ending {pan.last4}): remove it, PCI DSS"))
    problems.extend(_markdown_problems(body, body_line, name))
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
