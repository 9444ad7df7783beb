"""Field types of the API's models (kb/web/contract.py): numbers and text bounded by a setting, text matching a
pattern with the problem said in words, dates, and kb's own checks reused inside a model.

A setting-bound field carries a marker (``x-kb-limit``) in its JSON schema; kb/web/api_reference.py writes the
running app's value in its place, so the document states this instance's limits.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Annotated, Any

from flask import current_app
from pydantic import AfterValidator, BaseModel, Field

from kb.errors import KbError

LIMIT_KEY = "x-kb-limit"  # marks a bound taken from a setting; kb/web/api_reference.py writes the app's value


def setting_limits(model: type[BaseModel]) -> dict[str, str]:
    """The fields of a model bounded by a setting (at_most, chars_at_most): {field as sent: setting name}."""
    found = {}
    for name, schema in model.model_json_schema().get("properties", {}).items():
        for branch in [schema, *schema.get("anyOf", [])]:
            if LIMIT_KEY in branch:
                found[name] = branch[LIMIT_KEY]
    return found


def checked(check: Callable[[Any], object]) -> AfterValidator:
    """A field validator from one of kb's own checks, which raise a KbError naming the field.

    Its message (without the "field: " prefix) becomes the problem's, so the model lists it with every other.
    """

    def run(value: Any) -> Any:
        try:
            check(value)
        except KbError as error:
            raise ValueError(error.message.split(": ", 1)[-1]) from None
        return value

    return AfterValidator(run)


def _within(setting: str, measure: Callable[[Any], int], unit: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        limit = current_app.config["KB"][setting]
        if value is not None and measure(value) > limit:
            size = f", got {measure(value):,}" if unit else ""  # a length, never a number the client sent
            raise ValueError(f"must be at most {limit:,}{unit} (KB_{setting}){size}")
        return value

    return check


def at_most(setting: str, minimum: int = 1) -> Any:
    """A whole number from minimum to a setting (KB_<setting>); the document shows the app's value as maximum."""
    return Annotated[
        int, Field(ge=minimum, json_schema_extra={LIMIT_KEY: setting}), AfterValidator(_within(setting, int, ""))
    ]


def chars_at_most(setting: str) -> Any:
    """Non-blank text whose length is bounded by a setting; the document shows the app's value as maxLength."""
    return Annotated[
        str,
        Field(min_length=1, json_schema_extra={LIMIT_KEY: setting}),
        AfterValidator(_not_blank),
        AfterValidator(_within(setting, len, " characters")),
    ]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _iso_day(value: str) -> str:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date as YYYY-MM-DD") from None
    return value


def matching(pattern: str, problem: str, **schema: Any) -> Any:
    """Text matching a regular expression (shown in the document), refused with a problem in words."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.search(value):
            raise ValueError(problem)
        return value

    return Annotated[str, Field(json_schema_extra={"pattern": pattern, **schema}), AfterValidator(check)]


Day = Annotated[
    matching(r"^\d{4}-\d{2}-\d{2}$", "must be a date as YYYY-MM-DD", format="date"), AfterValidator(_iso_day)
]
