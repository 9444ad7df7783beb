"""Customer macros that name a risk signal.

pay-risk-block's "Never say or hint" table forbids telling a customer which
signal made our checks act (devices we saw, IP address, VPN, scores, linked
accounts): explaining a rule teaches a fraudster how to get past it. The list
is data, the shared value ``do_not_say_risk_signals`` (comma-separated words and
phrases), shown in that table through its placeholder, so the document agents
read and the check below use the same list.

A macro is the text an agent sends: the block quotes under a ``Macro`` heading
or in a section whose heading names macros (:func:`macros`, which kb.assist also
uses to offer one). Pure functions over a document's text; the lint rule that
reports them is in kb.lint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb import markdown
from kb.values import Value

SIGNALS_VALUE = "do_not_say_risk_signals"


@dataclass(frozen=True)
class Disclosure:
    """A risk signal named in a customer macro."""

    line: int  # 0-based line within the text
    signal: str  # the listed word or phrase
    heading: str  # the macro's heading


def risk_signals(values: dict[str, Value]) -> tuple[str, ...]:
    """The words and phrases no macro may use (the shared value, split on commas)."""
    value = values.get(SIGNALS_VALUE)
    if value is None:
        return ()
    return tuple(word.strip() for word in value.value.split(",") if word.strip())


def _pattern(signals: tuple[str, ...]) -> re.Pattern:
    alternatives = sorted((r"\s+".join(map(re.escape, s.split())) for s in signals), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(alternatives) + r")(?:s|es)?(?![\w-])", re.IGNORECASE)


@dataclass(frozen=True)
class Macro:
    """One customer macro of a document: its heading, the heading's anchor, and its block-quote lines."""

    heading: str
    anchor: str
    lines: tuple[tuple[int, str], ...]  # (0-based line in the body, the line as written)

    @property
    def text(self) -> str:
        """What the agent sends, as plain text: the block quotes' paragraphs, one per line."""
        return markdown.plain_text(markdown.parse("\n".join(line for _, line in self.lines)))


def macros(body: str) -> list[Macro]:
    """Every macro of a document body, in order: the block quotes under each heading that is a macro."""
    lines = body.splitlines()
    heads = markdown.headings(markdown.parse(body))
    found = []
    in_macros = False  # the current H2 section names macros
    for index, head in enumerate(heads):
        if head.level == 2:
            in_macros = "macro" in head.anchor
        if not (in_macros or (head.level == 3 and head.text.lower().startswith("macro"))):
            continue
        end = heads[index + 1].line if index + 1 < len(heads) else len(lines)
        quoted = tuple((n, lines[n]) for n in range(head.line + 1, end) if lines[n].lstrip().startswith(">"))
        if quoted:
            found.append(Macro(head.text, head.anchor, quoted))
    return found


def macro_lines(body: str) -> list[tuple[int, str, str]]:
    """(0-based line, line, macro heading) of every block-quote line in a macro of a document body."""
    return [(number, line, macro.heading) for macro in macros(body) for number, line in macro.lines]


def disclosures(body: str, values: dict[str, Value]) -> list[Disclosure]:
    """Every risk signal that a macro of this document body names.

    Args:
        body: the document body (placeholders resolved or not: signals are words, not figures).
        values: the shared values, for the list of signals.
    """
    signals = risk_signals(values)
    if not signals:
        return []
    pattern = _pattern(signals)
    found = []
    for number, line, heading in macro_lines(body):
        for match in pattern.finditer(line):
            found.append(Disclosure(number, match.group(1), heading))
    return found
