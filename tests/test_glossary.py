import pytest

from kb.glossary import Glossary, load_glossary, parse_glossary
from kb.library import load_library
from kb.lint import lint

GOOD = """\
abbreviations:
  CB: chargeback
  cx: customer
synonyms:
  - [payout, withdrawal, cash out]
  - [Refund, money back]
"""


def test_parse_glossary_lowercases_terms_and_keeps_groups():
    glossary, problems = parse_glossary(GOOD)
    assert problems == []
    assert glossary.abbreviations == {"cb": "chargeback", "cx": "customer"}
    assert glossary.synonyms == (("payout", "withdrawal", "cash out"), ("refund", "money back"))
    assert Glossary.from_dict(glossary.to_dict()) == glossary


@pytest.mark.parametrize(
    "text, line, field, message",
    [
        ("abbreviations:\n  cb: [a, b]\n", 2, "abbreviations.cb", "must be non-empty text"),
        ("abbreviations:\n  two words: x\n", 2, "abbreviations.two words", "one word"),
        ("synonyms:\n  - [alone]\n", 2, "synonyms[1]", "two or more terms"),
        ("synonyms:\n  - [ok, fine]\n  - [a, 'b{{c}}']\n", 3, "synonyms[2]", "may hold only"),
        ("synonyms: nope\n", 1, "synonyms", "must be a list"),
        ("colours: {}\n", 1, "colours", "unknown field"),
        ("synonyms: [a\n", 2, "synonyms", "malformed YAML"),
    ],
)
def test_parse_glossary_reports_each_problem_with_line_and_field(text, line, field, message):
    _, problems = parse_glossary(text)
    assert problems, text
    assert (problems[0].line, problems[0].field) == (line, field)
    assert message in problems[0].message


def test_missing_glossary_is_empty(tmp_path):
    assert load_glossary(tmp_path) == (Glossary(), [])


def test_glossary_problems_fail_lint(tmp_path):
    (tmp_path / "glossary.yaml").write_text("synonyms:\n  - [alone]\n")
    assert any(p.file == "glossary.yaml" for p in load_library(tmp_path).errors)
    report = lint(tmp_path)
    assert report.errors == 1 and "glossary.yaml:2" in str(report.problems[0])


def test_shipped_glossary_is_valid():
    from kb.config import PROJECT_ROOT

    glossary, problems = load_glossary(PROJECT_ROOT / "sops")
    assert problems == [] and glossary.abbreviations["cb"] == "chargeback"
