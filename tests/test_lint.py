import datetime as dt
import json

import pytest

from kb.cli import main
from kb.lint import lint
from tests.conftest import SHIPPED_SOPS, TINY_DOCS, VALUES, init_repo, make_sop

TODAY = dt.date(2026, 12, 3)
GOOD_SOP = """
## Purpose
Why.

## Procedure
1. Do it within {{refund_window_days}} days.

## Customer macros
### Macro: Done
> Done.

## Escalation
Tier 2.
"""


PADDING = "\n## Notes\n" + "detail " * 400  # long enough to be a real SOP


def lint_files(tmp_path, files, today=TODAY, values=VALUES):
    sops = init_repo(tmp_path, {**TINY_DOCS, **files}, values=values)
    report = lint(sops, [sops / name for name in files], today=today)
    return [str(p) for p in report.problems], report


def test_a_clean_sop_has_no_problems(tmp_path):
    messages, report = lint_files(tmp_path, {"all/pay-good.md": make_sop("pay-good", "Good", GOOD_SOP + PADDING)})
    assert messages == [] and report.documents == 1 and report.errors == 0


@pytest.mark.parametrize(
    "files, expected",
    [
        (
            {"all/pay-x.md": make_sop("pay-x", "X", GOOD_SOP, type="howto")},
            "all/pay-x.md:4: type: 'howto' is not one of sop, policy",
        ),
        (
            {"all/pay-x.md": make_sop("pay-x", "X", GOOD_SOP, categories="[payments/nope]")},
            "all/pay-x.md:6: categories: unknown category 'payments/nope' (not in categories.yaml)",
        ),
        (
            {"all/zz.md": make_sop("pay-duplicate-charge", "X", GOOD_SOP)},
            "all/zz.md:2: id: duplicate id 'pay-duplicate-charge': also in all/pay-duplicate-charge.md",
        ),
        (
            {"all/pay-x.md": make_sop("pay-y", "X", GOOD_SOP)},
            "all/pay-x.md:2: id: id 'pay-y' does not match the file name pay-x.md",
        ),
        (
            {"all/pay-x.md": make_sop("pay-x", "X", GOOD_SOP + "\nSee [other](/sops/pay-nowhere).\n")},
            "all/pay-x.md:26: link to unknown SOP 'pay-nowhere'",
        ),
        (
            {"all/pay-x.md": make_sop("pay-x", "X", GOOD_SOP + "\nSee\n[d](/sops/pay-duplicate-charge#nope).\n")},
            "all/pay-x.md:27: link to missing section #nope of pay-duplicate-charge",
        ),
        (
            {"all/pay-x.md": make_sop("pay-x", "X", GOOD_SOP + "\n{{refund_days}}\n")},
            "all/pay-x.md:26: unknown placeholder {{refund_days}} (not in values.yaml)",
        ),
        (
            {"all/pay-x.md": make_sop("pay-x", "X", GOOD_SOP + "\nCard 4111 1111 1111 1111 here.\n")},
            "all/pay-x.md:26: contains a card number (ending 1111): remove it, PCI DSS",
        ),
        (
            {"all/pay-x.md": make_sop("pay-x", "X", GOOD_SOP.replace("## Escalation", "## Next steps"))},
            "all/pay-x.md:13: SOP has no escalation section (an H2 heading naming it)",
        ),
        (
            {
                "all/pay-x.md": make_sop(
                    "pay-x",
                    "X",
                    GOOD_SOP.replace("## Customer macros", "## Messages").replace("### Macro: Done", "### Done"),
                )
            },
            "all/pay-x.md:13: SOP has no customer macro section (an H2 heading naming it)",
        ),
    ],
)
def test_each_rule_reports_file_line_and_message(tmp_path, files, expected):
    messages, report = lint_files(tmp_path, files)
    assert expected in messages and report.errors >= 1


def test_links_to_existing_sections_pass(tmp_path):
    body = GOOD_SOP + "\nSee [p](/sops/pay-duplicate-charge#purpose) and [o](/sops/pay-card-declined).\n" + PADDING
    messages, _ = lint_files(tmp_path, {"all/pay-x.md": make_sop("pay-x", "X", body)})
    assert messages == []


def test_policies_do_not_need_sop_sections(tmp_path):
    messages, _ = lint_files(
        tmp_path, {"all/policy-x.md": make_sop("policy-x", "X", "## Policy\nRules.\n" + PADDING, type="policy")}
    )
    assert messages == []


def test_a_document_outside_its_length_range_is_a_warning(tmp_path):
    messages, report = lint_files(tmp_path, {"all/pay-x.md": make_sop("pay-x", "X", GOOD_SOP + "word " * 1200)})
    assert any("sop has 1,216 words; sops run 350 to 1,200" in m for m in messages)
    assert report.errors == 0 and report.words == {"sop": {"min": 1216, "median": 1216, "max": 1216}}


def test_a_figure_written_out_next_to_a_value_s_key_words_is_a_warning(tmp_path):
    body = GOOD_SOP + "\nThe refund window is 30 days; Visa gives 30 days for a response.\n" + PADDING
    messages, report = lint_files(tmp_path, {"all/pay-x.md": make_sop("pay-x", "X", body)})
    assert messages == [
        "all/pay-x.md:26: writes out '30 days', which the shared value {{refund_window_days}} holds: "
        "use the placeholder (or a value of its own if the figure differs on purpose)"
    ]
    assert report.errors == 0 and report.warnings == 1


