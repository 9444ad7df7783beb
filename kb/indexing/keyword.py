"""The keyword engine interface: what search needs of a keyword (BM25) index, and the registry of engines.

Search sees only :class:`KeywordIndex`: a query's text, a limit and filters in,
section keys with scores out, plus the engine's analyzer (typo correction and
snippets use it, so they see words as the index does). Each engine lives in a
module of its own (kb.indexing.whoosh_engine, kb.indexing.tantivy_engine); no
other module sees its objects. A distributed engine (OpenSearch) is another
implementation of the same few methods: see docs/architecture.md.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kb.indexing.chunking import Section
from kb.indexing.filters import Filters

# Field weights in BM25F: matches in titles and headings say more than in body text.
FIELD_BOOSTS = {"title": 3.0, "headings": 2.0, "body": 1.0, "tags": 2.0, "categories": 2.0}


@dataclass(frozen=True)
class IndexedSection:
    """What the keyword index needs of a section: its text and its document's fields."""

    section: Section
    title: str
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    business_line: str
    type: str
    category_text: str = ""  # names, descriptions and example phrasings of its categories


class KeywordIndex(ABC):
    """A keyword (BM25) index over sections."""

    @classmethod
    @abstractmethod
    def build(cls, folder: Path, items: Iterable[IndexedSection]) -> None:
        """Build a fresh index in folder."""

    @classmethod
    @abstractmethod
    def update(cls, old: Path, folder: Path, remove_sops: set[str], items: Iterable[IndexedSection]) -> None:
        """Write into folder a copy of the index in old, less remove_sops, plus items."""

    @classmethod
    @abstractmethod
    def open(cls, folder: Path) -> KeywordIndex:
        """Open an index for searching."""

    @abstractmethod
    def search(
        self,
        query: str,
        limit: int,
        filters: Filters | None = None,
        expansions: Sequence[tuple[str, float]] = (),
    ) -> list[tuple[str, float]]:
        """Return (section key, score) pairs, best first.

        Args:
            query: the text typed (already cleaned).
            limit: most sections to return.
            filters: optional restrictions.
            expansions: further (text, weight) searched alongside, such as glossary synonyms.
        """

    @abstractmethod
    def analyze(self, text: str) -> list[tuple[int, int, str]]:
        """Return (start, end, term) for each indexable term of text, as the index sees it."""

    @abstractmethod
    def __len__(self) -> int:
        """The number of sections in the index (deleted ones not counted)."""

    def close(self) -> None:  # noqa: B027 - optional: most engines hold nothing to release
        """Release what the open index holds (a no-op unless the engine needs it)."""


DEFAULT_ENGINE = "tantivy"  # the KEYWORD_ENGINE default (kb.config), chosen by measurement: docs/relevance.md
# engine name -> (module, class); modules load on first use, so whoosh is not imported to serve tantivy.
ENGINES = {
    "tantivy": ("kb.indexing.tantivy_engine", "TantivyIndex"),
    "whoosh": ("kb.indexing.whoosh_engine", "WhooshIndex"),
}


def keyword_backend(name: str) -> type[KeywordIndex]:
    """Return the keyword engine by name (one of ENGINES); ValueError naming the choices otherwise."""
    if name not in ENGINES:
        raise ValueError(f"unknown keyword engine {name!r} (choose one of: {', '.join(ENGINES)})")
    module, cls = ENGINES[name]
    return getattr(importlib.import_module(module), cls)


def searchable_fields(item: IndexedSection) -> dict:
    """A section's fields as every engine indexes them: text fields (FIELD_BOOSTS), ids and filter values.

    category_ids holds each category and its group ("refunds/partial" and "refunds"), for the category filter.
    """
    section = item.section
    groups = {c.split("/")[0] for c in item.categories}
    return {
        "key": section.key,
        "sop_id": section.sop_id,
        "business_line": item.business_line,
        "type": item.type,
        "category_ids": sorted(set(item.categories) | groups),
        "title": item.title,
        "headings": " ".join(section.heading_path[1:]),
        "body": section.text,
        "tags": " ".join(item.tags),
        "categories": " ".join(c.replace("/", " ").replace("-", " ") for c in item.categories)
        + " "
        + item.category_text,
    }


def items_for(
    sections: Sequence[Section], documents: dict, category_text: Callable[[str], str] | None = None
) -> list[IndexedSection]:
    """Pair each section with its document's searchable fields.

    Args:
        sections: the sections to index.
        documents: id -> Document.
        category_text: category id -> its searchable text (name, description, examples), if known.
    """
    out = []
    for section in sections:
        doc = documents[section.sop_id]
        text = " ".join(category_text(c) for c in doc.categories) if category_text else ""
        out.append(IndexedSection(section, doc.title, doc.tags, doc.categories, doc.business_line, doc.type, text))
    return out
