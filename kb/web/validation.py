"""Every request checked at the edge, before any view reads it: size, JSON shape, characters.

- A body over ``MAX_REQUEST_BYTES`` is refused with 413 before it is read
  (werkzeug also stops a chunked body at that size, and form fields at it).
- A JSON body is parsed once, nested at most :data:`MAX_JSON_DEPTH` deep
  (deeper would exhaust Python's recursion before the view sees it), without
  ``NaN`` or ``Infinity``.
- No text that enters (query-string arguments, form fields, JSON keys and
  values) may hold a NUL, another C0 control character (tab, line feed and
  carriage return are allowed) or a lone surrogate (which JSON's ``\\ud800``
  escape can carry and UTF-8 cannot encode).

Each refusal is a 400 in the one error shape naming the field and the problem
(kb.errors.QueryError), or 413 (kb.errors.TooLargeError).
"""

from __future__ import annotations

import json
import re

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest

from kb.errors import QueryError, TooLargeError

MAX_JSON_DEPTH = 32
_BAD_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_NESTING = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped), in one linear pass."""
    depth = deepest = 0
    for match in _NESTING.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, refusing bodies nested deeper than MAX_JSON_DEPTH and the constants NaN and Infinity."""

    def loads(self, s: str | bytes, **kwargs) -> object:
        """Parse JSON within bounds; raise ValueError naming the problem otherwise."""
        raw = s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s
        if json_depth(raw) > MAX_JSON_DEPTH:
            raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
        return json.loads(s, parse_constant=_no_constants, **kwargs)


def character_problem(text: str) -> str | None:
    """What is wrong with the characters of text (a NUL, a control character, a lone surrogate), or None."""
    match = _BAD_CHARACTER.search(text)
    if match is None:
        return None
    char = match.group()
    kind = "a NUL character" if char == "\x00" else "a lone surrogate" if char >= "\ud800" else "a control character"
    return f"contains {kind} (U+{ord(char):04X}) at position {match.start()}"


def check_text(value: object, field: str, what: str = "") -> None:
    """Refuse bad characters anywhere in a string, or in the keys and values of a JSON value.

    Args:
        value: a string, or a parsed JSON value.
        field: the field's name as the client knows it (``query``, ``filters.category``, ``items[2]``);
            "" for a whole JSON body.
        what: what the string is, when it is not the field's value (``a key``, ``a parameter name``).

    Raises:
        QueryError: naming the field and the problem.
    """
    if isinstance(value, str):
        problem = character_problem(value)
        if problem:
            name = field or "body"
            raise QueryError(f"{name}: {what + ' ' if what else ''}{problem}", {"field": name})
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, field, "a key")
            check_text(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{field}[{index}]" if field else f"body[{index}]")


def _check_request() -> None:
    limit = request.max_content_length
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise TooLargeError(
            f"body: {request.content_length:,} bytes is more than the {limit:,} a request may send", {"field": "body"}
        )
    for name, value in request.args.items(multi=True):
        check_text(name, "query string", "a parameter name")
        check_text(value, name)
    if request.is_json and request.content_length != 0:
        try:
            body = request.get_json(silent=False)
        except BadRequest as error:
            reason = error.__cause__ or error.description
            raise QueryError(f"body: not valid JSON ({str(reason)[:200]})", {"field": "body"}) from None
        check_text(body, "")
    elif request.method in ("POST", "PUT", "PATCH", "DELETE"):
        for name, value in request.form.items(multi=True):
            check_text(name, "form", "a field name")
            check_text(value, name)


def init_app(app: Flask) -> None:
    """Bound request sizes and check every request's text before the views run."""
    limit = app.config["KB"]["MAX_REQUEST_BYTES"]
    app.config.update(MAX_CONTENT_LENGTH=limit, MAX_FORM_MEMORY_SIZE=limit)
    app.json = BoundedJSONProvider(app)
    app.before_request(_check_request)
