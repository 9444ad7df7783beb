"""Dify's External Knowledge API: POST /retrieval, so that Dify can use kb as an external knowledge base.

Dify calls ``<endpoint>/retrieval`` with ``Authorization: Bearer <API key>`` and
``{"knowledge_id", "query", "retrieval_setting": {"top_k", "score_threshold"}, "metadata_condition"?}``;
kb answers ``{"records": [{"content", "score", "title", "metadata"}]}``, ``{"records": []}`` when nothing
passes. What a knowledge id names, how records are scored and which metadata conditions hold is
kb/retrieval.py's and kb/conditions.py's; this module checks the request and speaks the protocol.

The route is outside /api/v1 because Dify appends /retrieval to the endpoint a user registers
(kb/web/paths.py); it takes API keys only, with the search scope (kb/web/api.py ROUTE_SCOPES), and counts as
a search for rate limits (kb/web/limits.py). Every error on it, from any hook or this view, is answered in
Dify's shape ``{"error_code", "error_msg"}`` plus kb's ``details`` (the field, or every problem):

    error_code  HTTP  when
    1001        401   no Authorization header, or one not of the form "Bearer <key>"
    1002        403   an unknown or revoked key, or a key without the search scope (Dify's own check of an
                      endpoint reports 403 as "Authorization failed", so a wrong key is caught when it is added)
    2001        404   knowledge_id names no knowledge
    400         400   a malformed body or field: every problem, each naming its field
    413, 429, 503, 500  a body too large, too many requests (Retry-After), no index to serve, a fault

The request and response models below are pydantic models, validated in this view (strict types, unknown
fields refused); they document the contract for an OpenAPI generator too.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from flask import Blueprint, Flask, g, jsonify, request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from kb.conditions import OPERATORS, Condition, check_condition, names_problem, operator_problem, value_problem
from kb.errors import AuthRequiredError, QueryError
from kb.redaction import redact
from kb.retrieval import retrieve
from kb.web import auth, errors
from kb.web.extensions import searcher
from kb.web.searches import log_query

log = logging.getLogger(__name__)
bp = Blueprint("api_retrieval", __name__)
PATH = "/retrieval"
MAX_KNOWLEDGE_ID = 200
MAX_CONDITIONS = 20
INVALID_AUTHORIZATION = (1001, 401)  # Dify's error code, and the HTTP status
AUTHORIZATION_FAILED = (1002, 403)
KNOWLEDGE_MISSING = (2001, 404)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class RetrievalSetting(_Strict):
    """How many records, and the lowest score accepted."""

    top_k: int = Field(description="The most records to return, 1 to KB_MAX_K (50 by default).")
    score_threshold: float = Field(ge=0.0, le=1.0, description="The lowest score returned (Dify sends 0 when off).")

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, value: int, info: ValidationInfo) -> int:
        most = (info.context or {}).get("max_k", 50)
        if not 1 <= value <= most:
            raise ValueError(f"must be a whole number from 1 to {most}")
        return value


def _names(value: object) -> object:
    problem = names_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _json_value(value: object) -> object:
    """A condition's value as Dify types it: a string, a number, a list of strings, or null."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    strings = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if value is None or isinstance(value, str) or number or strings:
        return value
    raise ValueError("must be a string, a number, a list of strings or null")


class MetadataConditionItem(_Strict):
    """One condition on a record's metadata (kb/conditions.py lists the fields and the operators each takes)."""

    name: Annotated[str | list[str], BeforeValidator(_names)] = Field(
        description="A metadata field, or a list of them (the condition holds when it holds for any)."
    )
    comparison_operator: Literal[OPERATORS] = Field(description="One of Dify's comparison operators.")
    value: Annotated[str | list[str] | int | float | None, BeforeValidator(_json_value)] = Field(
        default=None, validate_default=True, description="Omitted (or null) for empty and not empty."
    )

    @field_validator("comparison_operator")
    @classmethod
    def _operator_fits_the_fields(cls, operator: str, info: ValidationInfo) -> str:
        problem = operator_problem(info.data["name"], operator) if "name" in info.data else None
        if problem:
            raise ValueError(problem)
        return operator

    @field_validator("value")
    @classmethod
    def _value_fits_the_operator(cls, value: object, info: ValidationInfo) -> object:
        operator = info.data.get("comparison_operator")
        problem = value_problem(operator, value) if operator is not None else None
        if problem:
            raise ValueError(problem)
        return value


class MetadataCondition(_Strict):
    """Dify's metadata_condition: conditions joined by and (the default) or or; null conditions are none."""

    logical_operator: Literal["and", "or"] | None = "and"
    conditions: list[MetadataConditionItem] | None = Field(default=None, max_length=MAX_CONDITIONS)


class RetrievalRequest(_Strict):
    """The body Dify sends."""

    knowledge_id: str = Field(
        min_length=1, max_length=MAX_KNOWLEDGE_ID, description="kb, business_line:<line> or category:<id>."
    )
    query: str = Field(description="The user's question; card numbers are masked before anything else.")
    retrieval_setting: RetrievalSetting
    metadata_condition: MetadataCondition | None = None

    @field_validator("query")
    @classmethod
    def _query(cls, value: str, info: ValidationInfo) -> str:
        most = (info.context or {}).get("max_chars", 2000)
        if not value.strip():
            raise ValueError("must be a non-empty string")
        if len(value) > most:
            raise ValueError(f"longer than {most} characters ({len(value)})")
        return value


