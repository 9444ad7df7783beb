"""The API's contract, served: the OpenAPI 3.1 document built from the areas' models, and its reference page.

GET /api/v1/openapi.json answers the document (no key needed); GET /api-reference shows it with Swagger UI,
whose files come from the flask-openapi3-swagger package and are served from /static/swagger-ui/ (no CDN),
started by kb/web/static/api-reference.js so the page runs under the app's Content-Security-Policy.
"""

from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path
from typing import get_type_hints

import flask_openapi3_swagger
from flask import Blueprint, Flask, current_app, jsonify, render_template

from kb.accounts import SCOPE_ROLES
from kb.web.api import ANONYMOUS_SCOPES, PUBLIC, anonymous_allowed, route_role, route_scope
from kb.web.contract import Area, model_named, responses
from kb.web.fields import setting_limits

SWAGGER_UI = Path(flask_openapi3_swagger.__file__).parent / "templates" / "swagger"
SECURITY_SCHEME = "apiKey"
DESCRIPTION = """\
The JSON API of kb: hybrid search over payment-support SOPs, the documents with their revisions and
categories, and the authoring workflow (drafts, review, publish).

**Keys.** Search and reading answer without credentials. Send an API key as `Authorization: Bearer <key>`
(made with `kb keys create --user NAME --name LABEL --scope read --scope write`); each operation names the
scope its key needs, and a key never does more than its user's role allows. A key without the scope gets
403 naming it; an unknown or revoked key 401.

**Errors** answer in one shape, `{"error": {"code", "message", "details"}}`. A request whose fields are
wrong lists every problem at once in `details.problems` (each `{"field", "message"}`), with the first field
in `details.field`; unknown fields are refused, in bodies and query strings. Card numbers are masked in
every message.
"""

bp = Area("api_reference", __name__, tag="Reference", description="This document.")
assets = Blueprint("api_reference_page", __name__, static_folder=SWAGGER_UI, static_url_path="/static/swagger-ui")
_OPENAPI_ANSWER = {
    "description": "The OpenAPI 3.1 document of this API",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


@bp.get("/api/v1/openapi.json", responses=responses(_OPENAPI_ANSWER, common=(400, 401, 413, 429, 503)))
def openapi_json():
    """The OpenAPI 3.1 document of this API (no key needed)."""
    return jsonify(document(current_app))


@assets.get("/api-reference")
def reference_page():
    """The API reference: the OpenAPI document in Swagger UI, served locally."""
    return render_template("api_reference.html")


def document(app: Flask) -> dict:
    """The app's OpenAPI document (built once per app): flask-openapi3's, with kb's info, security and limits."""
    built = app.extensions["kb"].get("openapi")
    if built is None:
        built = app.extensions["kb"]["openapi"] = _build(app)
    return built


def _openapi_path(rule: str) -> str:
    return re.sub(r"<([^<:]+:)?", "{", rule).replace(">", "}")


def _build(app: Flask) -> dict:
    spec = copy.deepcopy(app.api_doc)
    spec["info"] = {"title": "kb", "version": spec["info"]["version"], "description": DESCRIPTION}
    spec.setdefault("components", {})["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`kb keys create`), as `Authorization: Bearer <key>`.",
        }
    }
    settings = app.config["KB"]
    routes = {
        (_openapi_path(rule.rule), method.lower()): rule for rule in app.url_map.iter_rules() for method in rule.methods
    }
    for uri, item in spec["paths"].items():
        for method, operation in item.items():
            rule = routes[(uri, method)]
            scope = route_scope(method.upper(), rule.rule)
            role = route_role(method.upper(), rule.rule)
            _describe_access(operation, scope, anonymous_allowed(method.upper(), rule.rule), role)
            query = get_type_hints(inspect.unwrap(app.view_functions[rule.endpoint])).get("query")
            limits = setting_limits(query) if query else {}
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and not parameter["required"]:
                    parameter["allowEmptyValue"] = True  # contract.Query: an empty value is the same as none
                if parameter["in"] == "query" and parameter["name"] in limits:
                    _limit(parameter["schema"], limits[parameter["name"]], settings)
    for name, schema in spec["components"]["schemas"].items():
        model = model_named(name)
        for field, setting in (setting_limits(model) if model else {}).items():
            _limit(schema["properties"][field], setting, settings)
    return spec


def _describe_access(operation: dict, scope: str | None, anonymous: bool, role: str | None = None) -> None:
    """The operation's security (the key's scope; anonymous too where allowed) and a sentence saying so."""
    if scope == PUBLIC:
        operation["security"] = [{}]
        note = "Open to anyone: no key needed."
    elif scope is None:
        operation["security"] = [{}]
        note = "Takes no API key."
    elif role is not None:
        operation["security"] = [{SECURITY_SCHEME: [scope]}]
        note = f"An API key with the `{scope}` scope, of a user with at least the {role} role."
    elif anonymous:
        operation["security"] = [{SECURITY_SCHEME: [scope]}, {}]
        note = f"Anonymous, or an API key with the `{scope}` scope."
    elif scope in ANONYMOUS_SCOPES:
        operation["security"] = [{SECURITY_SCHEME: [scope]}]
        note = f"An API key with the `{scope}` scope (no anonymous callers: it stores who said it)."
    else:
        operation["security"] = [{SECURITY_SCHEME: [scope]}]
        note = f"An API key with the `{scope}` scope, of a user with at least the {SCOPE_ROLES[scope]} role."
    operation["x-kb-scope"] = scope
    operation["description"] = (operation.get("description", "") + "\n\n" + note).strip()


def _limit(schema: dict, setting: str, settings: dict) -> None:
    """Write a setting-bound limit (kb/web/fields.py at_most, chars_at_most) as this app's maximum or maxLength."""
    for branch in [schema, *schema.get("anyOf", [])]:
        if branch.get("type") == "integer":
            branch["maximum"] = settings[setting]
        elif branch.get("type") == "string":
            branch["maxLength"] = settings[setting]
    note = f"At most KB_{setting} ({settings[setting]:,} here)."
    schema["description"] = (schema.get("description", "") + " " + note).strip()
