"""The API's contract: the OpenAPI document is valid 3.1, names every route with its scope and errors, its reference
page is served locally under the CSP, and schemathesis finds the app keeping to it under fuzzing."""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
import schemathesis
from openapi_spec_validator import OpenAPIV31SpecValidator
from schemathesis.config import SchemathesisConfig

import kb
from kb.web.api import ANONYMOUS_SCOPES, PUBLIC, ROUTE_SCOPES
from kb.web.validation import character_problem
from tests.conftest import CHROMIUM_ARGS, CHROMIUM_PATH, serve_in_thread

DOCUMENT = "/api/v1/openapi.json"
METHODS = ("get", "put", "post", "delete", "patch")
EXAMPLES = 25  # generated requests per operation in the fuzzing phase, beside the coverage phase's own
seen: Counter = Counter()  # requests sent per operation by the schemathesis test (printed at the end)


def _document(fuzz) -> dict:
    response = fuzz.client.get(DOCUMENT)
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def _operations(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item if method in METHODS}


def test_the_document_is_valid_openapi_3_1_naming_kb_and_its_version(fuzz):
    document = _document(fuzz)
    OpenAPIV31SpecValidator(document).validate()
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "kb" and document["info"]["version"] == kb.__version__
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`kb keys create`), as `Authorization: Bearer <key>`.",
    }


def test_every_api_route_of_the_app_is_in_the_document(fuzz):
    routes = {
        (method, re.sub(r"<(?:[^<:>]+:)?([^<>]+)>", r"{\1}", rule.rule))
        for rule in fuzz.app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") or rule.rule == "/healthz"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes and routes == _operations(_document(fuzz))


def test_each_operation_names_its_scope_and_answers_errors_in_the_one_shape(fuzz):
    document = _document(fuzz)
    for path, item in document["paths"].items():
        rule = re.sub(r"\{([^}]+)\}", lambda m: "<path:category_id>" if m[1] == "category_id" else f"<{m[1]}>", path)
        for method, operation in item.items():
            scope = ROUTE_SCOPES.get((method.upper(), rule))
            assert operation["x-kb-scope"] == scope, (method, path)
            if scope == PUBLIC or scope is None:
                assert operation["security"] == [{}]
            elif scope in ANONYMOUS_SCOPES:
                assert operation["security"] == [{"apiKey": [scope]}, {}]
            else:
                assert operation["security"] == [{"apiKey": [scope]}]
            assert operation["summary"] and {"200", "201"} & set(operation["responses"]), (method, path)
            errors = {code: answer for code, answer in operation["responses"].items() if code >= "400"}
            assert {"400", "413"} <= set(errors), (method, path)
            if path.startswith("/api/"):
                assert {"401", "429"} <= set(errors), (method, path)
            for code, answer in errors.items():
                if path != "/healthz" or code != "503":
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, code)


