"""kb bench: the synthetic library is deterministic and valid, load never leaves the machine, and a short real
run against a real `kb serve` reports every figure with zero errors. Nothing here is timed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kb.benchmark import DEFAULT_QUERIES
from kb.cli import main
from kb.indexing.chunking import chunk_document
from kb.library import load_library
from kb.synthetic import SECTIONS_PER_DOCUMENT, generate
from tests.conftest import SHIPPED_SOPS

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


@pytest.mark.parametrize("target", ["10.0.0.1", "example.com", "0.0.0.0"])
def test_a_target_off_this_machine_is_refused(target):
    result = CliRunner().invoke(main, ["bench", "--target", target])
    assert result.exit_code == 2
    assert target in result.output and "never leaves the machine" in result.output


def test_a_short_real_run_reports_every_figure_without_errors(runner, tmp_path):
    if not DEFAULT_QUERIES.exists():
        pytest.skip(f"BANKING77 not found at {DEFAULT_QUERIES}")
    out = tmp_path / "report.json"
    args = ["bench", "--only", "inprocess,http", "--duration", "1", "--clients", "1"]
    result = runner.invoke(main, [*args, "--scratch", str(tmp_path / "scratch"), "--json", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(out.read_text())
    parameters = report["parameters"]
    assert parameters["library"] == "shipped" and parameters["engines"] == ["whoosh"]
    assert parameters["sections"] > 0 and parameters["clients"] == [1] and parameters["workers"] == 2
    rows = report["results"]
    assert {r["measure"] for r in rows} == {"inprocess", "http"}
    names = {(r["measure"], r["name"], r["clients"]) for r in rows}
    for mode in ("hybrid", "keyword", "semantic"):
        assert ("inprocess", f"Searcher.search {mode}, distinct", 1) in names
        assert ("http", f"GET search {mode}, distinct", 1) in names
    assert {("http", "GET search hybrid, repeated", 1), ("http", "GET /healthz", 1)} <= names
    for row in rows:
        assert PARAMETERS <= set(row), row
        assert row["engine"] == "whoosh" and row["sections"] == parameters["sections"]
        if "requests" in row:
            assert row["requests"] > 0 and row["errors"] == 0, row
            assert None not in (row["p50_ms"], row["p95_ms"], row["p99_ms"], row["requests_per_s"]), row
    ratio = next(r for r in rows if r["name"] == "search hybrid p50 / healthz p50")
    assert ratio["ratio"] > 0
    assert "GET /healthz" in result.output and "p50 ms" in result.output
