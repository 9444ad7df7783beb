"""The vector engine (kb.indexing.vector): exact and HNSW indexes, the threshold between them, filters."""

from __future__ import annotations

import numpy as np
import pytest

from kb.indexing import vector
from kb.indexing.embeddings import normalise
from kb.indexing.filters import Filters
from kb.indexing.vector import VectorIndex

DIMENSION = 384
THRESHOLD = 100  # small, so that a few hundred rows make an HNSW graph
ROWS = 300


def unit_rows(n: int, seed: int = 7) -> np.ndarray:
    """n seeded unit vectors, in clusters of ten so that rows have close neighbours."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 10), DIMENSION))
    return normalise(centres[np.arange(n) % len(centres)] + 0.3 * rng.standard_normal((n, DIMENSION)))


def documents(n: int) -> list[dict]:
    """A document record per row: every tenth row on business line "rare", the rest split over two types."""
    return [
        {
            "business_line": "rare" if i % 10 == 3 else "common",
            "type": "sop" if i % 2 else "policy",
            "categories": ["payments/duplicate-charge" if i % 3 else "payouts/delayed"],
        }
        for i in range(n)
    ]


def make_index(tmp_path, vectors: np.ndarray, threshold: int = THRESHOLD) -> VectorIndex:
    """Build and open an index of vectors with keys k0, k1, ..."""
    path = tmp_path / "vectors.faiss"
    VectorIndex.build(vectors, path, threshold=threshold)
    return VectorIndex.open(path, [f"k{i}" for i in range(len(vectors))], documents(len(vectors)))


def exact_order(vectors: np.ndarray, query: np.ndarray, rows: list[int] | None = None) -> list[tuple[str, float]]:
    """(key, cosine) of the given rows (default all), best first, computed with numpy."""
    rows = list(range(len(vectors))) if rows is None else rows
    scores = vectors[rows] @ query
    return [(f"k{rows[i]}", float(scores[i])) for i in np.argsort(-scores, kind="stable")]


@pytest.fixture(params=["exact", "hnsw", "hnsw-graph"])
def kind(request, monkeypatch) -> str:
    """exact; hnsw (a filtered search scans the passing rows: they are few); hnsw-graph (it searches the graph)."""
    if request.param == "hnsw-graph":
        monkeypatch.setattr(vector, "FILTERED_SCAN_ROWS", 0)
    return request.param


@pytest.fixture
def vectors() -> np.ndarray:
    return unit_rows(ROWS)


@pytest.fixture
def index(tmp_path, vectors, kind) -> VectorIndex:
    built = make_index(tmp_path, vectors, threshold=ROWS + 1 if kind == "exact" else THRESHOLD)
    assert built.kind == kind.removesuffix("-graph")
    return built


def test_the_threshold_chooses_the_kind(tmp_path):
    vectors = unit_rows(THRESHOLD)
    assert make_index(tmp_path, vectors[: THRESHOLD - 1]).kind == "exact"
    assert make_index(tmp_path, vectors).kind == "hnsw"
    assert len(make_index(tmp_path, vectors)) == THRESHOLD


def test_keys_come_back_best_first_with_cosine_scores(index, vectors):
    query = vectors[42]
    hits = index.search(query, 10)
    assert len(hits) == 10
    assert hits[0] == ("k42", pytest.approx(1.0, abs=1e-5))  # a row's own vector is its nearest
    scores = [score for _, score in hits]
    assert scores == sorted(scores, reverse=True)
    for key, score in hits:  # each score is the cosine of the query and that key's row
        assert score == pytest.approx(float(vectors[int(key[1:])] @ query), abs=1e-5)
    expected = exact_order(vectors, query)[:10]
    assert [key for key, _ in hits] == [key for key, _ in expected]  # the graph is exact at this size


def test_a_query_between_rows_finds_the_true_neighbours(index, vectors):
    query = normalise((vectors[5] + vectors[17] + vectors[200])[None, :])[0]
    hits = index.search(query, 20)
    assert [key for key, _ in hits] == [key for key, _ in exact_order(vectors, query)[:20]]


def test_a_limit_past_the_rows_returns_every_row(index, vectors):
    hits = index.search(vectors[0], ROWS + 50)
    assert len(hits) == ROWS
    assert {key for key, _ in hits} == {f"k{i}" for i in range(ROWS)}


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_returns_nothing(index, vectors, limit):
    assert index.search(vectors[0], limit) == []
    assert index.search(vectors[0], limit, Filters(business_line="rare")) == []


@pytest.mark.parametrize("threshold", [0, 1_000_000])
def test_an_empty_index_returns_nothing(tmp_path, threshold):
    empty = make_index(tmp_path, np.zeros((0, DIMENSION), dtype=np.float32), threshold=threshold)
    assert len(empty) == 0
    assert empty.kind == ("hnsw" if threshold == 0 else "exact")
    query = unit_rows(1)[0]
    assert empty.search(query, 10) == []
    assert empty.search(query, 10, Filters(type="sop")) == []


@pytest.mark.parametrize(
    "filters",
    [
        Filters(type="sop"),  # half the rows
        Filters(business_line="rare"),  # a tenth
        Filters(category="payouts"),  # a third, by category prefix
        Filters(business_line="rare", type="sop", category="payouts/delayed"),  # 1 row in 30: 10 rows
    ],
)
def test_filters_are_honoured_and_the_results_are_the_best_allowed_rows(index, vectors, filters):
    docs = documents(ROWS)
    allowed = [i for i in range(ROWS) if filters.matches(docs[i])]
    for row in (0, 3, 150):
        query = vectors[row]
        hits = index.search(query, 10, filters)
        assert {key for key, _ in hits} <= {f"k{i}" for i in allowed}
        expected = exact_order(vectors, query, allowed)[:10]
        assert [key for key, _ in hits] == [key for key, _ in expected]  # nothing allowed is lost
        assert [score for _, score in hits] == pytest.approx([score for _, score in expected], abs=1e-5)


def test_when_few_rows_pass_exactly_those_come_back(index, vectors):
    few = Filters(business_line="rare", type="sop", category="payouts/delayed")
    docs = documents(ROWS)
    allowed = [i for i in range(ROWS) if few.matches(docs[i])]
    assert len(allowed) == 10
    hits = index.search(vectors[0], 20, few)  # row 0 itself does not pass
    assert {key for key, _ in hits} == {f"k{i}" for i in allowed}
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)
    best = index.search(vectors[0], 4, few)  # fewer than pass: the best of them
    assert [key for key, _ in best] == [key for key, _ in exact_order(vectors, vectors[0], allowed)[:4]]


def test_a_filter_nothing_passes_returns_nothing(index, vectors):
    assert index.search(vectors[0], 10, Filters(business_line="nobody")) == []


def test_the_same_filter_again_gives_the_same_answer(index, vectors):
    rare = Filters(business_line="rare")
    first = index.search(vectors[9], 10, rare)
    for other in (Filters(type="sop"), None, Filters(category="payouts")):
        index.search(vectors[9], 10, other)
    assert index.search(vectors[9], 10, rare) == first


@pytest.mark.parametrize("threshold", [ROWS + 1, THRESHOLD], ids=["exact", "hnsw"])
def test_similarities_are_the_cosines_of_the_named_sections_in_their_order(tmp_path, vectors, threshold):
    index = make_index(tmp_path, vectors, threshold=threshold)
    query = normalise(vectors[5:6] + vectors[42:43])[0]
    keys = ["k42", "k5", "k299", "k0"]
    expected = [float(vectors[int(k[1:])] @ query) for k in keys]
    assert index.similarities(query, keys) == pytest.approx(expected, abs=1e-5)
    assert index.similarities(query, []) == []
    with pytest.raises(KeyError):
        index.similarities(query, ["nope"])
