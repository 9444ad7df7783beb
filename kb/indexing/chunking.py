"""Markdown -> sections: the unit of retrieval and of citation.

A document splits at its H2 and H3 headings. Text before the first heading
becomes an "Overview" section. A heading with no text of its own (an H2
directly followed by H3s) is not a section: its H3s carry it in their heading
path. Each section knows its SOP id, heading, stable
anchor, heading path (document title, then the H2 above an H3) and the line it
starts on in the file, and whether its body is only links (a "Related documents" list, kb.markdown.links_only):
such a section is indexed, so a query can still find its document, but search cites another of its sections.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from dataclasses import asdict, dataclass

from kb import markdown
from kb.documents import Document

OVERVIEW_ANCHOR = "overview"
# Bump when the way documents become sections changes: existing indexes are then rebuilt in full.
# 3: embedding text is NFKC, and the keyword analyzer normalises (kb.indexing.whoosh_engine.NfkcTokenizer).
CHUNKING_VERSION = 3


@dataclass(frozen=True)
class Section:
    """One section of a document."""

    sop_id: str
    anchor: str
    heading: str
    level: int
    heading_path: tuple[str, ...]
    text: str  # plain text of the body under the heading
    line: int  # 1-based line in the file
    links_only: bool = False  # its body is only links (a "Related documents" list): found, never cited

    @property
    def key(self) -> str:
        """The section's unique key across the library: ``sop_id#anchor``."""
        return f"{self.sop_id}#{self.anchor}"

    @property
    def embedding_text(self) -> str:
        """Text given to the embedding model: heading path as context, then the body, NFKC-normalised."""
        return unicodedata.normalize("NFKC", " > ".join(self.heading_path) + "\n" + self.text)

    @property
    def content_hash(self) -> str:
        """sha256 of the embedding text: equal hashes embed to equal vectors."""
        return hashlib.sha256(self.embedding_text.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict:
        """Return the section as plain data."""
        data = asdict(self)
        data["heading_path"] = list(self.heading_path)
        data["key"] = self.key
        return data


@functools.lru_cache(maxsize=512)
def chunk_document(document: Document) -> tuple[Section, ...]:
    """Split a document into sections at its H2/H3 headings.

    Args:
        document: a validated document.

    Returns:
        Sections in document order; an "Overview" section first if text precedes the first heading.
        Remembered per process (documents and sections are immutable).
    """
    tokens = markdown.parse(document.body)
    found = markdown.headings(tokens)
    sections: list[Section] = []
    first = found[0].token_index if found else len(tokens)
    h1_inline = {i + 1 for i, t in enumerate(tokens[:first]) if t.type == "heading_open" and t.tag == "h1"}
    preamble = markdown.plain_text([t for i, t in enumerate(tokens[:first]) if i not in h1_inline])
    if preamble:
        sections.append(
            Section(
                document.id,
                OVERVIEW_ANCHOR,
                "Overview",
                2,
                (document.title,),
                preamble,
                document.body_line,
                markdown.links_only([t for i, t in enumerate(tokens[:first]) if i not in h1_inline]),
            )
        )
    parent = None
    for position, heading in enumerate(found):
        end = found[position + 1].token_index if position + 1 < len(found) else len(tokens)
        block = tokens[heading.token_index + 3 : end]
        body = markdown.plain_text(block)
        if heading.level == 2:
            parent = heading.text
            path = (document.title, heading.text)
        else:
            path = (document.title, parent, heading.text) if parent else (document.title, heading.text)
        if not body:
            continue
        sections.append(
            Section(
                document.id,
                heading.anchor,
                heading.text,
                heading.level,
                path,
                body,
                document.body_line + heading.line,
                markdown.links_only(block),
            )
        )
    return tuple(sections)
