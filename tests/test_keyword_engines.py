"""Every keyword engine (keyword.ENGINES) behaves the same: ranking, fields, stemming, filters, updates, analysis."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import pytest

from kb.indexing.chunking import Section
from kb.indexing.filters import Filters
from kb.indexing.keyword import ENGINES, FIELD_BOOSTS, IndexedSection, KeywordIndex, keyword_backend, searchable_fields

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_SOPS = ROOT / "sops"


def item(
    sop_id: str,
    anchor: str,
    text: str,
    *,
    title: str = "Handling notes",
    heading: str = "Steps",
    tags: tuple[str, ...] = (),
    categories: tuple[str, ...] = ("payments/duplicate-charge",),
    business_line: str = "all",
    type: str = "sop",
) -> IndexedSection:
    section = Section(sop_id, anchor, heading, 2, (title, heading), text, 1)
    return IndexedSection(section, title, tags, categories, business_line, type)


LIBRARY = [
    item("dup", "purpose", "A customer was charged twice for one order. Check the ledger first."),
    item("dup", "macro", "We refunded the second charge; it shows within five days."),
    item(
        "payout",
        "late",
        "The creator payout has not arrived. Check the payout schedule and the bank details.",
        title="Delayed payout",
        categories=("payouts/delayed",),
        business_line="creator-payouts",
    ),
    item(
        "trial",
        "ended",
        "The free trial ended and the subscription renewed at the full price.",
        title="Free trial conversion",
        categories=("subscriptions/trial",),
        business_line="subscriptions",
        type="policy",
    ),
    item(
        "coins",
        "missing",
        "Coins purchased in the app are missing from the balance.",
        title="Coins not credited",
        categories=("iap/coins",),
        business_line="in-app-purchases",
    ),
]


@pytest.fixture(params=sorted(ENGINES))
def engine(request) -> type[KeywordIndex]:
    return keyword_backend(request.param)


def built(engine: type[KeywordIndex], folder: Path, items) -> KeywordIndex:
    engine.build(folder, items)
    return engine.open(folder)


@pytest.fixture
def library(engine, tmp_path) -> KeywordIndex:
    return built(engine, tmp_path / "keyword", LIBRARY)


def keys(hits) -> list[str]:
    return [key for key, _ in hits]


def test_search_returns_section_keys_and_scores_best_first(library):
    hits = library.search("charged twice", 10)
    assert hits and hits[0][0] == "dup#purpose"
    assert all(isinstance(key, str) and isinstance(score, float) for key, score in hits)
    scores = [score for _, score in hits]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    assert set(keys(hits)) <= {i.section.key for i in LIBRARY}


def test_limit_caps_the_hits(library):
    assert len(library.search("check the payout ledger charge", 1)) == 1


def test_a_title_match_outranks_a_body_match(engine, tmp_path):
    index = built(
        engine,
        tmp_path / "keyword",
        [
            item("a", "x", "Steps for the support team to follow today.", title="Chargeback handling"),
            item("b", "x", "Chargeback steps for the support team to follow.", title="Other handling"),
        ],
    )
    assert keys(index.search("chargeback", 10)) == ["a#x", "b#x"]


def test_every_field_is_searched(engine, tmp_path):
    index = built(
        engine,
        tmp_path / "keyword",
        [
            item("t", "x", "plain", title="Alphaword"),
            item("h", "x", "plain", heading="Betaword"),
            item("b", "x", "Gammaword plain"),
            item("g", "x", "plain", tags=("deltaword",)),
            item("c", "x", "plain", categories=("epsilonword/x",)),
        ],
    )
    for word, key in [("alphaword", "t#x"), ("betaword", "h#x"), ("gammaword", "b#x")]:
        assert keys(index.search(word, 10)) == [key]
    assert keys(index.search("deltaword", 10)) == ["g#x"]
    assert keys(index.search("epsilonword", 10)) == ["c#x"]
    assert set(FIELD_BOOSTS) <= set(searchable_fields(LIBRARY[0]))


def test_stemming_finds_other_forms_of_a_word(library):
    assert keys(library.search("refunds", 10)) == ["dup#macro"]
    assert keys(library.search("refunding", 10)) == ["dup#macro"]
    assert "payout#late" in keys(library.search("payouts", 10))


def test_stop_words_alone_find_nothing(library):
    assert library.search("the and of", 10) == []
    assert [term for _, _, term in library.analyze("the charge")] == [library.analyze("charge")[0][2]]


def test_expansions_are_searched_with_their_weight(library):
    (alone,) = library.search("refunded", 10)
    (half,) = library.search("xyzzy", 10, expansions=[("refunded", 0.5)])
    assert half[0] == alone[0] and half[1] == pytest.approx(alone[1] * 0.5, rel=1e-3)
    # a term takes the greatest weight it is given: the query's 1.0 beats a lower expansion weight
    (same,) = library.search("refunded", 10, expansions=[("refunds", 0.3)])
    assert same[1] == pytest.approx(alone[1], rel=1e-3)
    (more,) = library.search("refunded", 10, expansions=[("refunds", 2.0)])
    assert more[1] == pytest.approx(alone[1] * 2.0, rel=1e-3)


def test_business_line_filter_keeps_that_line_and_all(library):
    query = "check charge refunded payout trial coins"
    assert len(library.search(query, 10)) == len(LIBRARY)
    hits = library.search(query, 10, Filters(business_line="creator-payouts"))
    assert set(keys(hits)) == {"payout#late", "dup#purpose", "dup#macro"}
    assert set(keys(library.search(query, 10, Filters(business_line="all")))) == {"dup#purpose", "dup#macro"}


def test_type_filter(library):
    assert keys(library.search("trial charged coins", 10, Filters(type="policy"))) == ["trial#ended"]


def test_category_filter_matches_a_category_and_its_group(library):
    query = "check payout charged twice trial coins"
    assert set(keys(library.search(query, 10, Filters(category="payouts/delayed")))) == {"payout#late"}
    assert set(keys(library.search(query, 10, Filters(category="payouts")))) == {"payout#late"}
    assert keys(library.search(query, 10, Filters(category="payout"))) == []  # a prefix is not a group
    assert set(keys(library.search(query, 10, Filters(category="payments")))) == {"dup#purpose", "dup#macro"}


def test_filters_combine_and_do_not_change_scores(library):
    query = "charged twice trial coins payout"
    plain = dict(library.search(query, 10))
    filtered = library.search(query, 10, Filters(business_line="subscriptions", type="sop"))
    assert set(keys(filtered)) == {"dup#purpose", "dup#macro"}
    for key, score in filtered:
        assert score == pytest.approx(plain[key], rel=1e-6)
    assert library.search(query, 10, Filters(business_line="nowhere", type="nothing")) == []


def test_update_is_a_copy_less_removed_plus_new(engine, tmp_path):
    old = tmp_path / "old"
    engine.build(old, LIBRARY)
    new = tmp_path / "new"
    engine.update(old, new, {"dup", "coins"}, [item("dup", "new", "A chargeback replaces the duplicate text.")])
    updated = engine.open(new)
    assert len(updated) == len(LIBRARY) - 3 + 1
    assert keys(updated.search("chargeback", 10)) == ["dup#new"]
    assert updated.search("refunded twice coins", 10) == []
    assert keys(updated.search("payout", 10)) == ["payout#late"]
    previous = engine.open(old)  # the old index is untouched
    assert len(previous) == len(LIBRARY) and previous.search("chargeback", 10) == []
    again = tmp_path / "again"  # an update of an update
    engine.update(new, again, {"payout"}, [item("coins", "back", "Coins are back in the balance.")])
    assert len(engine.open(again)) == len(LIBRARY) - 3 + 1 - 1 + 1
    assert keys(engine.open(again).search("coins", 10)) == ["coins#back"]


def test_len_counts_live_sections(engine, tmp_path):
    assert len(built(engine, tmp_path / "empty", [])) == 0
    assert built(engine, tmp_path / "empty2", []).search("charge", 10) == []
    assert len(built(engine, tmp_path / "full", LIBRARY)) == len(LIBRARY)


def test_a_missing_folder_raises(engine, tmp_path):
    with pytest.raises(Exception):  # noqa: B017 - any exception: the generation loader makes it an IndexError_
        engine.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception):  # noqa: B017
        engine.open(tmp_path / "empty")


@pytest.mark.parametrize("garbage", [b"\x00garbage" * 7, b"garbage"], ids=["long", "short"])
def test_a_damaged_folder_raises_an_exception(engine, tmp_path, garbage):
    """An Exception, not a BaseException: a Rust panic (tantivy on a file shorter than its footer) included."""
    folder = tmp_path / "keyword"
    engine.build(folder, LIBRARY)
    for path in folder.iterdir():
        if path.is_file() and path.stat().st_size:
            path.write_bytes(garbage)
    with pytest.raises(Exception):  # noqa: B017
        engine.open(folder)


def test_analyze_offsets_on_compatibility_forms_point_into_the_text_as_given(library):
    text = "Ｒｅｆｕｎｄｓ of the ﬁle, cafe\u0301 ⓡⓔⓕⓤⓝⓓ <now>"
    spans = {text[start:end]: term for start, end, term in library.analyze(text)}
    plain = {word: library.analyze(word)[0][2] for word in ("refunds", "file", "café", "refund")}
    assert spans["Ｒｅｆｕｎｄｓ"] == plain["refunds"]
    assert spans["ﬁle"] == plain["file"]
    assert spans["cafe\u0301"] == plain["café"]
    assert spans["ⓡⓔⓕⓤⓝⓓ"] == plain["refund"]
    assert "the" not in spans and "of" not in spans


def test_compatibility_forms_are_indexed_as_their_plain_words(engine, tmp_path):
    index = built(engine, tmp_path / "keyword", [item("w", "x", "The ｒｅｆｕｎｄｅｄ ﬁle.")])
    assert keys(index.search("refund files", 10)) == ["w#x"]
    assert keys(index.search("Ｒｅｆｕｎｄ", 10)) == ["w#x"]


def test_empty_query_finds_nothing(library):
    assert library.search("", 10) == []
    assert library.search("   \n\t", 10) == []
    assert library.analyze("") == []


HOSTILE = [
    "!!! ??? ... --- *** ((( ))) [[[ ]]] {{{ }}} ''' \"\"\" ;;; ::: /// \\\\\\ @@@ ### $$$ %%%",
    ("refund charge twice " * 600)[:10_000],
    "x" * 10_000,
    "".join(chr(c) for c in range(0x20, 0x3000, 3))[:10_000],
    "\u202eRLO \u200b\u200dzero width \ufeffbom \x00nul \ud800 lone surrogate \U0001f4b3\U0001f4b3 emoji",
    "\u0301\u0301 leading marks ِ हिंदी भुगतान العربية الدفع 中文退款 한국어 환불 ΟΔΟΣ ǅ ﬀ Ⅻ ½ ²",
    'AND OR NOT title:refund body:* refund~2 "refund" +refund -refund refund^9 (refund) [a TO z]',
]


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_query_text_never_raises(library, query):
    hits = library.search(query, 10, Filters(business_line="all", category="payments"), [(query, 0.5)])
    assert isinstance(hits, list)
    for start, end, term in library.analyze(query):
        assert 0 <= start < end <= len(query) and term


def test_random_unicode_never_raises(library):
    rng = random.Random(7)
    for _ in range(50):
        text = "".join(chr(rng.randrange(0x20, 0x2FFFF)) for _ in range(200))
        library.search(text, 5)
        library.analyze(text)


# tantivy only: analyze() must give exactly the terms its index analyzer indexes.


def _index_terms(text: str) -> list[str]:
    from kb.indexing.analysis import nfkc_with_offsets
    from kb.indexing.tantivy_engine import _analyzer

    return _analyzer().analyze(nfkc_with_offsets(text)[0])


def test_tantivy_analyze_gives_the_index_analyzers_terms_on_the_shipped_sops():
    from kb.indexing.tantivy_engine import analyze_text

    paths = sorted(SHIPPED_SOPS.rglob("*.md"))
    assert len(paths) > 20
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert [term for _, _, term in analyze_text(text)] == _index_terms(text), path.name


@pytest.mark.parametrize("text", HOSTILE[:1] + HOSTILE[3:], ids=range(len(HOSTILE) - 2))
def test_tantivy_analyze_gives_the_index_analyzers_terms_on_hostile_text(text):
    from kb.indexing.tantivy_engine import analyze_text

    text = text.replace("\ud800", "")  # a lone surrogate cannot be passed to Rust; no run of letters holds one
    assert [term for _, _, term in analyze_text(text)] == _index_terms(text)


def test_tantivy_analyze_gives_the_index_analyzers_terms_on_every_letter_and_mark():
    """Characters whose Unicode properties differ between Python's str methods and Rust's (marks, circled
    letters, Nl numbers), each between two letters, in one text."""
    from kb.indexing.tantivy_engine import analyze_text

    chars = [chr(c) for c in range(0x80, 0x30000) if unicodedata.category(chr(c)) not in ("Cs", "Co", "Cn")]
    text = " ".join(f"a{c}b" for c in chars)
    assert [term for _, _, term in analyze_text(text)] == _index_terms(text)


def test_tantivy_index_holds_every_term_analyze_gives_for_each_field(tmp_path):
    """End to end on the shipped library: every analyze() term of a section's field is in that field's index."""
    import tantivy

    from kb.indexing.chunking import chunk_document
    from kb.indexing.keyword import items_for
    from kb.indexing.tantivy_engine import TantivyIndex
    from kb.library import load_library

    library = load_library(SHIPPED_SOPS)
    sections = [s for doc_id in sorted(library.documents) for s in chunk_document(library.documents[doc_id])]
    items = items_for(sections, library.documents)
    TantivyIndex.build(tmp_path / "keyword", items)
    index = TantivyIndex.open(tmp_path / "keyword")
    assert len(index) == len(items) > 500
    searcher = tantivy.Index.open(str(tmp_path / "keyword")).searcher()
    for one in items:
        fields = searchable_fields(one)
        for name in FIELD_BOOSTS:
            for _, _, term in index.analyze(fields[name]):
                assert searcher.doc_freq(name, term) > 0, (one.section.key, name, term)


def test_tantivy_open_holds_no_writer(tmp_path):
    import tantivy

    from kb.indexing.tantivy_engine import TantivyIndex

    TantivyIndex.build(tmp_path / "keyword", LIBRARY)
    index = TantivyIndex.open(tmp_path / "keyword")
    writer = tantivy.Index.open(str(tmp_path / "keyword")).writer(heap_size=15_000_000, num_threads=1)
    writer.rollback()
    assert keys(index.search("payout", 10)) == ["payout#late"]
