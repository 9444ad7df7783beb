from kb.library import load_library
from kb.taxonomy import parse_taxonomy
from tests.conftest import CATEGORIES, TINY_DOCS, init_repo, make_sop


def test_library_loads_valid_documents_and_the_taxonomy(tmp_path):
    library = load_library(init_repo(tmp_path, TINY_DOCS))
    assert sorted(library.documents) == ["pay-card-declined", "pay-duplicate-charge", "payout-delayed"]
    assert library.problems == [] and library.skipped == []
    assert library.categories["payments/duplicate-charge"].parent == "payments"


def test_library_skips_bad_files_and_keeps_the_rest(tmp_path):
    files = dict(TINY_DOCS)
    files["all/z-copy.md"] = TINY_DOCS["all/pay-duplicate-charge.md"]
    files["all/unknown-category.md"] = make_sop("pay-z", "Z", "## A\nb\n", categories="[payments/nope]")
    files["all/no-headings.md"] = make_sop("pay-y", "Y", "plain text\n")
    sops = init_repo(tmp_path, files)
    (sops / "all" / "latin1.md").write_bytes(make_sop("pay-w", "W", "## A\ncaf\xe9\n").encode("latin-1"))
    library = load_library(sops)
    assert sorted(library.documents) == ["pay-card-declined", "pay-duplicate-charge", "payout-delayed"]
    assert sorted(library.skipped) == [
        "all/latin1.md",
        "all/no-headings.md",
        "all/unknown-category.md",
        "all/z-copy.md",
    ]
    messages = {str(p) for p in library.problems}
    assert "all/z-copy.md:2: id: duplicate id 'pay-duplicate-charge': also in all/pay-duplicate-charge.md" in messages
    assert (
        "all/unknown-category.md:6: categories: unknown category 'payments/nope' (not in categories.yaml)" in messages
    )
    assert any(m.startswith("all/latin1.md:14: not valid UTF-8") for m in messages)
    assert any(m.startswith("all/no-headings.md:13:") for m in messages)


def test_taxonomy_parses_two_levels():
    categories, problems = parse_taxonomy(CATEGORIES)
    assert problems == []
    assert categories["payouts/delayed"].examples == ("where is my payout", "payout late", "no money yet")
    assert categories["payouts"].parent is None


def test_taxonomy_reports_bad_entries_with_lines():
    text = "categories:\n  - id: Pay\n    name: P\n    description: d\n  - id: ok\n    name: O\n"
    categories, problems = parse_taxonomy(text)
    assert {(p.line, p.field) for p in problems} == {(2, "id"), (5, "description")}


def test_taxonomy_warns_when_a_category_has_too_few_examples():
    text = "categories:\n  - id: a\n    name: A\n    description: d\n    children:\n      - id: a/b\n        name: B\n"
    text += "        description: d\n        examples: [one]\n"
    _, problems = parse_taxonomy(text)
    assert [(p.line, p.severity, p.message) for p in problems] == [
        (6, "warning", "has 1 example phrasings; give 3 to 5")
    ]


def test_taxonomy_malformed_yaml():
    categories, problems = parse_taxonomy("categories: [\n")
    assert categories == {} and "malformed YAML" in problems[0].message
