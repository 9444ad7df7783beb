"""The keyword index: an interface, and its whoosh (BM25F) implementation.

Search and web code see only :class:`KeywordIndex`; a different engine (tantivy,
OpenSearch) is another implementation of the same few methods. Following
whoosh's incremental indexing guide, an update deletes what is gone, replaces
what changed, adds what is new, and commits once.
"""

from __future__ import annotations

import shutil
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from whoosh import fields, index, scoring
from whoosh.analysis import LowercaseFilter, RegexTokenizer, StemFilter, StopFilter
from whoosh.query import And, Or, Term

from kb.indexing.chunking import Section

# Field weights in BM25F: matches in titles and headings say more than in body text.
FIELD_BOOSTS = {"title": 3.0, "headings": 2.0, "body": 1.0, "tags": 2.0, "categories": 2.0}


@dataclass(frozen=True)
class Filters:
    """Restrictions on results: each None means no restriction."""

    business_line: str | None = None
    category: str | None = None
    type: str | None = None

    def matches(self, meta: dict) -> bool:
        """Whether a section's document metadata passes the filters."""
        if self.business_line and meta["business_line"] not in (self.business_line, "all"):
            return False
        if self.type and meta["type"] != self.type:
            return False
        if self.category:
            cats = meta["categories"]
            if not any(c == self.category or c.startswith(self.category + "/") for c in cats):
                return False
        return True


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


def nfkc_with_offsets(text: str) -> tuple[str, list[int] | None, list[int] | None]:
    """NFKC-normalise text; for each character of the result, where its source starts and ends in text.

    Normalised a segment at a time (a character and the combining marks after it), so every character of
    the result comes from one segment. Returns (text, None, None) when text is already NFKC.
    """
    if unicodedata.is_normalized("NFKC", text):
        return text, None, None
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    begin = 0
    for position in range(1, len(text) + 1):
        if position < len(text) and unicodedata.combining(text[position]):
            continue
        piece = unicodedata.normalize("NFKC", text[begin:position])
        pieces.append(piece)
        starts.extend([begin] * len(piece))
        ends.extend([position] * len(piece))
        begin = position
    return "".join(pieces), starts, ends


class NfkcTokenizer(RegexTokenizer):
    """whoosh's RegexTokenizer over the NFKC form of the text (``ｒｅｆｕｎｄ``, ``ﬁle`` and ``①`` are plain
    words and digits), with character offsets into the text as given, so snippets highlight the right span."""

    def __call__(self, value, chars=False, start_char=0, **kwargs):
        normal, starts, ends = nfkc_with_offsets(value)
        for token in super().__call__(normal, chars=chars, start_char=0, **kwargs):
            if chars:
                if starts is not None and ends is not None and token.endchar > token.startchar:
                    token.startchar, token.endchar = starts[token.startchar], ends[token.endchar - 1]
                token.startchar += start_char
                token.endchar += start_char
            yield token


def _analyzer():
    """NFKC, then whoosh's StemmingAnalyzer chain: words, lower case, stop words, Porter stems."""
    return NfkcTokenizer() | LowercaseFilter() | StopFilter() | StemFilter(cachesize=50000)


def _schema() -> fields.Schema:
    text = {name: fields.TEXT(analyzer=_analyzer(), field_boost=boost) for name, boost in FIELD_BOOSTS.items()}
    return fields.Schema(
        key=fields.ID(stored=True, unique=True),
        sop_id=fields.ID(stored=True),
        business_line=fields.ID,
        type=fields.ID,
        category_ids=fields.KEYWORD(commas=True),
        **text,
    )


def _fields_of(item: IndexedSection) -> dict:
    section = item.section
    groups = {c.split("/")[0] for c in item.categories}
    return {
        "key": section.key,
        "sop_id": section.sop_id,
        "business_line": item.business_line,
        "type": item.type,
        "category_ids": ",".join(sorted(set(item.categories) | groups)),
        "title": item.title,
        "headings": " ".join(section.heading_path[1:]),
        "body": section.text,
        "tags": " ".join(item.tags),
        "categories": " ".join(c.replace("/", " ").replace("-", " ") for c in item.categories)
        + " "
        + item.category_text,
    }


class WhooshIndex(KeywordIndex):
    """BM25F over title, headings, body, tags and categories, with stemming."""

    def __init__(self, ix: index.Index):
        self._ix = ix
        self._searcher = ix.searcher(weighting=scoring.BM25F())
        self._analyzer = _analyzer()

    @classmethod
    def build(cls, folder: Path, items: Iterable[IndexedSection]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        ix = index.create_in(str(folder), _schema())
        with ix.writer() as writer:
            for item in items:
                writer.add_document(**_fields_of(item))

    @classmethod
    def update(cls, old: Path, folder: Path, remove_sops: set[str], items: Iterable[IndexedSection]) -> None:
        shutil.copytree(old, folder)
        ix = index.open_dir(str(folder))
        with ix.writer() as writer:
            for sop_id in sorted(remove_sops):
                writer.delete_by_term("sop_id", sop_id)
            for item in items:
                writer.add_document(**_fields_of(item))

    @classmethod
    def open(cls, folder: Path) -> WhooshIndex:
        return cls(index.open_dir(str(folder)))

    def analyze(self, text: str) -> list[tuple[int, int, str]]:
        return [(t.startchar, t.endchar, t.text) for t in self._analyzer(text, chars=True)]

    def __len__(self) -> int:
        return int(self._searcher.doc_count())

    def _query(self, query: str, expansions: Sequence[tuple[str, float]]):
        weights: dict[str, float] = {}
        for text, weight in [(query, 1.0), *expansions]:
            for _, _, term in self.analyze(text):
                weights[term] = max(weights.get(term, 0.0), weight)
        if not weights:
            return None
        return Or([Term(name, term, boost=w) for term, w in weights.items() for name in FIELD_BOOSTS])

    def _filter(self, filters: Filters | None):
        if filters is None:
            return None
        parts = []
        if filters.business_line:
            parts.append(Or([Term("business_line", filters.business_line), Term("business_line", "all")]))
        if filters.type:
            parts.append(Term("type", filters.type))
        if filters.category:
            parts.append(Term("category_ids", filters.category))
        return And(parts) if parts else None

    def search(
        self,
        query: str,
        limit: int,
        filters: Filters | None = None,
        expansions: Sequence[tuple[str, float]] = (),
    ) -> list[tuple[str, float]]:
        parsed = self._query(query, expansions)
        if parsed is None:
            return []
        hits = self._searcher.search(parsed, limit=limit, filter=self._filter(filters))
        return [(hit["key"], float(hit.score)) for hit in hits]

    def close(self) -> None:
        """Release the searcher."""
        self._searcher.close()


def keyword_backend(name: str = "whoosh") -> type[KeywordIndex]:
    """Return the keyword index implementation by name."""
    backends: dict[str, type[KeywordIndex]] = {"whoosh": WhooshIndex}
    if name not in backends:
        raise ValueError(f"unknown keyword backend {name!r} (known: {', '.join(backends)})")
    return backends[name]


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
