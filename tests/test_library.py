import os

import pytest

from kb.library import MAX_DOCUMENT_BYTES, load_library
from kb.taxonomy import parse_taxonomy
from tests.conftest import CATEGORIES, TINY_DOCS, commit_all, full_sop, init_repo, make_sop


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
    assert categories["payouts/delayed"].examples[:3] == ("where is my payout", "payout late", "no money yet")
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
        (6, "warning", "has 1 example phrasings; give 8 to 40 in customers' words")
    ]


def test_taxonomy_malformed_yaml():
    categories, problems = parse_taxonomy("categories: [\n")
    assert categories == {} and "malformed YAML" in problems[0].message


def _directory(path):
    path.mkdir()


def _symlink_loop(path):
    path.symlink_to(path.name)


def _symlink_outside(path):
    path.symlink_to("/etc/hostname")


def _pipe(path):
    os.mkfifo(path)


def _too_large(path):
    with open(path, "wb") as handle:
        handle.truncate(MAX_DOCUMENT_BYTES + 1)


def _unreadable(path):
    path.write_text(make_sop("pay-w", "W", "## A\nb\n"))
    path.chmod(0)


@pytest.mark.parametrize(
    "make, message",
    [
        (_directory, "all/bad.md:1: is not a regular file (a folder, device or pipe): cannot be read"),
        (_symlink_loop, "all/bad.md:1: is a broken symbolic link or a link loop: cannot be read"),
        (_symlink_outside, "all/bad.md:1: is a symbolic link to a file outside the content folder: not read"),
        (_pipe, "all/bad.md:1: is not a regular file (a folder, device or pipe): cannot be read"),
        (_too_large, "all/bad.md:1: is 800,001 bytes; the largest file read is 800,000"),
        (
            lambda p: p.write_bytes(make_sop("pay-w", "W", "## A\nb\n").encode() + b"\xff\n"),
            "all/bad.md:15: not valid UTF-8 (byte 0xff at offset",
        ),
        (
            lambda p: p.write_bytes(make_sop("pay-w", "W", "## A\nb\x00\n").encode()),
            "all/bad.md:14: contains a NUL character (U+0000): not allowed in a document",
        ),
        pytest.param(
            _unreadable,
            "all/bad.md:1: cannot be read: Permission denied",
            marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file"),
        ),
    ],
)
def test_a_file_that_cannot_be_read_is_a_problem_and_the_rest_load(tmp_path, make, message):
    sops = init_repo(tmp_path, TINY_DOCS)
    make(sops / "all" / "bad.md")
    library = load_library(sops)
    assert sorted(library.documents) == ["pay-card-declined", "pay-duplicate-charge", "payout-delayed"]
    assert library.skipped == ["all/bad.md"]
    assert [str(p)[: len(message)] for p in library.problems] == [message]


@pytest.mark.parametrize(
    "file, text, expected",
    [
        (
            "categories.yaml",
            "categories:\n  - id: a\n    id: b\n",
            "categories.yaml:3: categories.id: malformed YAML: duplicate",
        ),
        ("categories.yaml", "categories:\n  - &p {id: a, name: A, description: d}\n  - *p\n", "categories.yaml:2:"),
        (
            "values.yaml",
            "values:\n  a:\n    value: 1\n    value: 2\n    description: d\n",
            "values.yaml:4: values.a.value",
        ),
        ("glossary.yaml", "abbreviations:\n  cb: chargeback\n  cb: callback\n", "glossary.yaml:3: abbreviations.cb"),
        ("values.yaml", "values:\n  a:\n    value: 2026-13-45\n    description: d\n", "values.yaml:3: values.a.value"),
    ],
)
def test_a_bad_library_yaml_file_is_a_problem_with_line_and_field(tmp_path, file, text, expected):
    sops = init_repo(tmp_path, TINY_DOCS)
    (sops / file).write_text(text)
    library = load_library(sops)
    assert any(str(p).startswith(expected) for p in library.errors), [str(p) for p in library.problems]
    assert len(library.documents) == 3  # the documents still load


def test_a_bad_file_committed_to_the_content_repository_leaves_drafts_of_other_sops_working(authoring):
    bad = make_sop("pay-bad", "Bad", "## A\nb\n", effective="2026-13-45", owner="x\nowner: y")
    (authoring.repo / "sops" / "all" / "pay-bad.md").write_text(bad)
    commit_all(authoring.repo, "outside: a bad file")
    text = full_sop("pay-duplicate-charge", "Duplicate charges", "Two charges for one purchase, refunded.")
    body = {
        "sop_id": "pay-duplicate-charge",
        "markdown": text,
        "base_revision": authoring.revision("pay-duplicate-charge"),
        "summary": "Clearer purpose",
    }
    response = authoring.call("POST", "/api/v1/drafts", "ann", json=body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["sop_id"] == "pay-duplicate-charge"
    assert [r["target"] for r in authoring.audit(action="draft_created")][-1:] == ["sop:pay-duplicate-charge"]
    library = load_library(authoring.repo / "sops")
    assert "all/pay-bad.md" in library.skipped and "pay-duplicate-charge" in library.documents
