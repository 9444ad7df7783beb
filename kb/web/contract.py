"""The JSON API's contract: pydantic models of every request and answer, checked at the edge, and the areas
that declare them (flask-openapi3; kb/web/api_reference.py serves the OpenAPI document built from them).

A route of the API lives in an :class:`Area` (a flask-openapi3 APIBlueprint, itself a Flask Blueprint) and
names its models in its signature: ``def view(path: SomePath, query: SomeQuery, body: SomeBody)``, with its
answers in ``responses=responses(AnswerModel, 404)``. Before the view runs, and after kb/web/validation.py's
checks (size, JSON depth, characters) and the key scope and role (kb/web/api.py), flask-openapi3 validates
the request against the models and :func:`invalid_request` turns every problem pydantic found into the one
error shape::

    {"error": {"code": "bad_request" | "invalid_input", "message": "<first field>: <problem> (and N more...)",
               "details": {"field": "<first field>", "problems": [{"field", "message"}, ...]}}}

with the area's status (400 for search and admin, 422 for documents and authoring, as before). kb/web/errors.py
redacts it like every error. Unknown fields are refused everywhere (``extra="forbid"``), query strings
included; an empty query-string value counts as absent.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Annotated, Any, get_type_hints

from flask import current_app, request
from flask_openapi3 import APIBlueprint, Info, OpenAPI, Tag
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from kb.errors import InputError, KbError

MAX_PROBLEMS = 50  # problems listed in one answer; the message counts the rest
MAX_FIELD_NAME = 100  # characters of a client's field name echoed back
LIMIT_KEY = "x-kb-limit"  # marks a bound taken from a setting; kb/web/api_reference.py writes the app's value
_MODELS: dict[str, type[BaseModel]] = {}


class Model(BaseModel):
    """Base of every model of the API: unknown fields refused; class names unique (they name the schemas)."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a second model of the same name from elsewhere: the document's schemas are keyed by name."""
        super().__pydantic_init_subclass__(**kwargs)
        other = _MODELS.get(cls.__name__)
        if other is not None and (other.__module__, other.__qualname__) != (cls.__module__, cls.__qualname__):
            raise TypeError(f"API model {cls.__name__} is already defined in {other.__module__}: choose another name")
        _MODELS[cls.__name__] = cls


class Body(Model):
    """A JSON request body: an object, with JSON's own types (a number in a string is not a number)."""

    model_config = ConfigDict(strict=True)


class Query(Model):
    """Query-string parameters: text converted to the field's type; an empty value is the same as none."""

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: object) -> object:
        return {k: v for k, v in data.items() if v != ""} if isinstance(data, dict) else data


class Path(Model):
    """Path parameters: text as routed. Their patterns document what exists; anything else is a 404."""


def model_named(name: str) -> type[BaseModel] | None:
    """The API model of that class name (the document's schemas are named after them), or None."""
    return _MODELS.get(name)


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
    import datetime as dt

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


Text = Annotated[str, Field(min_length=1), AfterValidator(_not_blank)]  # text that is not empty or blank
Day = Annotated[
    matching(r"^\d{4}-\d{2}-\d{2}$", "must be a date as YYYY-MM-DD", format="date"), AfterValidator(_iso_day)
]


# == the error shape ==================================================================================


class Problem(Model):
    """One problem of a request: the field as the client named it, and what is wrong."""

    field: str | None
    message: str


class FileProblem(Model):
    """One problem of a document (kb lint): where it is, and what is wrong."""

    file: str
    line: int
    field: str | None
    message: str
    severity: str


class ErrorDetails(BaseModel):
    """What the error is about: the (first) field, every problem of a request, and more for some errors."""

    model_config = ConfigDict(extra="allow")
    field: str | None = None
    problems: list[Problem] | None = None


class ErrorInfo(Model):
    """code (stable, for programs), message (for people, card numbers masked), details."""

    code: str
    message: str
    details: ErrorDetails | list[FileProblem] | None = None


class Error(Model):
    """The API's one error shape."""

    error: ErrorInfo


ERROR_STATUSES = {
    400: "Malformed: a body that is not JSON or too deep, a forbidden character, or (search, audit) a bad field",
    401: "Credentials needed: no or an unknown or revoked API key, where the route needs a user",
    403: "Forbidden: the API key lacks the route's scope, or the user's role is too low",
    404: "Not found",
    409: "Conflict: the object changed since the caller read it",
    413: "Too large: the body is over KB_MAX_REQUEST_BYTES",
    422: "Invalid: a field's value is wrong (every problem in details.problems), or the document fails lint",
    429: "Rate limited: retry after the Retry-After header's seconds",
    503: "Unavailable: no index yet, or storage failed; nothing was half written",
}
API_ERRORS = (400, 401, 403, 413, 429, 503)  # what any /api/ route may answer


