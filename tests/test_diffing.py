"""Word-level and unified diffs of two texts."""

from __future__ import annotations

import pytest

from kb.diffing import diff_html, diff_stats, line_diff, tokens, word_diff


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("refund now", "refund now", [("equal", "refund now")]),
        ("refund now", "refund it now", [("equal", "refund "), ("insert", "it "), ("equal", "now")]),
        ("refund it now", "refund now", [("equal", "refund "), ("delete", "it "), ("equal", "now")]),
        ("wait 30 days.", "wait 45 days.", [("equal", "wait "), ("delete", "30"), ("insert", "45"), ("equal", " days.")]),
        ("a quick brown fox", "a slow red fox", [("equal", "a "), ("delete", "quick brown"), ("insert", "slow red"), ("equal", " fox")]),
        ("", "new", [("insert", "new")]),
        ("old", "", [("delete", "old")]),
        ("", "", []),
    ],
)  # fmt: skip
def test_word_diff(old, new, expected):
    assert word_diff(old, new) == expected


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("one  two\tthree\n\nfour\n", "one two\n three\n\n\nfour"),
        ("## Purpose\nRefund the charge.\r\n", "## Scope\nRefund both charges, now!\r\n"),
        ("a\nb\nc\nd\n", "a\nc\nb\nd\ne\n"),
        ("  leading and trailing  ", "leading, trailing"),
    ],
)
def test_pieces_rebuild_each_side_exactly(old, new):
    pieces = word_diff(old, new)
    assert "".join(text for op, text in pieces if op != "insert") == old
    assert "".join(text for op, text in pieces if op != "delete") == new
    assert all(text for _, text in pieces)
    assert all(a[0] != b[0] for a, b in zip(pieces, pieces[1:], strict=False))


def test_tokens_keep_whitespace():
    assert tokens("Hi,  there\n") == ["Hi", ",", "  ", "there", "\n"]


def test_diff_html_marks_deletions_and_insertions():
    html = diff_html("refund in 30 days", "refund in 45 days")
    assert html == '<pre class="diff">refund in <del>30</del><ins>45</ins> days</pre>'


def test_diff_html_unchanged_text_is_only_escaped():
    assert diff_html("a & b", "a & b") == '<pre class="diff">a &amp; b</pre>'


def test_diff_html_escapes_both_texts():
    html = diff_html('<script>alert("old")</script>', '<script>alert("new")</script><b>x</b>')
    assert "<script>" not in html and "<b>" not in html
    assert html == (
        '<pre class="diff">&lt;script&gt;alert(&#34;<del>old</del><ins>new</ins>&#34;)&lt;/script&gt;'
        "<ins>&lt;b&gt;x&lt;/b&gt;</ins></pre>"
    )


def test_diff_html_with_context_leaves_out_distant_unchanged_lines():
    old = "".join(f"line {n}\n" for n in range(1, 10))
    new = old.replace("line 5", "line five")
    html = diff_html(old, new, context_lines=1)
    assert html == '<pre class="diff">…\nline 4\nline <del>5</del><ins>five</ins>\nline 6\n…\n</pre>'


def test_line_diff_is_a_unified_diff():
    assert line_diff("a\nb\n", "a\nc\n", "old", "new") == "--- old\n+++ new\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"


def test_line_diff_marks_a_missing_final_newline():
    assert line_diff("a", "b", "old", "new").endswith(
        "-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file\n"
    )


def test_line_diff_of_equal_texts_is_empty():
    assert line_diff("same\n", "same\n", "old", "new") == ""


@pytest.mark.parametrize(
    ("old", "new", "inserted", "deleted"),
    [
        ("refund now", "refund now", 0, 0),
        ("refund now", "refund it all now", 2, 0),
        ("wait 30 days", "wait 45 days", 1, 1),
        ("one two three", "", 0, 3),
    ],
)
def test_diff_stats_counts_words(old, new, inserted, deleted):
    assert diff_stats(old, new) == {"words_inserted": inserted, "words_deleted": deleted}
