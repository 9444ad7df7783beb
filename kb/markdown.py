"""Markdown parsing shared by chunking and rendering: one parser, one anchor rule, bounded work.

Headings H2 and H3 start sections; their anchors are slugs of the heading text,
made unique within a document (``fees``, ``fees-2``). Rendering disables raw
HTML and allows only http(s), mailto and relative links.

markdown-it-py's work grows with the number of markup characters, lines and
table cells, so :func:`parse_bounded` refuses a text over any of the limits
below before parsing it (in one linear scan), and refuses nesting that
markdown-it would cut at ``maxNesting``; every refusal names its line. A
refused text parses as one plain code block, so nothing that calls
:func:`parse` or :func:`render_html` can be made slow. Rendered HTML is kept
per process, keyed by the hash of the text (see scripts/bench_markdown.py).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

SECTION_LEVELS = ("h2", "h3")
SAFE_SCHEMES = ("http", "https", "mailto")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_WORD = re.compile(r"\w")  # a letter or digit outside a link: the text says more than its links

MAX_NESTING = 20  # blockquotes and lists inside each other (markdown-it's maxNesting; commonmark's default)
MAX_LINES = 5_000
MAX_RUN = 1_000  # one markup character repeated
MAX_MARKUP = 5_000  # markup characters in a text: what markdown-it's inline rules spend their time on
MAX_CONTAINERS = 3_000  # list items and blockquote markers: what its block rules spend their time on
MAX_TABLE_CELLS = 5_000  # rows x columns, over every table of a text
MAX_TABLE_COLUMNS = 64
MAX_HEADINGS = 300
MARKUP = "[]!*_`<&\\|"
_RUN = re.compile(r"([\[\]!*_`<>&\\|()])\1{" + str(MAX_RUN) + ",}")
_MARKUP_CHAR = re.compile("[" + re.escape(MARKUP) + "]")
_DELIMITER_ROW = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_CONTAINER_PREFIX = re.compile(r"^[ \t]*(?:(?:[-+*]|\d{1,9}[.)])(?:[ \t]+|$)|>[ \t]?)+", re.MULTILINE)
_CONTAINER_MARK = re.compile(r"[-+*>]|\d{1,9}[.)]")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_CONTAINERS = ("blockquote_open", "bullet_list_open", "ordered_list_open", "list_item_open")


def slugify(text: str) -> str:
    """Return the anchor slug of a heading: lowercase a-z0-9 runs joined by '-'."""
    return _NOT_SLUG.sub("-", text.lower()).strip("-") or "section"


def is_safe_link(url: str) -> bool:
    """Return True for http(s), mailto and relative links; False for any other scheme."""
    cleaned = re.sub(r"[\x00-\x20]", "", url)
    match = _SCHEME.match(cleaned)
    return match is None or match.group(1).lower() in SAFE_SCHEMES


@lru_cache(maxsize=1)
def parser() -> MarkdownIt:
    """The one Markdown parser: CommonMark with tables, raw HTML disabled."""
    md = MarkdownIt("commonmark", {"html": False, "maxNesting": MAX_NESTING}).enable("table")
    md.validateLink = is_safe_link
    return md


@dataclass(frozen=True)
class Refusal:
    """Why a Markdown text is refused: the 0-based line within the text, and the limit it passes."""

    line: int
    message: str


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset)


def _table_refusals(lines: list[str]) -> list[Refusal]:
    """Tables over the column or cell limit; rows are counted up to the next blank line (an upper bound)."""
    cells, number = 0, 1
    while number < len(lines):
        row = lines[number]
        if "|" not in row or not _DELIMITER_ROW.match(row):
            number += 1
            continue
        columns = len([c for c in _CELL_SPLIT.split(row.strip()) if c.strip()])
        if columns > MAX_TABLE_COLUMNS:
            return [Refusal(number - 1, f"a table of {columns:,} columns is wider than {MAX_TABLE_COLUMNS}")]
        end = number + 1
        while end < len(lines) and lines[end].strip():
            end += 1
        cells += columns * (end - number)
        if cells > MAX_TABLE_CELLS:
            return [Refusal(number - 1, f"tables of more than {MAX_TABLE_CELLS:,} cells in all")]
        number = end
    return []


def _scan(text: str) -> list[Refusal]:
    """The limits a text passes, found in one linear scan before parsing."""
    line_count = text.count("\n") + 1
    if line_count > MAX_LINES:
        return [Refusal(MAX_LINES, f"{line_count:,} lines are more than {MAX_LINES:,}")]
    run = _RUN.search(text)
    if run:
        found = f"a run of {len(run.group(0)):,} `{run.group(1)}` characters is longer than {MAX_RUN:,}"
        return [Refusal(_line_at(text, run.start()), found)]
    if sum(text.count(c) for c in MARKUP) > MAX_MARKUP:
        over = next(m for i, m in enumerate(_MARKUP_CHAR.finditer(text)) if i == MAX_MARKUP)
        return [
            Refusal(_line_at(text, over.start()), f"more than {MAX_MARKUP:,} Markdown markup characters ({MARKUP})")
        ]
    containers = 0
    for prefix in _CONTAINER_PREFIX.finditer(text):
        containers += len(_CONTAINER_MARK.findall(prefix.group(0)))
        if containers > MAX_CONTAINERS:
            found = f"more than {MAX_CONTAINERS:,} list items and blockquote markers"
            return [Refusal(_line_at(text, prefix.start()), found)]
    return _table_refusals(text.splitlines()) if "|" in text else []


def _structure_refusals(tokens: list[Token]) -> list[Refusal]:
    """Nesting that markdown-it would cut short, and too many headings."""
    refusals = []
    deep = next((t for t in tokens if t.type in _CONTAINERS and t.level >= MAX_NESTING - 2), None)
    if deep is not None:
        refusals.append(
            Refusal(
                deep.map[0] if deep.map else 0, f"blockquotes and lists nested deeper than {MAX_NESTING - 2} levels"
            )
        )
    opened = [t for t in tokens if t.type == "heading_open"]
    if len(opened) > MAX_HEADINGS:
        line = opened[MAX_HEADINGS].map[0] if opened[MAX_HEADINGS].map else 0
        refusals.append(Refusal(line, f"{len(opened):,} headings are more than {MAX_HEADINGS}"))
    return refusals


def parse_bounded(text: str) -> tuple[list[Token], list[Refusal]]:
    """Parse a Markdown text within bounds; a text over a limit is refused and parses as one plain code block.

    Returns:
        (block tokens, refusals): each refusal names its 0-based line in text.
    """
    refusals = _scan(text)
    if refusals:
        return [Token("code_block", "code", 0, content=text, map=[0, text.count("\n") + 1], block=True)], refusals
    tokens = parser().parse(text)
    return tokens, _structure_refusals(tokens)


def parse(text: str) -> list[Token]:
    """Return the block tokens of a Markdown text (bounded: see :func:`parse_bounded`)."""
    return parse_bounded(text)[0]


@dataclass(frozen=True)
class Heading:
    """A section heading found in Markdown tokens."""

    token_index: int
    level: int
    text: str
    anchor: str
    line: int  # 0-based line of the heading within the text


def inline_text(token: Token) -> str:
    """Return the plain text of an inline token (links keep their text, code its content)."""
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return "".join(parts)


def headings(tokens: list[Token]) -> list[Heading]:
    """Return the H2/H3 headings of a token stream with unique anchors."""
    found, seen = [], {}
    for index, token in enumerate(tokens):
        if token.type != "heading_open" or token.tag not in SECTION_LEVELS:
            continue
        text = inline_text(tokens[index + 1]).strip()
        base = slugify(text)
        seen[base] = seen.get(base, 0) + 1
        anchor = base if seen[base] == 1 else f"{base}-{seen[base]}"
        line = token.map[0] if token.map else 0
        found.append(Heading(index, int(token.tag[1]), text, anchor, line))
    return found


def plain_text(tokens: list[Token]) -> str:
    """Return the readable text of block tokens, one block per line."""
    lines = []
    for token in tokens:
        if token.type == "inline":
            text = inline_text(token).strip()
            if text:
                lines.append(text)
        elif token.type in ("fence", "code_block"):
            lines.append(token.content.strip())
    return "\n".join(lines)


def links_only(tokens: list[Token]) -> bool:
    """Whether block tokens hold links and nothing else: every text is a link's or punctuation between links.

    A "Related documents" list (``- [Title](/sops/x)`` items) is; a link inside a sentence, a link followed by a
    description, a code block, an image or an empty body is not.
    """
    links = 0
    for token in tokens:
        if token.type in ("fence", "code_block", "html_block"):
            return False
        if token.type != "inline":
            continue
        depth = 0
        for child in token.children or []:
            if child.type == "link_open":
                depth += 1
                links += 1
            elif child.type == "link_close":
                depth -= 1
            elif child.type == "image" or (depth == 0 and _WORD.search(child.content or "")):
                return False
    return links > 0


_RENDERED: OrderedDict[str, str] = OrderedDict()  # sha256 of a text -> its HTML, least recently used first
_RENDERED_MAX_ENTRIES = 512
_RENDERED_MAX_CHARS = 32_000_000
_rendered_chars = 0
_rendered_lock = threading.Lock()


def render_html(text: str) -> str:
    """Render Markdown to safe HTML with ids on H2/H3 headings, remembered per process by the text's hash."""
    global _rendered_chars
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    with _rendered_lock:
        if key in _RENDERED:
            _RENDERED.move_to_end(key)
            return _RENDERED[key]
    html = _render(text)
    with _rendered_lock:
        if key not in _RENDERED and len(html) <= _RENDERED_MAX_CHARS:
            _RENDERED[key] = html
            _rendered_chars += len(html)
            while len(_RENDERED) > _RENDERED_MAX_ENTRIES or _rendered_chars > _RENDERED_MAX_CHARS:
                _rendered_chars -= len(_RENDERED.popitem(last=False)[1])
    return html


def _render(text: str) -> str:
    """Render Markdown to safe HTML with ids on H2/H3 headings."""
    md = parser()
    tokens = parse(text)
    for heading in headings(tokens):
        tokens[heading.token_index].attrSet("id", heading.anchor)
    for token in tokens:
        for child in token.children or []:
            if child.type == "link_open" and _SCHEME.match(child.attrGet("href") or ""):
                child.attrSet("rel", "noopener noreferrer")
    return md.renderer.render(tokens, md.options, {})
