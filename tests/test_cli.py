import json

from kb.cli import main


def test_search_prints_ranked_sections(runner):
    result = runner.invoke(main, ["search", "customer charged twice", "-k", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("1. Duplicate charges [pay-duplicate-charge] >")
    assert "/sops/pay-duplicate-charge#" in result.output


def test_search_json_is_the_api_shape(runner):
    result = runner.invoke(main, ["search", "refund", "--json", "--mode", "keyword", "--type", "policy"])
    body = json.loads(result.output)
    assert body["mode"] == "keyword" and {r["type"] for r in body["results"]} == {"policy"}


def test_search_rejects_an_empty_query_cleanly(runner):
    result = runner.invoke(main, ["search", "  "])
    assert result.exit_code == 1 and "Error: query: must be a non-empty string" in result.output


def test_eval_json_is_exactly_one_object_with_every_mode(runner, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        json.dumps({"query": "customer charged twice", "relevant": ["pay-duplicate-charge"]})
        + "\n"
        + json.dumps({"query": "creator payout has not arrived", "relevant": ["payout-delayed"]})
        + "\n"
        + json.dumps({"query": "something", "relevant": ["not-in-library"]})
        + "\n"
    )
    result = runner.invoke(main, ["eval", str(queries), "--json"])
    assert result.exit_code == 0
    body = json.loads(result.stdout)
    assert body["n"] == 2 and set(body) == {"n", "modes"}
    assert set(body["modes"]) == {"hybrid", "keyword", "semantic"}
    for metrics in body["modes"].values():
        assert set(metrics) == {"hit@1", "hit@3", "hit@5", "mrr"}
        assert 0 <= metrics["mrr"] <= metrics["hit@5"] <= 1
    assert body["modes"]["hybrid"]["hit@5"] == 1.0
    assert "skipped 1 of 3 queries" in result.stderr


def test_eval_table(runner, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"query": "customer charged twice", "relevant": ["pay-duplicate-charge"]}) + "\n")
    result = runner.invoke(main, ["eval", str(queries)])
    assert "hybrid" in result.stdout and "hit@1" in result.stdout


def test_eval_reports_every_bad_line(runner, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        '{"query": "ok", "relevant": ["a"]}\nnot json\n{"query": "", "relevant": ["a"]}\n'
        '{"query": "x", "relevant": []}\n'
    )
    result = runner.invoke(main, ["eval", str(queries)])
    assert result.exit_code == 1
    assert "q.jsonl:2: not valid JSON" in result.output
    assert "q.jsonl:3: query:" in result.output and "q.jsonl:4: relevant:" in result.output


def test_unknown_setting_fails_at_start(runner, monkeypatch):
    monkeypatch.setenv("KB_DATADIR", "/tmp/x")
    result = runner.invoke(main, ["search", "refund"])
    assert result.exit_code == 1 and "unknown setting KB_DATADIR" in result.output


def test_eval_explain_shows_each_ranking_and_the_fused_result(runner, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"query": "cx charged twice", "relevant": ["pay-duplicate-charge"]}) + "\n")
    result = runner.invoke(main, ["eval", str(queries), "--explain", "cx charged twice", "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["searched"] == "customer charged twice" and ["cx", 1.0] in report["expansions"]
    assert set(report["rankings"]) == {"keyword", "semantic", "taxonomy"}
    assert all(len(rows) == 3 for rows in report["rankings"].values())
    top = report["hybrid"][0]
    assert top["sop_id"] == "pay-duplicate-charge" and report["relevant"] == ["pay-duplicate-charge"]
    assert set(top["ranks"]) == {"keyword", "semantic", "taxonomy"} and top["ranks"]["keyword"] is not None
    table = runner.invoke(main, ["eval", str(queries), "--explain", "cx charged twice"])
    assert "* 1. pay-duplicate-charge" in table.stdout and "hybrid (fused" in table.stdout


def test_eval_needs_a_file_or_explain(runner):
    result = runner.invoke(main, ["eval"])
    assert result.exit_code == 2 and "--explain QUERY" in result.output