def error_response(status: int) -> dict:
    """The response object of an error status, in the error shape."""
    response: dict = {
        "description": ERROR_STATUSES[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status == 429:
        response["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
    return response


def responses(answer: type[BaseModel] | dict | None, *errors: int, status: int = 200, common=API_ERRORS) -> dict:
    """A route's ``responses=``: its answer (a model) with its status, and its error statuses beyond ``common``."""
    found: dict = {status: answer}
    for code in sorted({*common, *errors}):
        found[code] = error_response(code)
    return found


# == turning pydantic's problems into the error shape =================================================


def _field(location: tuple, root: str) -> str:
    name = ""
    for part in location:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return (name or root)[:MAX_FIELD_NAME]


def _message(item: dict) -> str:
    kind = item["type"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("model_type", "model_attributes_type", "dict_type") and not item["loc"]:
        return "must be a JSON object"
    message = item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return re.sub(r"^(Input|String|Value|List|Dictionary|Object|Tuple|Decimal) should ", "must ", message)


def problems(error: ValidationError, root: str) -> list[dict]:
    """Every problem pydantic found, each naming its field (``filters.type``, ``tags[2]``) and the problem."""
    return [
        {"field": _field(item["loc"], root), "message": _message(item)}
        for item in error.errors(include_url=False, include_input=False)
    ]


def invalid_request(error: ValidationError) -> None:
    """flask-openapi3's validation callback: raise the area's error with every problem (kb/web/errors.py answers)."""
    model = _MODELS.get(error.title)
    roots = ((Body, "body"), (Query, "query string"), (Path, "path"))
    root = next((name for kind, name in roots if model is not None and issubclass(model, kind)), "request")
    raise _area_error(problems(error, root))


def _area_error(found: list[dict]) -> Exception:
    first = found[0]
    more = f" (and {len(found) - 1} more: see details.problems)" if len(found) > 1 else ""
    details = {"field": first["field"], "problems": found[:MAX_PROBLEMS]}
    area = current_app.blueprints.get(request.blueprint or "")
    make = getattr(area, "invalid", InputError)
    return make(f"{first['field']}: {first['message']}{more}", details)


# == areas ============================================================================================


class Area(APIBlueprint):
    """One area of the API: a Blueprint whose routes declare their models (flask-openapi3) under one tag.

    Args:
        name: the blueprint's name (``api_<area>``), the prefix of its endpoints.
        import_name: ``__name__``.
        tag: the heading its routes appear under in the reference.
        description: a sentence about the area, shown under the tag.
        invalid: what a request that fails its models raises: InputError (422) or QueryError (400), or any
            callable taking (message, details) that returns an exception to raise.
    """

    def __init__(
        self,
        name: str,
        import_name: str,
        *,
        tag: str,
        description: str = "",
        invalid: Callable[[str, dict], Exception] = InputError,
        **kwargs: Any,
    ):
        super().__init__(name, import_name, abp_tags=[Tag(name=tag, description=description or None)], **kwargs)
        self.invalid = invalid
        self.before_request(_body_is_an_object)


_BODY_MODELS: dict[str, type[BaseModel] | None] = {}


def _body_model(endpoint: str) -> type[BaseModel] | None:
    if endpoint not in _BODY_MODELS:
        view = current_app.view_functions[endpoint]
        _BODY_MODELS[endpoint] = get_type_hints(inspect.unwrap(view)).get("body")
    return _BODY_MODELS[endpoint]


def _body_is_an_object() -> None:
    """A route that takes a JSON body gets an object: never a list, a number, or a JSON text inside a string."""
    if request.endpoint is None or _body_model(request.endpoint) is None:
        return
    if not isinstance(request.get_json(silent=True), dict):
        raise _area_error([{"field": "body", "message": "must be a JSON object"}])


def make_app(import_name: str, version: str, **kwargs: Any) -> OpenAPI:
    """The Flask app, as flask-openapi3's OpenAPI (a Flask subclass): the routes of every Area are validated
    against their models and documented; kb/web/api_reference.py serves the document and the reference page."""
    return OpenAPI(
        import_name,
        info=Info(title="kb", version=version),
        doc_ui=False,  # kb serves its own reference page, under the app's Content-Security-Policy
        validation_error_status=400,
        validation_error_model=Error,
        validation_error_callback=invalid_request,
        **kwargs,
    )
