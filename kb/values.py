"""Shared values: figures defined once in sops/values.yaml and referenced as ``{{name}}``.

    values:
      refund_window_days:
        value: 30
        description: Days after delivery within which a refund may be requested.

A value may also give ``unit`` (one of UNITS) and ``keywords`` (words a
sentence names when it states this figure) for kb lint's written-figure rule
(kb.figures); by default both come from the name.

Resolution is plain substitution, not a template engine: a placeholder is two
braces around a name of lowercase letters, digits and underscores; there are no
expressions. An unknown name, or anything else between double braces, is a
problem with its line; it never renders as an empty string or a raw
placeholder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kb import yamlio
from kb.errors import Problem
from kb.files import read_text

FILE_NAME = "values.yaml"
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Anything between double braces, so that malformed placeholders are reported too.
_BRACES = re.compile(r"\{\{(.*?)\}\}")


@dataclass(frozen=True)
class Value:
    """One shared value."""

    name: str
    value: str
    description: str
    line: int
    unit: str | None = None  # for kb lint's written-figure rule; default: the name's suffix (kb.figures)
    keywords: tuple[str, ...] = ()  # likewise; default: the rest of the name

    def to_dict(self) -> dict:
        """Return the value as plain data."""
        return {"name": self.name, "value": self.value, "description": self.description}


UNITS = ("business days", "days", "hours", "minutes", "months", "years", "percent", "usd")


def _format(raw: object) -> str:
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) >= 1000:
        return f"{raw:,}"
    return str(raw)


def parse_values(text: str, name: str = FILE_NAME) -> tuple[dict[str, Value], list[Problem]]:
    """Parse values.yaml; return the values by name and every problem with its line."""
    try:
        data, root = yamlio.parse(text)
    except yamlio.YAMLProblem as error:
        return {}, [error.to_problem(name)]
    if not isinstance(data, dict) or not isinstance(data.get("values"), dict):
        return {}, [Problem(name, 1, "must be a mapping with a 'values' mapping", field="values")]
    nodes = {k.value: (k, v) for k, v in dict((k.value, v) for k, v in root.value)["values"].value}
    values: dict[str, Value] = {}
    problems: list[Problem] = []
    for key, item in data["values"].items():
        key_node, _ = nodes.get(str(key), (None, None))
        line = key_node.start_mark.line + 1 if key_node is not None else 1
        if not isinstance(key, str) or not NAME.match(key):
            problems.append(
                Problem(name, line, f"{key!r} must be lowercase snake_case ([a-z][a-z0-9_]*)", field="name")
            )
            continue
        if not isinstance(item, dict):
            problems.append(Problem(name, line, "must be a mapping with 'value' and 'description'", field=key))
            continue
        unknown = set(item) - {"value", "description", "unit", "keywords"}
        if unknown:
            problems.append(Problem(name, line, f"unknown field {sorted(unknown)[0]!r}", field=key))
        raw = item.get("value")
        if raw is None or isinstance(raw, (dict, list, bool)) or str(raw).strip() == "":
            problems.append(Problem(name, line, "'value' must be non-empty text or a number", field=key))
            continue
        if "{{" in str(raw) or "}}" in str(raw):
            problems.append(Problem(name, line, "a value cannot contain a placeholder", field=key))
            continue
        description = item.get("description")
        if not isinstance(description, str) or not description.strip():
            problems.append(Problem(name, line, "'description' is required", field=key))
        unit, keywords = item.get("unit"), item.get("keywords", [])
        if unit is not None and unit not in UNITS:
            problems.append(Problem(name, line, f"'unit' must be one of {', '.join(UNITS)}", field=key))
            unit = None
        if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
            problems.append(Problem(name, line, "'keywords' must be a list of words", field=key))
            keywords = []
        values[key] = Value(key, _format(raw), str(description or ""), line, unit, tuple(keywords))
    return values, problems


def load_values(content_dir: Path) -> tuple[dict[str, Value], list[Problem], bool]:
    """Load values.yaml from the content folder.

    Returns:
        (values, problems, present): present is False when there is no values.yaml.
    """
    path = content_dir / FILE_NAME
    if not path.exists():
        return {}, [], False
    text, problems = read_text(path, FILE_NAME, yamlio.MAX_YAML_CHARS)
    if text is None:
        return {}, problems, True
    values, problems = parse_values(text)
    return values, problems, True


def placeholders(text: str) -> list[tuple[str, int]]:
    """Return (name, 0-based line) of every well-formed placeholder in text."""
    found = []
    for match in _BRACES.finditer(text):
        inner = match.group(1).strip()
        if NAME.match(inner):
            found.append((inner, text.count("\n", 0, match.start())))
    return found


def resolve(text: str, values: dict[str, Value], name: str, first_line: int = 1) -> tuple[str, list[Problem]]:
    """Substitute every ``{{name}}`` in text.

    Args:
        text: the text to resolve.
        values: the known values.
        name: the file, for messages.
        first_line: the file's line number of text's first line.

    Returns:
        (resolved text, problems): one problem per unknown or malformed placeholder.
    """
    problems: list[Problem] = []

    def substitute(match: re.Match) -> str:
        inner = match.group(1).strip()
        line = first_line + text.count("\n", 0, match.start())
        if not NAME.match(inner):
            problems.append(Problem(name, line, f"malformed placeholder {match.group(0)!r}: use {{{{name}}}}"))
        elif inner not in values:
            problems.append(Problem(name, line, f"unknown placeholder {{{{{inner}}}}} (not in {FILE_NAME})"))
        else:
            return values[inner].value
        return match.group(0)

    resolved = _BRACES.sub(substitute, text)
    return resolved, problems
