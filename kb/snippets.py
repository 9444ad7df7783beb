"""Snippets: a window of a section's text around the query's terms, HTML-escaped, terms in <mark>."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence

SNIPPET_CHARS = 240
CONTEXT_CHARS = 40

_MARK = re.compile(r"</?mark>")

Analyzer = Callable[[str], Sequence[tuple[int, int, str]]]


def _window_start(hits: Sequence[tuple[int, int, str]], width: int) -> int:
    """The start of the width-long window holding the most distinct matched terms."""
    best_start, best_count = 0, 0
    for i, (start, _, _) in enumerate(hits):
        count = len({term for s, e, term in hits[i:] if e <= start + width})
        if count > best_count:
            best_start, best_count = start, count
    return best_start


def make_snippet(text: str, analyze: Analyzer, terms: set[str], width: int = SNIPPET_CHARS) -> str:
    """Return an HTML snippet of text: escaped, with the query's terms wrapped in <mark>.

    Args:
        text: the section's plain text.
        analyze: gives (start, end, term) for each indexable term of a text.
        terms: the query's analysed terms.
        width: about how many characters to show.
    """
    text = " ".join(text.split())
    hits = [span for span in analyze(text) if span[2] in terms] if terms else []
    start = _window_start(hits, width - CONTEXT_CHARS) if hits else 0
    if start > CONTEXT_CHARS:
        start -= CONTEXT_CHARS
        while start > 0 and not text[start - 1].isspace():
            start += 1
    else:
        start = 0
    end = min(len(text), start + width)
    while end < len(text) and not text[end].isspace():
        end += 1
    out, cursor = [], start
    for s, e, _ in hits:
        if s < start or e > end:
            continue
        out.append(html.escape(text[cursor:s]))
        out.append("<mark>" + html.escape(text[s:e]) + "</mark>")
        cursor = e
    out.append(html.escape(text[cursor:end]))
    return ("… " if start > 0 else "") + "".join(out) + (" …" if end < len(text) else "")


def plain_text(snippet: str) -> str:
    """A snippet as plain text: the <mark> tags dropped and the HTML escapes undone (for the CLI and LLM tools)."""
    return html.unescape(_MARK.sub("", snippet))
