"""The tantivy keyword engine: BM25 in Rust (the tantivy bindings), with NFKC, stop words and English stemming.

A query is one term query per (term, field) in a disjunction: a section scores the sum over fields of BM25,
the shape of whoosh's BM25F. Two corrections make the ranking whoosh's, measured on the dev queries
(docs/relevance.md, "Keyword engines"):

- the inverse document frequency is whoosh's, log(N / (df + 1)) + 1, which weighs common words more than
  tantivy's log(1 + (N - df + 0.5) / (df + 0.5)); each term query is boosted by the ratio of the two
  (FIELD_WEIGHTS times the term's weight times idf_whoosh / idf_tantivy), computed once per (field, term);
- the fields weigh the same (FIELD_WEIGHTS): whoosh applies FIELD_BOOSTS to term frequencies, inside BM25's
  saturation, where a title boost of 3 is worth about 1.3 to 1.6; multiplying whole scores by FIELD_BOOSTS
  lost 4 dev queries at keyword hit@3, equal weights 1.

Filters are constant-score clauses of score 0, so they choose sections and never change a score.

Index terms and :meth:`TantivyIndex.analyze` agree by construction: the index analyzer is tantivy's simple
tokenizer (runs of alphanumeric characters), then long words dropped, lower case, stop words and the English
(Snowball) stemmer, over the NFKC form of the text (kb.indexing.analysis). analyze() finds the same runs
with a regular expression, for their offsets, and passes each distinct word through that same tantivy
analyzer once (a bounded cache), so lower-casing, stop words and stems are tantivy's own.

Section keys come back through an integer fast field, ``ord``: a hit's ord is read from a column (about
0.1 µs a hit, against about 1 µs to read a stored document) and mapped to its key with a dict that open()
builds from the stored keys. An update copies the folder, deletes by sop_id, adds, commits once and waits
for merges.
"""

from __future__ import annotations

import math
import shutil
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import regex
import tantivy
from tantivy import Occur, Query

from kb.indexing.analysis import nfkc_with_offsets
from kb.indexing.filters import Filters
from kb.indexing.keyword import FIELD_BOOSTS, IndexedSection, KeywordIndex, searchable_fields

ANALYZER = "kb_english"
# whoosh's English stop words (whoosh.analysis.STOP_WORDS), so both engines drop the same words.
STOP_WORDS = (
    "a an and are as at be by can for from have if in is it may not of on or tbd that the this to us we when "
    "will with yet you your"
).split()
MAX_WORD_BYTES = 40  # tantivy's default: a longer word (a hash, a run of letters) is not indexed
# tantivy's simple tokenizer splits on every character that is not alphanumeric in Rust's sense
# (char::is_alphanumeric: Unicode Alphabetic or a number), which includes marks such as Devanagari vowel signs
# that Python's str.isalnum and re's \w leave out.
WORD = regex.compile(r"[\p{Alphabetic}\p{N}]+")
TERM_CACHE_SIZE = 100_000  # distinct words remembered by analyze(); emptied when full
WRITER_HEAP_BYTES = 64_000_000
FILTER_FIELDS = ("business_line", "type", "category_ids")
ORD = "ord"
FIELD_WEIGHTS = dict.fromkeys(FIELD_BOOSTS, 1.0)  # see the module's docstring
IDF_CACHE_SIZE = 200_000  # (field, term) idf corrections remembered per open index; emptied when full


