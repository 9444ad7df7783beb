"""Markdown parsing shared by chunking and rendering: one parser, one anchor rule.

Headings H2 and H3 start sections; their anchors are slugs of the heading text,
made unique within a document (``fees``, ``fees-2``). Rendering disables raw
HTML and allows only http(s), mailto and relative links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

SECTION_LEVELS = ("h2", "h3")
SAFE_SCHEMES = ("http", "https", "mailto")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


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
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.validateLink = is_safe_link
    return md


def parse(text: str) -> list[Token]:
    """Return the block tokens of a Markdown text."""
    return parser().parse(text)


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


def render_html(text: str) -> str:
    """Render Markdown to safe HTML with ids on H2/H3 headings."""
    md = parser()
    tokens = md.parse(text)
    for heading in headings(tokens):
        tokens[heading.token_index].attrSet("id", heading.anchor)
    for token in tokens:
        for child in token.children or []:
            if child.type == "link_open" and _SCHEME.match(child.attrGet("href") or ""):
                child.attrSet("rel", "noopener noreferrer")
    return md.renderer.render(tokens, md.options, {})
