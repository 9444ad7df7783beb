"""BEIR loaders and IR metrics on tiny literal inputs with hand-computed values."""

from __future__ import annotations

import math

import pytest

from kb.beir import (
    BeirDocument,
    doc_id_of,
    evaluate_run,
    load_corpus,
    load_qrels,
    load_queries,
    mean,
    ndcg_at_k,
    recall_at_k,
    to_section,
)
from kb.errors import DocumentError

# -- nDCG ---------------------------------------------------------------------


def test_ndcg_perfect_ranking_is_one():
    assert ndcg_at_k(["a", "b", "x"], {"a": 1, "b": 1}) == pytest.approx(1.0)


def test_ndcg_single_relevant_doc_at_rank_two():
    assert ndcg_at_k(["x", "a", "y"], {"a": 1}) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["x", "a", "y"], {"a": 1}) == pytest.approx(0.6309298)


def test_ndcg_no_relevant_retrieved_is_zero():
    assert ndcg_at_k(["x", "y"], {"a": 1}) == 0.0
    assert ndcg_at_k([], {"a": 1}) == 0.0


def test_ndcg_graded_relevance_uses_the_grade_as_gain():
    # DCG = 1/log2(2) + 2/log2(3); ideal = 2/log2(2) + 1/log2(3)
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}) == pytest.approx(expected)
    assert expected == pytest.approx(0.8597186)
    assert ndcg_at_k(["a", "b"], {"a": 2, "b": 1}) == pytest.approx(1.0)


def test_ndcg_ideal_comes_from_the_qrels_not_from_the_ranking():
    # Two relevant docs judged, one retrieved at rank 1: DCG = 1, ideal = 1 + 1/log2(3).
    assert ndcg_at_k(["a", "x"], {"a": 1, "b": 1}) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_ndcg_cuts_at_k():
    ranking = [f"x{i}" for i in range(10)] + ["a"]
    assert ndcg_at_k(ranking, {"a": 1}, k=10) == 0.0
    assert ndcg_at_k(ranking, {"a": 1}, k=11) == pytest.approx(1 / math.log2(12))


def test_ndcg_ideal_is_cut_at_k_too():
    # Three relevant, k=2: ideal is 1 + 1/log2(3), reached by any two relevant docs at the top.
    assert ndcg_at_k(["c", "b"], {"a": 1, "b": 1, "c": 1}, k=2) == pytest.approx(1.0)


def test_ndcg_zero_and_negative_grades_give_no_gain():
    assert ndcg_at_k(["z", "n", "a"], {"z": 0, "n": -1, "a": 1}) == pytest.approx(1 / math.log2(4))
    assert ndcg_at_k(["z"], {"z": 0}) == 0.0


def test_ndcg_counts_a_repeated_doc_once():
    assert ndcg_at_k(["a", "a", "b"], {"a": 1, "b": 1}) == pytest.approx(1.0)


def test_metrics_reject_k_below_one():
    with pytest.raises(ValueError):
        ndcg_at_k(["a"], {"a": 1}, k=0)
    with pytest.raises(ValueError):
        recall_at_k(["a"], {"a": 1}, k=0)


# -- recall -------------------------------------------------------------------


def test_recall_fraction_of_relevant_in_top_k():
    relevant = {"a": 1, "b": 1, "c": 2, "z": 0}
    assert recall_at_k(["a", "x", "c"], relevant, k=100) == pytest.approx(2 / 3)
    assert recall_at_k(["a", "x", "c"], relevant, k=2) == pytest.approx(1 / 3)
    assert recall_at_k(["c", "b", "a"], relevant) == pytest.approx(1.0)
    assert recall_at_k(["z", "x"], relevant) == 0.0


def test_recall_with_nothing_relevant_is_zero():
    assert recall_at_k(["a"], {"a": 0}) == 0.0
    assert recall_at_k(["a"], {}) == 0.0


# -- evaluate_run and mean ------------------------------------------------------


def test_evaluate_run_averages_over_judged_queries():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}, "q3": {"d": 1}}
    run = {"q1": ["a"], "q2": ["x", "b"], "extra": ["a"]}  # q3 missing: scores 0
    scores = evaluate_run(run, qrels)
    assert set(scores) == {"ndcg@10", "recall@100"}
    q2_ndcg = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert scores["ndcg@10"] == pytest.approx((1.0 + q2_ndcg + 0.0) / 3)
    assert scores["recall@100"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)


def test_evaluate_run_names_its_cut_offs():
    scores = evaluate_run({"q": ["x", "a"]}, {"q": {"a": 1}}, ndcg_k=1, recall_k=1)
    assert scores == {"ndcg@1": 0.0, "recall@1": 0.0}


def test_evaluate_run_needs_judgments_and_mean_needs_values():
    with pytest.raises(ValueError):
        evaluate_run({"q": ["a"]}, {})
    with pytest.raises(ValueError):
        mean([])
    assert mean([0.25, 0.75, 0.5]) == pytest.approx(0.5)