def _analyzer() -> tantivy.TextAnalyzer:
    """The index analyzer: simple tokenizer, long words dropped, lower case, stop words, English stems."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_WORD_BYTES))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.custom_stopword(STOP_WORDS))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


class _Terms:
    """Word -> its index terms through the tantivy analyzer, remembered (the cache is bounded)."""

    def __init__(self) -> None:
        self._analyzer = _analyzer()
        self._cache: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def __call__(self, word: str) -> tuple[str, ...]:
        """The terms of one word: () for a stop word or a long word, one stem otherwise.

        More than one term only if the simple tokenizer splits the word where WORD does not (a character
        whose Unicode properties differ between Python's and Rust's tables); each is then a term of the word.
        """
        terms = self._cache.get(word)
        if terms is None:
            with self._lock:  # the analyzer is one Rust object; misses are rare once the cache is warm
                terms = tuple(self._analyzer.analyze(word))
                if len(self._cache) >= TERM_CACHE_SIZE:
                    self._cache.clear()
                self._cache[word] = terms
        return terms


_TERMS = _Terms()


def analyze_text(text: str) -> list[tuple[int, int, str]]:
    """Return (start, end, term) for each term tantivy indexes of text, with offsets into text as given.

    Args:
        text: any text; it is NFKC-normalised first, as the index is.

    Returns:
        The terms in text order; a term's span is the word it comes from.
    """
    normal, starts, ends = nfkc_with_offsets(text)
    out: list[tuple[int, int, str]] = []
    for match in WORD.finditer(normal):
        terms = _TERMS(match.group())
        if not terms:
            continue
        start, end = match.span()
        if starts is not None and ends is not None:
            start, end = starts[start], ends[end - 1]
        out.extend((start, end, term) for term in terms)
    return out


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("key", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("sop_id", tokenizer_name="raw", index_option="basic")
    for name in FILTER_FIELDS:
        builder.add_text_field(name, tokenizer_name="raw", index_option="basic")
    for name in FIELD_BOOSTS:
        builder.add_text_field(name, tokenizer_name=ANALYZER, index_option="freq")
    builder.add_unsigned_field(ORD, fast=True)
    return builder.build()


def _document(item: IndexedSection, ordinal: int) -> tantivy.Document:
    values = searchable_fields(item)
    doc = tantivy.Document()
    doc.add_text("key", values["key"])
    doc.add_text("sop_id", values["sop_id"])
    doc.add_text("business_line", values["business_line"])
    doc.add_text("type", values["type"])
    for category in values["category_ids"]:
        doc.add_text("category_ids", category)
    for name in FIELD_BOOSTS:
        doc.add_text(name, nfkc_with_offsets(values[name])[0])  # the text analyze() sees
    doc.add_unsigned(ORD, ordinal)
    return doc


def _open(folder: Path) -> tantivy.Index:
    if not (folder / "meta.json").is_file():
        raise FileNotFoundError(f"no tantivy index in {folder}")
    ix = tantivy.Index.open(str(folder))
    ix.register_tokenizer(ANALYZER, _analyzer())
    return ix


def _write(ix: tantivy.Index, remove_sops: set[str], items: Iterable[IndexedSection], first: int) -> None:
    """Delete remove_sops, add items numbered from first, commit once and wait for merges."""
    writer = ix.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
    try:
        for sop_id in sorted(remove_sops):
            writer.delete_documents_by_term("sop_id", sop_id)
        for ordinal, item in enumerate(items, start=first):
            writer.add_document(_document(item, ordinal))
        writer.commit()
    except BaseException:
        writer.rollback()
        raise
    writer.wait_merging_threads()


class TantivyError(RuntimeError):
    """tantivy failed (a Rust panic, which Python sees as a BaseException, is turned into this)."""


def _is_panic(error: BaseException) -> bool:
    return type(error).__name__ == "PanicException"


class TantivyIndex(KeywordIndex):
    """BM25 over title, headings, body, tags and categories (FIELD_BOOSTS), with stemming, in tantivy."""

    def __init__(self, ix: tantivy.Index):
        ix.config_reader(reload_policy="Manual")  # a generation's folder never changes once written
        self._searcher = ix.searcher()
        self._schema = ix.schema
        self._idf: dict[tuple[str, str], float] = {}
        count = self._searcher.num_docs
        addresses = [address for _, address in self._searcher.search(Query.all_query(), max(count, 1)).hits]
        ordinals = self._searcher.fast_field_values(ORD, addresses)
        self._keys: dict[int, str] = {
            ordinal: self._searcher.doc(address).get_first("key")
            for ordinal, address in zip(ordinals, addresses, strict=True)
        }
        if len(self._keys) != count or None in self._keys.values():
            raise TantivyError(f"tantivy index: {count} sections, {len(self._keys)} distinct keys read")

    @classmethod
    def build(cls, folder: Path, items: Iterable[IndexedSection]) -> None:
        """Build a fresh index in folder (created if missing).

        Raises:
            OSError, ValueError or TantivyError: the folder cannot be written.
        """
        try:
            folder.mkdir(parents=True, exist_ok=True)
            ix = tantivy.Index(_schema(), path=str(folder), reuse=False)
            ix.register_tokenizer(ANALYZER, _analyzer())
            _write(ix, set(), items, 0)
        except BaseException as error:
            if _is_panic(error):
                raise TantivyError(f"tantivy failed building {folder}: {error}") from error
            raise

    @classmethod
    def update(cls, old: Path, folder: Path, remove_sops: set[str], items: Iterable[IndexedSection]) -> None:
        """Write into folder a copy of the index in old, less the sections of remove_sops, plus items.

        Raises:
            OSError, ValueError or TantivyError: old cannot be read or folder written.
        """
        try:
            shutil.copytree(old, folder)
            ix = _open(folder)
            last = ix.searcher().search(Query.all_query(), 1, count=False, order_by_field=ORD).hits
            _write(ix, remove_sops, items, last[0][0] + 1 if last else 0)
        except BaseException as error:
            if _is_panic(error):
                raise TantivyError(f"tantivy failed updating {old} into {folder}: {error}") from error
            raise

    @classmethod
    def open(cls, folder: Path) -> TantivyIndex:
        """Open the index in folder for searching (no writer is held).

        Raises:
            FileNotFoundError, ValueError or TantivyError: the folder is missing or damaged.
        """
        try:
            return cls(_open(folder))
        except BaseException as error:
            if _is_panic(error):
                raise TantivyError(f"tantivy index in {folder} is damaged: {error}") from error
            raise

    def analyze(self, text: str) -> list[tuple[int, int, str]]:
        """Return (start, end, term) for each term tantivy indexes of text (see analyze_text)."""
        return analyze_text(text)

    def __len__(self) -> int:
        return self._searcher.num_docs

    def _weights(self, query: str, expansions: Sequence[tuple[str, float]]) -> dict[str, float]:
        """Term -> weight: the greatest weight of the texts it occurs in (the query's is 1)."""
        weights: dict[str, float] = {}
        for text, weight in [(query, 1.0), *expansions]:
            for _, _, term in analyze_text(text):
                weights[term] = max(weights.get(term, 0.0), weight)
        return weights

    def _idf_ratio(self, field: str, term: str) -> float:
        """whoosh's idf of a term in a field over tantivy's (0.0 when no section has it there)."""
        ratio = self._idf.get((field, term))
        if ratio is None:
            count, frequency = self._searcher.num_docs, self._searcher.doc_freq(field, term)
            if frequency == 0:
                ratio = 0.0
            else:
                ours = math.log(count / (frequency + 1)) + 1
                ratio = ours / math.log(1 + (count - frequency + 0.5) / (frequency + 0.5))
            if len(self._idf) >= IDF_CACHE_SIZE:
                self._idf.clear()
            self._idf[(field, term)] = ratio
        return ratio

    def _term(self, field: str, value: str) -> Query:
        return Query.term_query(self._schema, field, value, index_option="basic")

    def _filters(self, filters: Filters | None) -> list[tuple[Occur, Query]]:
        """Must clauses of score 0, one per filter."""
        if filters is None:
            return []
        parts = []
        if filters.business_line:
            either = [(Occur.Should, self._term("business_line", v)) for v in (filters.business_line, "all")]
            parts.append(Query.boolean_query(either))
        if filters.type:
            parts.append(self._term("type", filters.type))
        if filters.category:
            parts.append(self._term("category_ids", filters.category))
        return [(Occur.Must, Query.const_score_query(part, 0.0)) for part in parts]

    def search(
        self,
        query: str,
        limit: int,
        filters: Filters | None = None,
        expansions: Sequence[tuple[str, float]] = (),
    ) -> list[tuple[str, float]]:
        """Return (section key, score) pairs, best first; [] when the query has no indexable term.

        Raises:
            ValueError or TantivyError: tantivy failed.
        """
        weights = self._weights(query, expansions)
        if not weights or limit < 1:
            return []
        schema = self._schema
        should = [
            (
                Occur.Should,
                Query.boost_query(Query.term_query(schema, field, term, index_option="freq"), boost * weight * idf),
            )
            for term, weight in weights.items()
            for field, boost in FIELD_WEIGHTS.items()
            if (idf := self._idf_ratio(field, term))
        ]
        if not should:
            return []
        parsed = Query.boolean_query(should)
        restrictions = self._filters(filters)
        if restrictions:
            parsed = Query.boolean_query([(Occur.Must, parsed), *restrictions])
        try:
            hits = self._searcher.search(parsed, limit, count=False).hits
            ordinals = self._searcher.fast_field_values(ORD, [address for _, address in hits])
        except BaseException as error:
            if _is_panic(error):
                raise TantivyError(f"tantivy failed searching: {error}") from error
            raise
        keys = self._keys
        return [(keys[ordinal], float(score)) for (score, _), ordinal in zip(hits, ordinals, strict=True)]
