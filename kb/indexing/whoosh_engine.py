"""The whoosh keyword engine: BM25F in pure Python, with NFKC, stop words and Porter stemming.

Following whoosh's incremental indexing guide, an update deletes what is gone,
replaces what changed, adds what is new, and commits once.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from whoosh import fields, index, scoring
from whoosh.analysis import LowercaseFilter, RegexTokenizer, StemFilter, StopFilter
from whoosh.query import And, Or, Term

from kb.indexing.analysis import nfkc_with_offsets
from kb.indexing.filters import Filters
from kb.indexing.keyword import FIELD_BOOSTS, IndexedSection, KeywordIndex, searchable_fields


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
    values = searchable_fields(item)
    values["category_ids"] = ",".join(values["category_ids"])
    return values


class WhooshIndex(KeywordIndex):
    """BM25F over title, headings, body, tags and categories, with stemming."""

    def __init__(self, ix: index.Index):
        self._ix = ix
        self._searcher = ix.searcher(weighting=scoring.BM25F())
        self._lock = threading.Lock()  # a whoosh searcher is not safe across threads
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
        with self._lock:
            hits = self._searcher.search(parsed, limit=limit, filter=self._filter(filters))
            return [(hit["key"], float(hit.score)) for hit in hits]

    def close(self) -> None:
        """Release the searcher."""
        self._searcher.close()