SIGNALS = VALUES + "  do_not_say_risk_signals:\n    value: usual device, IP address\n    description: d\n"


def test_a_macro_naming_a_risk_signal_is_an_error(tmp_path):
    body = GOOD_SOP.replace("> Done.", "> Done.\n> They came from your usual devices.") + PADDING
    body += "\nAgents note the IP address in the case.\n"  # outside a macro: allowed
    messages, report = lint_files(tmp_path, {"all/pay-x.md": make_sop("pay-x", "X", body)}, values=SIGNALS)
    assert messages == [
        "all/pay-x.md:22: macro 'Macro: Done' names the risk signal 'usual device': pay-risk-block forbids telling "
        "a customer which signal our checks used; give the outcome without it"
    ]
    assert report.errors == 1


def test_the_shipped_library_lints_clean():
    report = lint(SHIPPED_SOPS, today=TODAY)
    assert [str(p) for p in report.problems] == []


def test_past_review_date_and_wrong_folder_are_warnings(tmp_path):
    doc = make_sop("pay-x", "X", GOOD_SOP + "word " * 400, review_by="2026-01-31", business_line="e-commerce")
    messages, report = lint_files(tmp_path, {"all/pay-x.md": doc})
    assert "all/pay-x.md:10: review_by: review date 2026-01-31 has passed" in messages
    assert "all/pay-x.md:5: business_line: file is in all/ but business_line is 'e-commerce'" in messages
    assert report.errors == 0 and report.warnings == 2


def test_whole_library_lint_warns_about_unserved_categories_and_unused_values(tmp_path):
    sops = init_repo(tmp_path, {"all/pay-good.md": make_sop("pay-good", "Good", GOOD_SOP + PADDING)}, values=VALUES)
    report = lint(sops, today=TODAY)
    messages = [str(p) for p in report.problems]
    assert "values.yaml:5: value 'tier1_limit_usd' is used by no document" in messages
    assert "categories.yaml:1: category 'payouts/delayed' is served by no document" in messages
    assert report.documents == 1 and report.errors == 0 and report.warnings == 3


def test_kb_lint_command_prints_problems_and_exits_1(tmp_path, monkeypatch):
    sops = init_repo(tmp_path, {**TINY_DOCS, "all/pay-x.md": make_sop("pay-y", "X", GOOD_SOP + PADDING)}, values=VALUES)
    monkeypatch.setenv("KB_CONTENT_DIR", str(sops))
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["lint", str(sops / "all" / "pay-x.md")])
    assert result.exit_code == 1
    assert result.stdout == "all/pay-x.md:2: id: id 'pay-y' does not match the file name pay-x.md\n"
    assert "1 documents: 1 errors, 0 warnings" in result.stderr
    as_json = CliRunner().invoke(main, ["lint", "--json"])
    body = json.loads(as_json.stdout)
    assert body["documents"] == 4 and body["errors"] >= 1
    assert {"file", "line", "field", "message", "severity"} == set(body["problems"][0])


def test_kb_lint_refuses_paths_outside_the_library(tmp_path, monkeypatch):
    sops = init_repo(tmp_path / "lib", TINY_DOCS)
    monkeypatch.setenv("KB_CONTENT_DIR", str(sops))
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["lint", str(tmp_path)])
    assert result.exit_code == 1 and "is not inside the content folder" in result.output


def test_malformed_categories_file_fails_lint_with_its_line(tmp_path):
    sops = init_repo(tmp_path, TINY_DOCS, categories="categories:\n  - id: payments\n    name: [x\n")
    report = lint(sops, today=TODAY)
    assert report.errors >= 1
    assert any(p.file == "categories.yaml" and p.line == 4 and "malformed YAML" in p.message for p in report.problems)


BAD_FILES = {
    "all/pay-month.md": make_sop("pay-month", "M", GOOD_SOP, effective="2026-13-45"),
    "all/pay-dup.md": make_sop("pay-dup", "D", GOOD_SOP, owner="a\nowner: b"),
    "all/pay-bomb.md": make_sop("pay-bomb", "B", GOOD_SOP, lol="&a [x, x]", laughs="[*a, *a]"),
}
BAD_LINES = [
    "all/pay-bomb.md:12: lol: malformed YAML front matter: anchors (&a) are not allowed",
    "all/pay-dup.md:8: owner: malformed YAML front matter: duplicate key 'owner'",
    "all/pay-month.md:9: effective: malformed YAML front matter: not a valid date (month must be in 1..12)",
]


@pytest.mark.parametrize("command", ["lint", "index"])
def test_kb_lint_and_index_report_bad_files_and_go_on(tmp_path, monkeypatch, data_dir, command):
    sops = init_repo(tmp_path / "lib", {**TINY_DOCS, **BAD_FILES}, values=VALUES)
    monkeypatch.setenv("KB_CONTENT_DIR", str(sops))
    monkeypatch.setenv("KB_DATA_DIR", str(data_dir))
    from click.testing import CliRunner

    result = CliRunner().invoke(main, [command])
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))
    assert "Traceback" not in result.output
    printed = result.stdout if command == "lint" else result.stderr
    for line in BAD_LINES:
        assert line in printed.splitlines(), printed
    if command == "index":
        assert "3 documents" in result.stdout and "skipped 3 document(s)" in result.stderr
        assert (data_dir / "index" / "manifest.json").exists()