class RetrievalRecordMetadata(BaseModel):
    """Where to cite a record, and its own similarity to the query."""

    sop_id: str
    anchor: str
    heading: str
    revision: str | None
    url: str = Field(description="The section on kb's SOP page.")
    business_line: str
    categories: list[str]
    path: str
    type: str
    similarity: float | None = Field(description="The section's cosine similarity; null when search is degraded.")


class RetrievalRecord(BaseModel):
    """One record: an SOP's cited section as plain text (shared values resolved)."""

    content: str
    score: float = Field(ge=0.0, le=1.0)
    title: str
    metadata: RetrievalRecordMetadata


class RetrievalAnswer(BaseModel):
    """Records best first, scores never increasing."""

    records: list[RetrievalRecord]


class DifyError(BaseModel):
    """An error in Dify's shape, with kb's details."""

    error_code: int
    error_msg: str
    details: dict | list | None = None


def dify_error(status: int, code: str, message: str, details: object) -> tuple[dict, int]:
    """kb's error (status, code, message, details) in Dify's shape, with Dify's code and status where it has one."""
    error_code = status
    if code == "unauthorized":  # a key in the right form that no account holds (unknown or revoked) failed
        has_key = auth.bearer_key(request.headers.get("Authorization", "")) is not None
        error_code, status = AUTHORIZATION_FAILED if has_key else INVALID_AUTHORIZATION
    elif code == "forbidden":
        error_code, status = AUTHORIZATION_FAILED
    elif code == "not_found":
        error_code, status = KNOWLEDGE_MISSING
    return DifyError(error_code=error_code, error_msg=message, details=details).model_dump(), status


def register(app: Flask) -> None:
    """Answer every error on /retrieval in Dify's shape."""
    errors.register_shape(app, PATH, dify_error)


def _field(location: tuple) -> str:
    """A pydantic error location as the client names the field: retrieval_setting.top_k, conditions[0].value."""
    name = ""
    for part in location:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else str(part)
    return name


def _problems(error: ValidationError) -> list[dict]:
    """Every problem pydantic found, each naming its field as the client does (retrieval_setting.top_k)."""
    wording = {
        "missing": "required",
        "extra_forbidden": "unknown field",
        "int_type": "must be a whole number",
        "float_type": "must be a number",
        "string_type": "must be a string",
        "model_type": "must be an object",
        "dict_type": "must be an object",
        "list_type": "must be a list",
    }
    problems: dict[str, str] = {}
    for item in error.errors(include_url=False, include_input=False):
        ctx = item.get("ctx", {})
        message = wording.get(item["type"]) or {
            "literal_error": f"must be {ctx.get('expected')}",
            "greater_than_equal": f"must be at least {ctx.get('ge')}",
            "less_than_equal": f"must be at most {ctx.get('le')}",
        }.get(item["type"], str(ctx.get("error") or item["msg"]))
        problems.setdefault(_field(tuple(item["loc"])) or "body", message[:1].lower() + message[1:])
    return [{"field": field, "message": message} for field, message in problems.items()]


def _conditions(parsed: MetadataCondition | None) -> tuple[list[Condition], str]:
    """The checked conditions (the models checked every part already) and the logical operator."""
    if parsed is None:
        return [], "and"
    found = [check_condition(c.name, c.comparison_operator, c.value)[2] for c in parsed.conditions or []]
    return [c for c in found if c is not None], parsed.logical_operator or "and"


def _refuse(problems: list[dict]) -> QueryError:
    message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return QueryError(message, {"field": problems[0]["field"], "problems": problems})


@bp.post(PATH)
def retrieval():
    """Dify's External Knowledge API: records for a query from one knowledge (see the module docstring)."""
    if not g.get("via_key"):
        raise AuthRequiredError(
            "Authorization: send 'Bearer <API key>' (a kb key with the search scope)", {"field": "Authorization"}
        )
    settings = searcher().settings
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise QueryError("body: must be a JSON object (Content-Type: application/json)", {"field": "body"})
    context = {"max_k": settings["MAX_K"], "max_chars": settings["MAX_QUERY_CHARS"]}
    try:
        parsed = RetrievalRequest.model_validate(body, context=context)
    except ValidationError as error:
        raise _refuse(_problems(error)) from None
    conditions, logical = _conditions(parsed.metadata_condition)
    setting = parsed.retrieval_setting
    found = retrieve(
        searcher(), parsed.knowledge_id, parsed.query, setting.top_k, setting.score_threshold, conditions, logical
    )
    log.info(
        "retrieval knowledge_id=%r top_k=%d threshold=%s conditions=%d records=%d took_ms=%.1f degraded=%s query=%r",
        redact(parsed.knowledge_id),
        setting.top_k,
        setting.score_threshold,
        len(conditions),
        len(found.records),
        found.took_ms,
        found.degraded,
        found.query,
    )
    top = found.records[0].metadata["sop_id"] if found.records else None
    log_query(found.query, len(found.records), top, "hybrid", "retrieval")
    root = request.host_url.rstrip("/")
    records = [
        RetrievalRecord(
            content=r.content,
            score=r.score,
            title=r.title,
            metadata=RetrievalRecordMetadata(**{**r.metadata, "url": root + r.metadata["url"]}),
        )
        for r in found.records
    ]
    return jsonify(RetrievalAnswer(records=records).model_dump())
