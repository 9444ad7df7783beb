"""Markdown parse+render time on adversarial inputs of the allowed document size (kb.documents.MAX_DOCUMENT_CHARS).

For each input it prints the median and the worst of a few runs, twice:
"unbounded" is markdown-it-py with kb's options (CommonMark, tables, raw HTML
off) and no limits, as kb parsed before issue 9; "kb" is kb.markdown's bounded
path (the linear scan, then parse and render, or the refusal). Inputs named
"at limit" stay just inside every limit, so they are parsed in full: they are
the slowest text kb accepts. Peak memory above the start is printed for the
kb path of each input (tracemalloc's peak of one more run).
Asserts nothing.

    .venv/bin/python scripts/bench_markdown.py [--runs 3] [--only NAME]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

from markdown_it import MarkdownIt

from kb import markdown
from kb.documents import MAX_DOCUMENT_CHARS

N = MAX_DOCUMENT_CHARS


def fill(unit: str, n: int = N) -> str:
    """unit repeated to exactly n characters."""
    return (unit * (n // len(unit) + 1))[:n]


def inputs() -> dict[str, str]:
    """Adversarial Markdown bodies, each at most MAX_DOCUMENT_CHARS long."""
    run = markdown.MAX_RUN
    return {
        "run of [": fill("["),
        "run of ![": fill("!["),
        "run of *": fill("*"),
        "run of _": fill("_"),
        "run of backticks": fill("`"),
        "backtick pairs": fill("`a``b```c"),
        "run of <": fill("<"),
        "run of &": fill("&"),
        "entity starts &#": fill("&#"),
        "run of \\": fill("\\"),
        "nested blockquotes >>>": fill(">"),
        "blockquote lines > > >": fill("> " * 50 + "a\n"),
        "nested lists (indent)": "".join("  " * i + "- a\n" for i in range(2000))[:N],
        "nested lists * * *": fill("* "),
        "nested ordered 1. 1.": fill("1. "),
        "emphasis *a **a": fill("*a **a "),
        "emphasis _a __a": fill("_a __a "),
        "mixed *_": fill("*_"),
        "emphasis **a*": fill("**a*"),
        "unclosed a**": fill("a**"),
        "link reference definitions": "".join(f"[r{i}]: /u{i}\n" for i in range(20000))[: N // 2]
        + fill("[r1] ", N // 2),
        "reference uses [a][b]": fill("[a][b] "),
        "huge table: columns": "|" + "a|" * 45000 + "\n|" + "-|" * 45000 + "\n",
        "huge table: rows": "|a|b|\n|-|-|\n" + fill("|x|y|\n", N - 12),
        "huge table: wide rows": "|" + "a|" * 1000 + "\n|" + "-|" * 1000 + "\n" + fill("|x" * 1000 + "|\n", N - 4004),
        "table autocompleted cells": "|" + "a|" * 200 + "\n|" + "-|" * 200 + "\n" + fill("x\n", N - 1204),
        "many headings": fill("## h\n"),
        "setext headings": fill("a\n=\n"),
        "unclosed links [a](": fill("[a]("),
        "unclosed link text [a": fill("[a "),
        "link destinations [a](<": fill("[a](<"),
        "nested brackets [[[a]]]": "[" * 50000 + "a" + "]" * 50000,
        "nested parens [a](((": "[a](" + "(" * 100000 + ")" * 90000,
        "autolinks <a@": fill("<a@"),
        "html-like <a": fill("<a "),
        "images in brackets ![[": fill("![["),
        "links in emphasis *[a](b)": fill("*[a](b)"),
        'link titles [a](b "': fill('[a](b "'),
        "hard breaks": fill("a  \n"),
        "fences": fill("```\n"),
        "blank lines": fill("\n"),
        "prose": fill("Refund the duplicate charge within thirty days and note the ticket. "),
        # just inside every limit: the slowest text kb parses in full
        "at limit: [ runs": ("[" * run + "a ") * (markdown.MAX_MARKUP // run),
        "at limit: [ spread": fill("[a " + "x" * 30, 33 * markdown.MAX_MARKUP),
        "at limit: ![ pairs": fill("![a ", 2 * markdown.MAX_MARKUP),
        "at limit: [a]( links": fill("[a](" + " " * 36, 40 * (markdown.MAX_MARKUP // 2)),
        "at limit: *_ emphasis": fill("*_" + "x" * 30, 16 * markdown.MAX_MARKUP),
        "at limit: lines": fill("word\n", 5 * markdown.MAX_LINES - 1),
        "at limit: list items": fill("- a\n", 4 * markdown.MAX_CONTAINERS)
        + fill("b\n", 2 * (markdown.MAX_LINES - 1 - markdown.MAX_CONTAINERS)),
        "at limit: nested list items": fill("- - - - - - - - a\n", 18 * (markdown.MAX_CONTAINERS // 8)),
        "at limit: hard breaks": fill("a  \n", 4 * (markdown.MAX_LINES - 1)),
        "at limit: headings": fill("## h\n", 5 * markdown.MAX_HEADINGS)
        + fill("a\n=\n", 4 * (markdown.MAX_LINES // 2 - markdown.MAX_HEADINGS - 1)).replace("=", "x"),
        "at limit: table cells": "|a|b|\n|-|-|\n" + fill("x\n", 2 * (markdown.MAX_TABLE_CELLS // 2 - 2)),
        "at limit: wide table": "|"
        + "a|" * 64
        + "\n|"
        + "-|" * 64
        + "\n"
        + fill("x" * 200 + "\n", 201 * (markdown.MAX_TABLE_CELLS // 64 - 2)),
        "at limit: nesting": "".join("> " * i + "- a\n" for i in range(1, (markdown.MAX_NESTING - 2) // 3 + 1)) * 100,
        "at limit: entities": fill("&amp; " + "x" * 34, 40 * markdown.MAX_MARKUP),
    }


def unbounded() -> MarkdownIt:
    """markdown-it-py as kb configured it before issue 9: no maxNesting of ours, no scan."""
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def time_it(function, text: str, runs: int) -> tuple[float, float]:
    """(median, worst) seconds of function(text)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function(text)
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times)


