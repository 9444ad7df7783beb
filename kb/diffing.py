"""Differences between two revisions of a text: word-level for people, unified for programs.

Pure functions, no git. Texts are split into tokens that keep their whitespace
(runs of whitespace, words, single punctuation marks), so joining the "equal"
and "delete" pieces of a diff gives the old text back exactly, and joining the
"equal" and "insert" pieces gives the new text. Lines are matched first and
words only inside changed blocks of lines, which keeps long documents fast and
the pieces readable.
"""

from __future__ import annotations

import difflib
import re

from markupsafe import Markup

EQUAL, INSERT, DELETE = "equal", "insert", "delete"
ELISION = "\N{HORIZONTAL ELLIPSIS}\n"  # stands for unchanged lines left out by diff_html(context_lines=n)
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_WORD = re.compile(r"\S+")


def tokens(text: str) -> list[str]:
    """Split text into whitespace runs, words and punctuation marks; joined, they give text back."""
    return _TOKEN.findall(text)


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """Word-level diff: (op, text) pieces, op in equal/insert/delete; a replacement is a delete then an insert."""
    old_lines, new_lines = _LINE.findall(old), _LINE.findall(new)
    pieces: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        before, after = "".join(old_lines[i1:i2]), "".join(new_lines[j1:j2])
        if op == "replace":
            pieces.extend(_words(before, after))
        else:
            pieces.extend([(DELETE, before), (INSERT, after)] if op != EQUAL else [(EQUAL, before)])
    return _merge(pieces)


def diff_html(old: str, new: str, context_lines: int | None = None) -> Markup:
    """The new text, HTML-escaped, with deletions in <del> and insertions in <ins>, inside <pre class="diff">.

    With context_lines, unchanged text more than that many lines away from a
    change is left out and each gap is shown as a line holding only "…".
    """
    pieces = word_diff(old, new)
    if context_lines is not None:
        pieces = _with_context(pieces, max(0, context_lines))
    wrap = {EQUAL: Markup("{}"), DELETE: Markup("<del>{}</del>"), INSERT: Markup("<ins>{}</ins>")}
    body = Markup("").join(wrap[op].format(text) for op, text in pieces)  # format() escapes text
    return Markup('<pre class="diff">{}</pre>').format(body)


def line_diff(old: str, new: str, old_label: str, new_label: str) -> str:
    """A unified diff of the two texts (3 lines of context), as git prints it; "" when they are equal."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=old_label, tofile=new_label
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def diff_stats(old: str, new: str) -> dict:
    """Count the words (runs of non-space characters) inserted and deleted from old to new."""
    counts = {INSERT: 0, DELETE: 0}
    for op, text in word_diff(old, new):
        if op != EQUAL:
            counts[op] += len(_WORD.findall(text))
    return {"words_inserted": counts[INSERT], "words_deleted": counts[DELETE]}


def _words(old: str, new: str) -> list[tuple[str, str]]:
    """Word-level pieces of one changed block; spaces between two changes join them into one change."""
    a, b = tokens(old), tokens(new)
    pieces: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op in ("replace", "delete"):
            pieces.append((DELETE, "".join(a[i1:i2])))
        if op in ("replace", "insert"):
            pieces.append((INSERT, "".join(b[j1:j2])))
        if op == EQUAL:
            pieces.append((EQUAL, "".join(a[i1:i2])))
    joined: list[tuple[str, str]] = []
    for index, (op, text) in enumerate(pieces):
        between = 0 < index < len(pieces) - 1
        if op == EQUAL and between and text.isspace() and "\n" not in text:
            joined.extend([(DELETE, text), (INSERT, text)])
        else:
            joined.append((op, text))
    return _regroup(joined)


def _regroup(pieces: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Within each run of changes, put all deleted text first and all inserted text after it."""
    out: list[tuple[str, str]] = []
    deleted: list[str] = []
    inserted: list[str] = []
    for op, text in [*pieces, (EQUAL, "")]:
        if op == DELETE:
            deleted.append(text)
        elif op == INSERT:
            inserted.append(text)
        else:
            out.extend([(DELETE, "".join(deleted)), (INSERT, "".join(inserted)), (EQUAL, text)])
            deleted, inserted = [], []
    return _merge(out)


def _merge(pieces: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop empty pieces and merge neighbours with the same op."""
    out: list[tuple[str, str]] = []
    for op, text in pieces:
        if not text:
            continue
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        else:
            out.append((op, text))
    return out


def _with_context(pieces: list[tuple[str, str]], context: int) -> list[tuple[str, str]]:
    """Shorten each unchanged piece to the lines within context lines of a change, marking each gap."""
    out: list[tuple[str, str]] = []
    for index, (op, text) in enumerate(pieces):
        if op != EQUAL:
            out.append((op, text))
            continue
        lines = _LINE.findall(text)
        after_change = index > 0
        before_change = index < len(pieces) - 1
        # The first line finishes a changed line unless the change ended with a newline; likewise the last.
        keep_head = context + (1 if after_change and not pieces[index - 1][1].endswith("\n") else 0)
        keep_tail = context + (1 if before_change and not text.endswith("\n") else 0)
        keep_head = keep_head if after_change else 0
        keep_tail = keep_tail if before_change else 0
        if len(lines) <= keep_head + keep_tail:
            out.append((op, text))
            continue
        head = "".join(lines[:keep_head])
        tail = "".join(lines[len(lines) - keep_tail :]) if keep_tail else ""
        out.append((op, head + ELISION + tail))
    return out
