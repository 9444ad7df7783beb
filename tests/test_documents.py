import pytest

from kb.documents import MAX_DOCUMENT_CHARS, MAX_FRONT_MATTER_BYTES, parse_document, split_front_matter
from tests.conftest import make_sop

BODY = "## Purpose\nText.\n"


def test_parse_document_reads_every_field():
    doc, problems = parse_document(make_sop("pay-x", "Title", BODY, tags="[a, b]"), "all/pay-x.md")
    assert problems == []
    assert doc.id == "pay-x" and doc.title == "Title" and doc.type == "sop"
    assert doc.categories == ("payments/duplicate-charge",)
    assert doc.tags == ("a", "b")
    assert doc.effective.isoformat() == "2026-09-01"
    assert doc.body == BODY
    assert doc.body_line == 13
    assert doc.line_of("owner") == 7


def test_parse_document_reports_every_problem_with_line_and_field():
    text = make_sop("Bad_Id", "T", BODY, type="howto", effective="soon", colour="red", owner=None)
    doc, problems = parse_document(text, "x.md")
    assert doc is None
    found = {(p.field, p.line) for p in problems}
    assert ("id", 2) in found
    assert ("type", 4) in found
    assert ("effective", 8) in found
    assert ("colour", 11) in found
    assert ("owner", 1) in found  # missing: reported at the top
    assert all(p.file == "x.md" for p in problems)


def test_parse_document_malformed_yaml_names_the_line():
    text = "---\nid: a\ntitle: [unclosed\nowner: x\n---\n## A\nb\n"
    doc, problems = parse_document(text, "x.md")
    assert doc is None
    assert len(problems) == 1 and problems[0].line in (3, 4) and "malformed YAML" in problems[0].message


@pytest.mark.parametrize("text", ["no front matter\n## A\n", "---\nid: a\n## A\n"])
def test_parse_document_without_front_matter(text):
    doc, problems = parse_document(text, "x.md")
    assert doc is None and "front matter" in problems[0].message


def test_parse_document_without_headings_is_an_error():
    doc, problems = parse_document(make_sop("a", "T", "Just text, no headings.\n"), "x.md")
    assert doc is None
    assert problems[0].line == 13 and "no H2 or H3 headings" in problems[0].message


def test_parse_document_front_matter_must_be_a_mapping():
    doc, problems = parse_document("---\n- a\n- b\n---\n## A\nb\n", "x.md")
    assert doc is None and "mapping" in problems[0].message


def test_split_front_matter_returns_body_line():
    assert split_front_matter("---\na: 1\n---\nbody\n") == ("a: 1\n", "body\n", 4)


@pytest.mark.parametrize(
    "fields, shown",
    [
        ({"type": "'" + "x" * 500 + "'"}, "'" + "x" * 60 + "…' is not one of sop, policy"),
        ({"status": "4111 1111 1111 1111"}, "'[card ending 1111]' is not one of published, retired"),
        ({"effective": "[1, 2]"}, "a list is not a date (YYYY-MM-DD)"),
        ({"business_line": "0x7fffffffffffffff"}, "9223372036854775807 is not one of"),
    ],
)
def test_values_echoed_in_messages_are_short_and_masked(fields, shown):
    doc, problems = parse_document(make_sop("pay-x", "T", BODY, **fields), "x.md")
    assert doc is None and any(shown in p.message for p in problems), [str(p) for p in problems]


@pytest.mark.parametrize(
    "size, refused",
    [(MAX_FRONT_MATTER_BYTES - 400, False), (MAX_FRONT_MATTER_BYTES + 10, True)],
)
def test_front_matter_is_capped_before_yaml_is_parsed(size, refused):
    text = make_sop("pay-x", "T", BODY, tags="[a]\n# " + "x" * size)
    doc, problems = parse_document(text, "x.md")
    assert (doc is None) is refused
    if refused:
        assert [(p.line, p.field) for p in problems] == [(12, "tags")]
        assert "the limit is 16,384 (16 KB)" in problems[0].message


def test_a_document_at_the_length_limit_parses_and_one_over_is_refused():
    text = make_sop("pay-x", "T", BODY)
    at_limit = text + "x" * (MAX_DOCUMENT_CHARS - len(text))
    assert parse_document(at_limit, "x.md")[0] is not None
    doc, problems = parse_document(at_limit + "x", "x.md")
    assert doc is None and [p.line for p in problems] == [15]
    assert problems[0].message == "document is longer than 200,000 characters (200,001)"