def bounded(text: str) -> str:
    """kb's path for a draft or preview: scan, parse and render, or refuse."""
    tokens, refusals = markdown.parse_bounded(text)
    if refusals:
        return refusals[0].message
    md = markdown.parser()
    return md.renderer.render(tokens, md.options, {})


def main() -> None:
    """Print one line per input, then the slowest input on each path."""
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--runs", type=int, default=3, help="runs per input and path")
    arguments.add_argument("--only", default=None, help="only inputs whose name contains this")
    options = arguments.parse_args()
    md = unbounded()
    before_worst, after_worst = ("", 0.0), ("", 0.0)
    print(f"{'input':36} {'chars':>8}  {'unbounded median/worst':>23}  {'kb median/worst':>16}  {'kb peak MB':>10}  kb")
    for name, text in inputs().items():
        if options.only and options.only not in name:
            continue
        assert len(text) <= N, name
        b_median, b_worst = time_it(md.render, text, options.runs)
        a_median, a_worst = time_it(bounded, text, options.runs)
        refusals = markdown.parse_bounded(text)[1]
        outcome = f"refused: line {refusals[0].line + 1}: {refusals[0].message}" if refusals else "rendered"
        tracemalloc.start()
        bounded(text)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(
            f"{name:36} {len(text):>8,}  {b_median:>10.3f}/{b_worst:>6.3f} s  {a_median:>7.3f}/{a_worst:>6.3f} s"
            f"  {peak:>10.1f}  {outcome}",
            flush=True,
        )
        before_worst = max(before_worst, (name, b_worst), key=lambda x: x[1])
        after_worst = max(after_worst, (name, a_worst), key=lambda x: x[1])
    print(f"slowest unbounded: {before_worst[0]} {before_worst[1]:.3f} s")
    print(f"slowest kb:        {after_worst[0]} {after_worst[1]:.3f} s")


if __name__ == "__main__":
    main()