def test_the_document_needs_no_key_takes_any_valid_one_and_refuses_a_bad_one(fuzz):
    assert ROUTE_SCOPES[("GET", DOCUMENT)] == PUBLIC
    assert fuzz.client.get(DOCUMENT).status_code == 200
    from kb import accounts, store

    db = store.connect(fuzz.data)
    try:
        key, _ = accounts.create_key(db, "agnes", "search only", ["search"])
    finally:
        db.close()
    assert fuzz.client.get(DOCUMENT, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    refused = fuzz.client.get(DOCUMENT, headers={"Authorization": "Bearer kb_nonsense"})
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "unauthorized"


def test_limits_from_settings_appear_as_this_instance_has_them(fuzz):
    from kb.web import create_app

    app = create_app({**fuzz.settings, "MAX_K": 7, "MAX_QUERY_CHARS": 300, "TESTING": True})
    document = app.test_client().get(DOCUMENT).get_json()
    search = {p["name"]: p["schema"] for p in document["paths"]["/api/v1/search"]["get"]["parameters"]}
    assert search["q"]["maxLength"] == 300 and search["k"]["anyOf"][0]["maximum"] == 7
    body = document["components"]["schemas"]["SearchBody"]["properties"]
    assert body["query"]["maxLength"] == 300 and body["k"]["anyOf"][0]["maximum"] == 7
    refused = app.test_client().get("/api/v1/search?q=refund&k=8")
    assert refused.status_code == 400 and refused.get_json()["error"]["details"]["field"] == "k"


class _Links(HTMLParser):
    """Every URL a page loads or links to (src, href), and any inline script or style."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._tag = None

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        self.urls += [values[name] for name in ("src", "href") if values.get(name)]
        if "style" in values:
            self.inline.append(f"style attribute on <{tag}>")
        self._tag = tag if tag in ("script", "style") and "src" not in values else None

    def handle_data(self, data):
        if self._tag and data.strip():
            self.inline.append(f"<{self._tag}> {data.strip()[:40]}")


def test_the_reference_page_loads_only_files_of_this_site_and_no_inline_code(fuzz):
    response = fuzz.client.get("/api-reference")
    assert response.status_code == 200 and response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    page = _Links()
    page.feed(response.get_data(as_text=True))
    assert page.inline == []
    assert "/api/v1/openapi.json" in page.urls and "/static/api-reference.js" in page.urls
    assert "/static/swagger-ui/js/swagger-ui-bundle.js" in page.urls
    for url in page.urls:
        assert url.startswith("/") and not url.startswith("//"), url  # this site only: no CDN, no other host
        loaded = fuzz.client.get(url)
        assert loaded.status_code == 200, url
        loaded.close()


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM_PATH.exists(), reason="Debian's chromium is not installed")
def test_the_reference_page_shows_every_operation_in_chromium_under_the_csp(fuzz):
    from playwright.sync_api import sync_playwright

    url, server = serve_in_thread(fuzz.app)
    refused, elsewhere = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM_PATH), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
            page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(url) else None)
            page.goto(url + "/api-reference")
            page.wait_for_selector(".opblock-summary-path")
            shown = set(page.locator(".opblock-summary-path").all_inner_texts())
            browser.close()
    finally:
        server.shutdown()
    paths = {path.replace("\u200b", "") for path in shown}
    assert {"/api/v1/search", "/api/v1/drafts/{draft_id}/approve", "/healthz"} <= paths
    assert refused == [] and elsewhere == []


# == schemathesis: every operation of the document, fuzzed against the app in process (WSGI) ===============


def _clean_text(value: object) -> bool:
    """No text kb/web/validation.py refuses for its characters (a NUL, a control character): the schema cannot
    say so field by field, so positive cases leave them out (negative ones keep them: they must be refused)."""
    if isinstance(value, str):
        return character_problem(value) is None
    if isinstance(value, dict):
        return all(_clean_text(k) and _clean_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_clean_text(v) for v in value)
    return True


def _contract() -> schemathesis.schemas.BaseSchema:
    """The document as schemathesis loads it, with bounded examples and every default check.

    It is read from an app over an empty folder (the document does not depend on the content), made when
    the module is collected, since @parametrize needs the operations then; the requests go to the `fuzz`
    app, which has the same settings and a real index.
    """
    from kb.web import create_app

    folder = Path(_FOLDER.name)
    app = create_app({"CONTENT_DIR": folder, "DATA_DIR": folder / "data", "TESTING": True})
    config = SchemathesisConfig.from_dict(
        {
            "seed": 12,
            "cache": {"enabled": False},
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            "checks": {
                # Valid per the schema yet refused on purpose, beyond what a schema can say: 422 for a
                # document that fails kb lint or a draft in the wrong state, 400 for an audit window whose
                # end is before its start.
                "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422"]},
            },
        }
    )
    schema = schemathesis.openapi.from_wsgi(DOCUMENT, app, config=config)

    @schema.hook
    def filter_case(context, case):  # noqa: ARG001 - the hook's signature
        if case.meta is None or not case.meta.generation.mode.is_positive:
            return True
        return all(_clean_text(part) for part in (case.path_parameters, case.query, case.body))

    return schema


_FOLDER = tempfile.TemporaryDirectory(prefix="kb-contract-")
contract = _contract()


@contract.parametrize()
def test_every_operation_keeps_to_the_contract(case, fuzz):
    seen[case.operation.label] += 1
    # ada is an admin: her key has every scope
    case.call_and_validate(app=fuzz.app, headers=fuzz.headers("ada"))


def test_zz_report_the_fuzzing(capsys):
    """Print what the schemathesis test sent (run with -s to see it)."""
    with capsys.disabled():
        print(f"\nschemathesis: {len(seen)} operations, {sum(seen.values())} requests")
        for label, count in sorted(seen.items()):
            print(f"  {count:4d}  {label}")
