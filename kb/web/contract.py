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
included; an empty query-string value counts as absent. Field types (setting-bound numbers and text,
patterns, dates, kb's own checks) are in kb/web/fields.py.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable
from typing import Any, get_type_hints

from flask import current_app, request
from flask_openapi3 import APIBlueprint, Info, OpenAPI, Tag
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from kb.errors import InputError
from kb.web.fields import Day, at_most, chars_at_most, checked, matching  # field types: importable from here too

__all__ = [
    "API_ERRORS",
    "Area",
    "Body",
    "Day",
    "Error",
    "FileProblem",
    "Model",
    "Path",
    "Query",
    "at_most",
    "chars_at_most",
    "checked",
    "make_app",
    "matching",
    "model_named",
    "responses",
]

MAX_PROBLEMS = 50  # problems listed in one answer; the message counts the rest
MAX_FIELD_NAME = 100  # characters of a client's field name echoed back
_MODELS: dict[str, type[BaseModel]] = {}
_SCHEMAS: dict[tuple, dict[str, Any]] = {}


class Model(BaseModel):
    """Base of every model of the API: unknown fields refused; class names unique (they name the schemas)."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """pydantic's JSON schema, made once per model and arguments: flask-openapi3 asks for it on every
        request that has query parameters (5 ms for the search's, each time)."""
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in _SCHEMAS:
            _SCHEMAS[key] = super().model_json_schema(*args, **kwargs)
        return copy.deepcopy(_SCHEMAS[key])

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
    503: "Unavailable: no index yet, storage failed, or the content remote cannot be reached (then with Retry-After); "
    "nothing was half written",
}
API_ERRORS = (400, 401, 403, 413, 429, 503)  # what any /api/ route may answer


def error_response(status: int) -> dict:
    """The response object of an error status, in the error shape."""
    response: dict = {
        "description": ERROR_STATUSES[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status in (429, 503):  # a 503 carries it when a retry may succeed (the content remote out of reach)
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
