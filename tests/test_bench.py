"""kb bench: the synthetic library is deterministic and valid, load never leaves the machine, and a short real
run against a real `kb serve` reports every figure with zero errors, and so does one with --ports against two
servers already running, both of which receive requests. Nothing here is timed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from kb.bench_builds import make_encoder
from kb.bench_queries import DEFAULT_QUERIES, MODES
from kb.cli import main
from kb.cli_bench import progress_lines
from kb.config import load_settings
from kb.indexing.chunking import chunk_document
from kb.indexing.embeddings import OnnxEncoder
from kb.library import load_library
from kb.synthetic import SECTIONS_PER_DOCUMENT, generate, sample_texts
from tests.conftest import NO_LIMITS, SHIPPED_SOPS, serve_in_thread

PARAMETERS = {"engine", "sections", "workers", "clients", "duration_s"}


def _files(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synthetic_library_is_deterministic_and_valid(tmp_path):
    sections = 3 * SECTIONS_PER_DOCUMENT + 5
    first = generate(sections, SHIPPED_SOPS, tmp_path / "a")
    second = generate(sections, SHIPPED_SOPS, tmp_path / "b")
    assert first.generated and second.generated
    assert _files(first.content) == _files(second.content)  # same N, same seed: the same bytes
    library = load_library(first.content)
    assert library.problems == []
    assert len(library.documents) == first.documents == 4
    assert sum(len(chunk_document(d)) for d in library.documents.values()) == sections
    assert (first.repo / ".git").is_dir()
    assert generate(sections, SHIPPED_SOPS, tmp_path / "a").generated is False  # reused, not written again
    other = generate(sections + 1, SHIPPED_SOPS, tmp_path / "a")
    assert other.generated and other.sections == sections + 1


def test_sample_texts_are_the_first_sections_of_every_synthetic_library(tmp_path):
    library = load_library(generate(2 * SECTIONS_PER_DOCUMENT, SHIPPED_SOPS, tmp_path / "repo").content)
    built = [s.embedding_text for d in sorted(library.documents) for s in chunk_document(library.documents[d])]
    assert (
        sample_texts(SECTIONS_PER_DOCUMENT + 3, SHIPPED_SOPS)[:SECTIONS_PER_DOCUMENT] == built[:SECTIONS_PER_DOCUMENT]
    )
    assert len(sample_texts(7, SHIPPED_SOPS)) == 7


def test_length_sorted_onnx_gives_the_plain_encoders_vectors_in_the_order_given(library):
    texts = sample_texts(16, SHIPPED_SOPS)[::-1] + ["refund", "charged twice for one order"]
    sorted_encoder = make_encoder("onnx", library["DATA_DIR"], library["EMBEDDING_MODEL"])
    plain = sorted_encoder.inner
    assert isinstance(plain, OnnxEncoder)
    ticks = []
    vectors = sorted_encoder.encode(texts, ticks.append)
    expected = plain.encode(texts)
    assert vectors.shape == expected.shape and sum(ticks) == len(texts)
    assert float((vectors * expected).sum(axis=1).min()) >= 0.9999
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert "onnx fp32" in sorted_encoder.label


def test_progress_lines_give_counts_rate_and_time_left():
    lines = []
    tick = progress_lines("embedding", 10, 0, lines.append, every=0)
    tick(4)
    tick(6)
    assert lines[0] == "embedding: 0/10"
    assert lines[1].startswith("embedding: 4/10 (40%)") and "/s" in lines[1] and "left" in lines[1]
    assert lines[2].startswith("embedding: 10/10 (100%)") and "left" not in lines[2]
    quiet = []
    tick = progress_lines("embedding", 10, 0, quiet.append, every=3600)
    tick(4)
    tick(6)
    assert len(quiet) == 2  # the start and the total: nothing between within the hour


@pytest.mark.parametrize("target", ["10.0.0.1", "example.com", "0.0.0.0"])
def test_a_target_off_this_machine_is_refused(target):
    result = CliRunner().invoke(main, ["bench", "--target", target])
    assert result.exit_code == 2
    assert target in result.output and "never leaves the machine" in result.output


@pytest.mark.parametrize(
    ("ports", "problem"),
    [
        ("8001,8001", "8001 given twice"),
        ("0", "from 1 to 65535"),
        ("70000", "from 1 to 65535"),
        ("8001,abc", "not a list of port numbers"),
        ("", "not a list of port numbers"),
        (",".join(str(8000 + i) for i in range(17)), "give 1 to 16 ports"),
    ],
)
def test_bad_ports_are_refused_naming_the_option(ports, problem):
    result = CliRunner().invoke(main, ["bench", "--ports", ports])
    assert result.exit_code == 2, result.output
    assert "--ports" in result.output and problem in result.output


@pytest.mark.parametrize(
    "args",
    [["--only", "coldstart"], ["--only", "http,memory"], ["--synthetic", "100"], ["--engine", "whoosh"]],
)
def test_ports_run_the_http_measure_alone(args):
    result = CliRunner().invoke(main, ["bench", "--ports", "8001,8002", *args])
    assert result.exit_code == 2, result.output
    assert "--ports" in result.output and args[0] in result.output


def _counted_server(library) -> tuple[int, list[str], object]:
    """The indexed shipped library served on a free loopback port (rate limits off), counting what it answers:
    (port, the paths it answered, the server to shut down)."""
    from kb.web import create_app

    app = create_app({**library, **NO_LIMITS, "TESTING": True})
    answered: list[str] = []

    @app.after_request
    def count(response):
        answered.append(response.status_code)
        return response

    url, server = serve_in_thread(app)
    return int(url.rsplit(":", 1)[1]), answered, server


def test_ports_load_two_running_servers_and_report_every_http_run(runner, library, tmp_path):
    if not DEFAULT_QUERIES.exists():
        pytest.skip(f"BANKING77 not found at {DEFAULT_QUERIES}")
    (first, first_answered, one), (second, second_answered, two) = _counted_server(library), _counted_server(library)
    out = tmp_path / "report.json"
    args = ["bench", "--ports", f"{first},{second}", "--only", "http", "--duration", "0.5", "--clients", "2"]
    try:
        result = runner.invoke(main, [*args, "--scratch", str(tmp_path / "scratch"), "--json", str(out)])
    finally:
        one.shutdown()
        two.shutdown()
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(out.read_text())
    parameters = report["parameters"]
    assert parameters["ports"] == [first, second] and parameters["target"] == "127.0.0.1"
    assert parameters["library"] == "running servers" and parameters["workers"] is None
    assert parameters["engines"] is None and parameters["sections"] is None and parameters["measures"] == ["http"]
    rows = report["results"]
    names = {(r["measure"], r["name"], r["clients"]) for r in rows}
    expected = {("http", f"GET search {mode}, distinct", 2) for mode in MODES}
    expected |= {("http", "GET search hybrid, repeated", 2), ("http", "GET /healthz", 2)}
    expected.add(("http", "search hybrid p50 / healthz p50", 2))
    assert names == expected
    for row in rows:
        assert row["engine"] is None and row["workers"] is None and row["duration_s"] == 0.5, row
        if "requests" in row:
            assert row["requests"] > 0 and row["errors"] == 0, row
            assert None not in (row["p50_ms"], row["p95_ms"], row["p99_ms"], row["requests_per_s"]), row
    assert next(r for r in rows if r["name"] == "search hybrid p50 / healthz p50")["ratio"] > 0
    assert first_answered and second_answered  # client 0 loaded the first server, client 1 the second
    assert set(first_answered) == set(second_answered) == {200}
    sent = sum(r["requests"] for r in rows if "requests" in r)
    assert len(first_answered) + len(second_answered) == sent  # every request reached one of the two
    assert f"running servers on 127.0.0.1 ports {first},{second}" in result.output


def test_a_short_real_run_reports_every_figure_without_errors(runner, tmp_path):
    if not DEFAULT_QUERIES.exists():
        pytest.skip(f"BANKING77 not found at {DEFAULT_QUERIES}")
    out = tmp_path / "report.json"
    args = ["bench", "--only", "inprocess,http,coldstart,memory", "--duration", "1", "--clients", "1"]
    result = runner.invoke(main, [*args, "--scratch", str(tmp_path / "scratch"), "--json", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(out.read_text())
    parameters = report["parameters"]
    engine = load_settings()["KEYWORD_ENGINE"]  # the command's default, as the runner's environment sets it
    assert parameters["library"] == "shipped" and parameters["engines"] == [engine]
    assert parameters["sections"] > 0 and parameters["clients"] == [1] and parameters["workers"] == 2
    assert parameters["vectors"] == "exact" and parameters["build_encoder"].startswith("none")  # the cache had all
    rows = report["results"]
    assert {r["measure"] for r in rows} == {"inprocess", "http", "coldstart", "memory"}
    names = {(r["measure"], r["name"], r["clients"]) for r in rows}
    for mode in ("hybrid", "keyword", "semantic"):
        assert ("inprocess", f"Searcher.search {mode}, distinct", 1) in names
        assert ("http", f"GET search {mode}, distinct", 1) in names
    assert {("http", "GET search hybrid, repeated", 1), ("http", "GET /healthz", 1)} <= names
    for row in rows:
        assert PARAMETERS <= set(row), row
        assert row["engine"] == engine and row["sections"] == parameters["sections"]
        if "requests" in row:
            assert row["requests"] > 0 and row["errors"] == 0, row
            assert None not in (row["p50_ms"], row["p95_ms"], row["p99_ms"], row["requests_per_s"]), row
    ratio = next(r for r in rows if r["name"] == "search hybrid p50 / healthz p50")
    assert ratio["ratio"] > 0
    assert next(r for r in rows if r["name"].startswith("Searcher.warm_up"))["ms"] > 0
    assert next(r for r in rows if r["measure"] == "coldstart")["ms"] > 0
    memory = next(r for r in rows if r["measure"] == "memory")
    for name in ("rss", "anon", "file", "pss"):
        figures = memory[f"workers_{name}_mb"]
        assert len(figures) == 2 and all(f > 0 for f in figures), memory
    assert "GET /healthz" in result.output and "p50 ms" in result.output


def test_a_synthetic_build_embeds_with_the_faster_encoder_and_says_which(runner, tmp_path):
    sections = 2 * SECTIONS_PER_DOCUMENT
    out = tmp_path / "report.json"
    args = ["bench", "--synthetic", str(sections), "--only", "build", "--engine", "tantivy"]
    result = runner.invoke(main, [*args, "--scratch", str(tmp_path / "scratch"), "--json", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(out.read_text())
    rates = [r for r in report["results"] if r["name"].startswith("embedding rate")]
    assert [r["encoder"].split(",")[0] for r in rates] == ["torch", "onnx fp32"]
    assert all(r["sections"] == sections and r["sections_per_s"] > 0 and r["engine"] is None for r in rates)
    assert rates[1]["min_cosine_to_torch"] >= 0.9999  # the same vectors: what is measured does not change
    faster = max(rates, key=lambda r: r["sections_per_s"])["encoder"]
    builds = [r for r in report["results"] if r["measure"] == "build" and r not in rates]
    assert [r["name"].split(",")[0] for r in builds] == [
        "cold full build (empty embedding cache)",
        "warm full build (embedding cache warm)",
        "no-change incremental build",
    ]
    assert all(r["encoder"] == faster and r["sections"] == sections for r in builds)
    assert builds[0]["embedded"] >= sections and builds[1]["embedded"] == builds[2]["embedded"] == 0
    assert report["parameters"]["build_encoder"] == f"{faster} ({builds[0]['embedded']:,} texts)"
    assert "embedding rate" in result.output and "built with" in result.output
