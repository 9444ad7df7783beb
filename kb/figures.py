"""Figures written out in a document that a shared value already holds.

A figure used by more than one document lives in values.yaml and is written
``{{name}}``. This module finds the places where a document writes the figure
itself instead, so that a new duplicate is caught when it is written:

    "Refunds are accepted within 30 days of delivery."   # refund_window_days is 30 days

A written figure is reported when a value has the same number (or range) in the
same unit, and the sentence (or table row) holding it also names every key word
of that value. A value's unit comes from its ``unit`` field or the suffix of its
name (``_business_days``, ``_days``, ``_hours``, ``_minutes``, ``_months``,
``_years``, ``_percent``, ``_usd``); its key words from its ``keywords`` field
or the rest of its name. A value with no unit (a count, a weekday) is never
matched: a bare number next to words says too little.

Pure functions over text; the lint rule that reports the matches is in kb.lint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from kb.values import Value

_SUFFIXES = (
    ("_business_days", "business days"),
    ("_days", "days"),
    ("_hours", "hours"),
    ("_minutes", "minutes"),
    ("_months", "months"),
    ("_years", "years"),
    ("_percent", "percent"),
    ("_usd", "usd"),
)
# Name parts that say nothing about what the figure is for.
_GENERIC = {"after", "before", "above", "below", "under", "over", "per", "from", "the", "of", "a", "an", "and", "in"}
_PREFIX = 4  # a key word matches a sentence word starting with its first 4 letters ("posting" ~ "posted")

_NUMBER_WORDS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "fourteen": "14",
    "thirty": "30",
}
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|" + "|".join(_NUMBER_WORDS) + r")"
_RANGE = rf"(?P<low>{_NUM})(?:\s*(?:to|-|–|and)\s*(?P<high>{_NUM}))?"
_LEFT = r"(?<![\w.,$])"
_UNIT_PATTERNS = (
    ("business days", rf"{_LEFT}{_RANGE}[\s-]+(?:business|working)[\s-]+days?\b"),
    ("days", rf"{_LEFT}{_RANGE}[\s-]+(?:calendar[\s-]+)?days?\b"),
    ("hours", rf"{_LEFT}{_RANGE}[\s-]+hours?\b"),
    ("minutes", rf"{_LEFT}{_RANGE}[\s-]+minutes?\b"),
    ("months", rf"{_LEFT}{_RANGE}[\s-]+months?\b"),
    ("years", rf"{_LEFT}{_RANGE}[\s-]+years?\b"),
    ("percent", rf"{_LEFT}{_RANGE}\s*(?:%|percent\b)"),
    ("usd", rf"(?:US\$|\$|USD\s*)\s*{_RANGE}(?![\w.]\d)"),
    ("usd", rf"{_LEFT}{_RANGE}\s*USD\b"),
)
_COMPILED = tuple((unit, re.compile(pattern, re.IGNORECASE)) for unit, pattern in _UNIT_PATTERNS)
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[A-Z\[\"'(*])")  # a table row stays whole: it reads as one sentence
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class WrittenFigure:
    """A figure written out in a document that a shared value holds."""

    line: int  # 0-based line within the text
    text: str  # the figure as written, e.g. "30 days"
    value: Value


def unit_of(value: Value) -> str | None:
    """The unit of a shared value: its unit field, else its name's suffix, else None."""
    if value.unit:
        return value.unit
    for suffix, unit in _SUFFIXES:
        if value.name.endswith(suffix):
            return unit
    return None


def keywords_of(value: Value) -> tuple[str, ...]:
    """The words a sentence must name for a written figure to be this value."""
    if value.keywords:
        return tuple(word for keyword in value.keywords for word in _words(keyword))
    name = value.name
    for suffix, _ in _SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return tuple(part for part in name.split("_") if part and part not in _GENERIC)


def _number(text: str) -> Decimal | None:
    text = _NUMBER_WORDS.get(text.lower(), text).replace(",", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def figure_of(value: Value) -> tuple[Decimal, ...] | None:
    """The number, or the (low, high) range, a value holds; None for text such as a weekday."""
    match = re.fullmatch(_RANGE, value.value.strip(), re.IGNORECASE)
    if not match:
        return None
    numbers = tuple(_number(n) for n in match.group("low", "high") if n is not None)
    return None if None in numbers else numbers


def _words(sentence: str) -> list[str]:
    sentence = re.sub(r"\btier\s+(\d)", r"tier\1", sentence.lower())
    return _WORD.findall(sentence)


def _prefixes(sentence: str) -> set[str]:
    """The first 1 to _PREFIX letters of every word of a sentence: what key words are matched against."""
    return {word[:n] for word in _words(sentence) for n in range(1, _PREFIX + 1)}


def written_figures(text: str, values: dict[str, Value]) -> list[WrittenFigure]:
    """Every figure in text that a shared value of the same unit holds, in a sentence naming its key words.

    Args:
        text: the document as stored (placeholders are not figures).
        values: the shared values by name.
    """
    candidates = []
    for value in values.values():
        unit, numbers, keywords = unit_of(value), figure_of(value), keywords_of(value)
        if unit and numbers and keywords:
            candidates.append((unit, numbers, keywords, value))
    if not candidates:
        return []
    found = []
    for index, line in enumerate(text.splitlines()):
        line = _PLACEHOLDER.sub(" _ ", line)
        for sentence in _SENTENCE_END.split(line):
            prefixes: set[str] | None = None  # made once per sentence, and only when a figure is in it
            for unit, pattern in _COMPILED:
                for match in pattern.finditer(sentence):
                    written = tuple(_number(n) for n in match.group("low", "high") if n is not None)
                    for want_unit, numbers, keywords, value in candidates:
                        if want_unit != unit or written != numbers:
                            continue
                        prefixes = _prefixes(sentence) if prefixes is None else prefixes
                        if all(k[:_PREFIX] in prefixes for k in keywords):
                            found.append(WrittenFigure(index, match.group(0).strip(), value))
    return found
