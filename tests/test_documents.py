import pytest

from kb.documents import parse_document, split_front_matter
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
