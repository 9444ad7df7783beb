"""Metadata conditions on retrieval records (Dify's ``metadata_condition``): pure functions over plain data.

A record passes when all its conditions hold ("and", the default) or any does ("or"). Fields and the
operators each takes:

    text: sop_id, title, type, business_line, owner, path, heading, anchor, revision
          is, is not, in, not in (a list of strings, or one string), contains, not contains, start with,
          end with (the last four ignore case), empty, not empty
    list: categories, tags
          contains, not contains (one value), in, not in (any of a list), empty, not empty;
          a category value also matches the categories inside it when it names a group
    date: effective, review_by
          before, after (a value "YYYY-MM-DD", an ISO date-time, or Unix seconds)

Dify's number operators (=, ≠, >, <, ≥, ≤) and any operator a field does not take are refused naming the
field. A condition's ``name`` may be a list of fields (as Dify's older documentation shows): it holds when it
holds for any of them. business_line conditions compare the value as written ("is subscriptions" does not
match an SOP for every line); the knowledge id business_line:<line> includes those. Conditions that map onto
kb's index filters (business_line is, type is, categories contains, under "and") also narrow the search
itself, so a narrow condition still finds its SOPs beyond the unfiltered candidates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from kb.documents import BUSINESS_LINES, TYPES
from kb.indexing.filters import Filters

TEXT_FIELDS = ("sop_id", "title", "type", "business_line", "owner", "path", "heading", "anchor", "revision")
LIST_FIELDS = ("categories", "tags")
DATE_FIELDS = ("effective", "review_by")
FIELDS = TEXT_FIELDS + LIST_FIELDS + DATE_FIELDS
TEXT_OPERATORS = (
    "is",
    "is not",
    "in",
    "not in",
    "contains",
    "not contains",
    "start with",
    "end with",
    "empty",
    "not empty",
)
LIST_OPERATORS = ("contains", "not contains", "in", "not in", "empty", "not empty")
DATE_OPERATORS = ("before", "after")
NUMBER_OPERATORS = ("=", "≠", ">", "<", "≥", "≤")
OPERATORS = tuple(dict.fromkeys(TEXT_OPERATORS + LIST_OPERATORS + DATE_OPERATORS + NUMBER_OPERATORS))
NO_VALUE = ("empty", "not empty")
MAX_VALUES = 50  # strings in one "in" / "not in" list
MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class Condition:
    """One metadata condition, checked: the fields it names, its operator and its value (normalised)."""

    fields: tuple[str, ...]
    operator: str
    value: object = None

    def holds(self, meta: dict) -> bool:
        """Whether the condition holds for a record's metadata (for any of its fields)."""
        return any(_holds(field, self.operator, self.value, meta[field]) for field in self.fields)


def _kind(field: str) -> str:
    return "list" if field in LIST_FIELDS else "date" if field in DATE_FIELDS else "text"


def _operators(field: str) -> tuple[str, ...]:
    return {"list": LIST_OPERATORS, "date": DATE_OPERATORS}.get(_kind(field), TEXT_OPERATORS)


def _day(value: object) -> dt.date | None:
    """A date from "YYYY-MM-DD", an ISO date-time or Unix seconds (UTC); None when it is none of them."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return dt.datetime.fromtimestamp(value, dt.UTC).date()
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip()).date()
        except ValueError:
            return None
    return None


def field_names(names: object) -> tuple[str, ...]:
    """The fields a condition names: one name, or a list of them."""
    return (names,) if isinstance(names, str) else tuple(names) if isinstance(names, list) else ()


def names_problem(names: object) -> str | None:
    """What is wrong with a condition's name (a metadata field, or a list of them), or None."""
    fields = field_names(names)
    if not fields or len(fields) > len(FIELDS) or not all(isinstance(f, str) for f in fields):
        return "must be a metadata field name or a list of them"
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        return f"{unknown[0][:60]!r} is not a metadata field; use one of {', '.join(FIELDS)}"
    return None


def operator_problem(names: object, operator: object) -> str | None:
    """What is wrong with a condition's operator for the fields it names (valid names assumed), or None."""
    if operator not in OPERATORS:
        return f"must be one of Dify's operators: {', '.join(OPERATORS)}"
    for field in field_names(names):
        if operator not in _operators(field):
            return f"{operator!r} is not supported for {field}; it takes {', '.join(_operators(field))}"
    return None


