import pytest

from kb.documents import parse_document
from kb.indexing.builder import build_index
from kb.library import load_library
from kb.search import Searcher
from kb.values import parse_values, resolve
from tests.conftest import TINY_DOCS, VALUES, commit_all, init_repo, make_sop

VALUES_MAP, _ = parse_values(VALUES)


def test_values_parse_and_format_large_numbers():
    assert VALUES_MAP["refund_window_days"].value == "30"
    assert VALUES_MAP["tier1_limit_usd"].value == "1,000"
    assert VALUES_MAP["tier1_limit_usd"].line == 5


def test_a_value_may_name_its_unit_and_key_words():
    values, problems = parse_values(
        "values:\n  qa_pass_score:\n    value: 85\n    description: Pass mark.\n    unit: percent\n"
        "    keywords: [pass mark]\n"
    )
    assert problems == []
    assert values["qa_pass_score"].unit == "percent" and values["qa_pass_score"].keywords == ("pass mark",)


def test_resolve_substitutes_every_placeholder():
    text, problems = resolve("Within {{refund_window_days}} days, up to {{ tier1_limit_usd }} USD.", VALUES_MAP, "f.md")
    assert problems == [] and text == "Within 30 days, up to 1,000 USD."


@pytest.mark.parametrize(
    "text, message",
    [
        ("a\n{{refund_days}}", "f.md:11: unknown placeholder {{refund_days}} (not in values.yaml)"),
        ("a\n{{ Refund Days }}", "f.md:11: malformed placeholder '{{ Refund Days }}': use {{name}}"),
        ("a\n{{}}", "f.md:11: malformed placeholder '{{}}': use {{name}}"),
    ],
)
def test_unknown_or_malformed_placeholders_are_problems_with_their_line(text, message):
    resolved, problems = resolve(text, VALUES_MAP, "f.md", first_line=10)
    assert [str(p) for p in problems] == [message]
    assert resolved == text  # reported, never substituted by an empty string


@pytest.mark.parametrize(
    "text, message",
    [
        ("values: [\n", "malformed YAML"),
        ("other: 1\n", "must be a mapping with a 'values' mapping"),
        ("values:\n  Bad-Name:\n    value: 1\n    description: d\n", "must be lowercase snake_case"),
        ("values:\n  a:\n    value:\n    description: d\n", "'value' must be non-empty"),
        ("values:\n  a:\n    value: 1\n", "'description' is required"),
        ("values:\n  a:\n    value: '{{b}}'\n    description: d\n", "cannot contain a placeholder"),
        ("values:\n  a:\n    value: 1\n    description: d\n    unit: weeks\n", "'unit' must be one of business days"),
        ("values:\n  a:\n    value: 1\n    description: d\n    keywords: pass\n", "'keywords' must be a list of words"),
        ("values:\n  a:\n    value: 1\n    description: d\n    colour: red\n", "unknown field 'colour'"),
    ],
)
def test_bad_values_files_report_the_problem(text, message):
    _, problems = parse_values(text)
    assert problems and message in problems[0].message


def test_document_with_an_unknown_placeholder_is_not_loaded():
    doc, problems = parse_document(make_sop("a", "T", "## A\nWithin {{nope}} days.\n"), "x.md", VALUES_MAP)
    assert doc is None and "unknown placeholder {{nope}}" in problems[0].message and problems[0].line == 14


def test_document_body_is_resolved_and_the_stored_text_is_not():
    doc, problems = parse_document(
        make_sop("a", "T", "## A\nWithin {{refund_window_days}} days.\n"), "x.md", VALUES_MAP
    )
    assert problems == []
    assert "Within 30 days." in doc.body and "{{refund_window_days}}" in doc.text


def test_malformed_values_file_fails_the_documents_that_use_it(tmp_path):
    files = {**TINY_DOCS, "all/uses.md": make_sop("pay-uses", "U", "## A\n{{refund_window_days}} days.\n")}
    sops = init_repo(tmp_path, files, values="values:\n  refund_window_days: [\n")
    library = load_library(sops)
    assert "all/uses.md" in library.skipped and len(library.documents) == 3
    assert any(p.file == "values.yaml" and "malformed YAML" in p.message for p in library.problems)


def test_changing_a_value_changes_every_document_that_uses_it(tmp_path, data_dir, settings_for):
    files = {
        "all/pay-a.md": make_sop("pay-a", "Refund rules A", "## Window\nRefunds within {{refund_window_days}} days.\n"),
        "all/pay-b.md": make_sop("pay-b", "Refund rules B", "## Window\nAsk within {{refund_window_days}} days.\n"),
        "all/pay-c.md": make_sop("pay-c", "Other", "## Window\nNo shared figure here.\n"),
    }
    sops = init_repo(tmp_path, files, values=VALUES)
    build_index(sops, data_dir)
    searcher = Searcher(settings_for(sops, data_dir))
    assert "within 30 days" in searcher.document("pay-a")["html"]
    (sops / "values.yaml").write_text(VALUES.replace("value: 30", "value: 45"))
    commit_all(tmp_path, "longer refund window")
    report = build_index(sops, data_dir)
    assert report.changed == ["pay-a", "pay-b"]
    assert "within 45 days" in searcher.document("pay-a")["html"]
    assert "within 45 days" in searcher.document("pay-b")["html"]
    assert "{{refund_window_days}}" in searcher.document("pay-b")["markdown"]  # the file as stored
    hits = searcher.search("45", 5, "keyword").hits
    assert {h.sop_id for h in hits} == {"pay-a", "pay-b"}