# -- loaders --------------------------------------------------------------------


def test_load_corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    lines = [
        '{"_id": "d1", "title": "Aspirin", "text": "Aspirin thins blood."}',
        "",
        '{"_id": 42, "text": "No title here."}',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = load_corpus(path)
    assert list(corpus) == ["d1", "42"]
    assert corpus["d1"] == BeirDocument("d1", "Aspirin", "Aspirin thins blood.", 1)
    assert corpus["42"] == BeirDocument("42", "", "No title here.", 3)


def test_load_corpus_reports_malformed_lines_with_their_numbers(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        '{"_id": "d1", "title": "T", "text": "ok"}\n'
        '{"_id": "d2", "title": "T", "text": "broken"\n'
        '{"title": "no id", "text": "x"}\n'
        '{"_id": "d1", "text": "again"}\n'
        '{"_id": "d4", "title": 7}\n'
        "[1, 2]\n",
        encoding="utf-8",
    )
    with pytest.raises(DocumentError) as caught:
        load_corpus(path)
    found = [(p.file, p.line, p.field) for p in caught.value.problems]
    assert found == [
        (str(path), 2, None),
        (str(path), 3, "_id"),
        (str(path), 4, "_id"),
        (str(path), 5, "title"),
        (str(path), 5, "text"),
        (str(path), 6, None),
    ]
    message = str(caught.value)
    assert f"{path}:2: not valid JSON" in message
    assert f"{path}:4: _id: duplicate id 'd1' (first on line 1)" in message
    assert f"{path}:6: expected a JSON object, got list" in message


def test_load_corpus_reports_a_missing_file(tmp_path):
    with pytest.raises(DocumentError) as caught:
        load_corpus(tmp_path / "nope.jsonl")
    assert caught.value.problems[0].file == str(tmp_path / "nope.jsonl")
    assert "cannot read the file" in caught.value.problems[0].message


def test_load_queries(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_text(
        '{"_id": "1", "text": " Aspirin prevents clots. ", "metadata": {}}\n{"_id": "3", "text": "Coffee helps."}\n',
        encoding="utf-8",
    )
    assert load_queries(path) == {"1": "Aspirin prevents clots.", "3": "Coffee helps."}


def test_load_queries_reports_empty_and_missing_text(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_text('{"_id": "1", "text": "fine"}\n{"_id": "2", "text": "  "}\n{"_id": "3"}\n', encoding="utf-8")
    with pytest.raises(DocumentError) as caught:
        load_queries(path)
    assert [(p.line, p.field, p.message) for p in caught.value.problems] == [
        (2, "text", "is empty"),
        (3, "text", "missing"),
    ]


def test_load_qrels_with_header(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n1\td2\t2\n3\td1\t0\n", encoding="utf-8")
    assert load_qrels(path) == {"1": {"d1": 1, "d2": 2}, "3": {"d1": 0}}


def test_load_qrels_without_header_and_with_crlf(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_bytes(b"1\td1\t1\r\n2\td9\t1\r\n")
    assert load_qrels(path) == {"1": {"d1": 1}, "2": {"d9": 1}}


def test_load_qrels_reports_malformed_rows_with_their_numbers(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_text(
        "query-id\tcorpus-id\tscore\n1\td1\t1\n1 d2 1\n2\td3\thigh\n1\td1\t1\n",
        encoding="utf-8",
    )
    with pytest.raises(DocumentError) as caught:
        load_qrels(path)
    problems = caught.value.problems
    assert [p.line for p in problems] == [3, 4, 5]
    assert problems[0].message == "expected 3 tab-separated fields (query-id, corpus-id, score), got 1"
    assert problems[1].message == "score must be a whole number, got 'high'"
    assert problems[2].message == "duplicate judgment of 'd1' for query '1' (line 2)"
    assert str(caught.value).splitlines()[0].startswith(f"{path}:3: ")


def test_load_qrels_bad_header_is_an_error_not_skipped(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_text("qid\tdocid\trel\n1\td1\t1\n", encoding="utf-8")
    with pytest.raises(DocumentError) as caught:
        load_qrels(path)
    assert [(p.line, p.message) for p in caught.value.problems] == [(1, "score must be a whole number, got 'rel'")]


# -- documents as sections --------------------------------------------------------


def test_to_section_maps_a_document_to_one_section_and_back():
    section = to_section(BeirDocument("4983", "Brain MRI", "Diffusion tensor imaging of newborns.", 7))
    assert section.key == "4983#abstract"
    assert doc_id_of(section.key) == "4983"
    assert section.heading == "Brain MRI" and section.heading_path == ("Brain MRI",)
    assert section.embedding_text == "Brain MRI\nDiffusion tensor imaging of newborns."
    assert section.line == 7


def test_doc_id_of_keeps_ids_that_contain_a_hash():
    assert doc_id_of(to_section(BeirDocument("a#b", "", "x", 1)).key) == "a#b"
    with pytest.raises(ValueError):
        doc_id_of("sop-id#overview")