def _value(operator: str, value: object) -> tuple[object, str | None]:
    """The value normalised for the operator (a tuple for in/not in, a date for before/after), or a problem."""
    if operator in NO_VALUE:
        return None, None
    if operator in ("in", "not in"):
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            return None, f"{operator!r} needs a list of strings (or one string)"
        if len(values) > MAX_VALUES or any(len(v) > MAX_VALUE_CHARS for v in values):
            return None, f"at most {MAX_VALUES} strings of at most {MAX_VALUE_CHARS} characters"
        return tuple(values), None
    if operator in DATE_OPERATORS:
        day = _day(value)
        return (
            (day, None) if day else (None, f"{operator!r} needs a date: YYYY-MM-DD, an ISO date-time or Unix seconds")
        )
    if not isinstance(value, str) or len(value) > MAX_VALUE_CHARS:
        return None, f"{operator!r} needs a string of at most {MAX_VALUE_CHARS} characters"
    return value, None


def value_problem(operator: object, value: object) -> str | None:
    """What is wrong with a condition's value for its operator (a valid operator assumed), or None."""
    return _value(str(operator), value)[1]


def check_condition(names: object, operator: object, value: object) -> tuple[str, str, Condition | None]:
    """Check one metadata condition as sent.

    Args:
        names: the field name, or a list of them (the condition holds for any).
        operator: one of Dify's comparison operators.
        value: the value to compare with (ignored for empty and not empty).

    Returns:
        (part, problem, condition): on success ("", "", the checked condition); otherwise the part at fault
        ("name", "comparison_operator" or "value"), what is wrong, and None.
    """
    for part, problem in (("name", names_problem(names)), ("comparison_operator", operator_problem(names, operator))):
        if problem:
            return part, problem, None
    normal, problem = _value(str(operator), value)
    if problem:
        return "value", problem, None
    return "", "", Condition(field_names(names), str(operator), normal)


def _in_category(category: str, value: str) -> bool:
    return category == value or category.startswith(value + "/")


def _holds(field: str, operator: str, value: object, actual: object) -> bool:
    if _kind(field) == "date":
        day = dt.date.fromisoformat(str(actual))
        return day < value if operator == "before" else day > value
    if _kind(field) == "list":
        items = list(actual or [])
        equal = _in_category if field == "categories" else str.__eq__
        if operator in ("empty", "not empty"):
            return (not items) == (operator == "empty")
        wanted = value if operator in ("in", "not in") else (value,)
        found = any(equal(item, v) for item in items for v in wanted)
        return found == (operator in ("contains", "in"))
    text = "" if actual is None else str(actual)
    checks = {
        "is": lambda: text == value,
        "is not": lambda: text != value,
        "in": lambda: text in value,
        "not in": lambda: text not in value,
        "contains": lambda: value.casefold() in text.casefold(),
        "not contains": lambda: value.casefold() not in text.casefold(),
        "start with": lambda: text.casefold().startswith(value.casefold()),
        "end with": lambda: text.casefold().endswith(value.casefold()),
        "empty": lambda: not text,
        "not empty": lambda: bool(text),
    }
    return checks[operator]()


def matches(conditions: Sequence[Condition], logical: str, meta: dict) -> bool:
    """Whether a record's metadata passes the conditions: all of them ("and") or any ("or"); none: it passes."""
    if not conditions:
        return True
    results = (c.holds(meta) for c in conditions)
    return any(results) if logical == "or" else all(results)


FILTER_SLOTS = {
    ("business_line", "is"): "business_line",
    ("type", "is"): "type",
    ("categories", "contains"): "category",
}


def narrowing(
    conditions: Sequence[Condition], logical: str, base: Filters | None, category_ids: set[str]
) -> Filters | None:
    """base, its open slots narrowed by the conditions that are index filters (FILTER_SLOTS, under "and" only).

    The result passes every record the conditions pass, so checking the conditions afterwards stays exact.
    """
    found = dict(vars(base)) if base is not None else dict(vars(Filters()))
    valid = {"business_line": set(BUSINESS_LINES), "type": set(TYPES), "category": category_ids}
    for c in conditions if logical != "or" else ():
        slot = FILTER_SLOTS.get((c.fields[0], c.operator)) if len(c.fields) == 1 else None
        if slot is not None and found[slot] is None and c.value in valid[slot]:
            found[slot] = c.value
    filters = Filters(**found)
    return None if filters == Filters() else filters
