"""Every /api/v1 route and every field of it, sent hostile values: never a 5xx, always the one error shape."""

from __future__ import annotations

import json

import pytest

HOSTILE_TEXT = [
    "",
    " ",
    "0",
    "-1",
    "99999999999999999999999",
    "1e309",
    "NaN",
    "null",
    "[]",
    "%",
    "%2e%2e%2f",
    "../../etc/passwd",
    "a" * 5000,
    "ｒｅｆｕｎｄ",
    "\u202eevil",
    "💥",
    "4111 1111 1111 1111",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "g" * 40,
    "0" * 40,
    "2026-13-45",
    "9999-12-31",
    "0001-01-01",
    "²",  # a digit to str.isdigit, not to int()
    "١٢",
]
HOSTILE_JSON = [None, True, 0, -1, 2**70, 1.5, "", "x" * 300_000, [], ["a"], {}, {"a": {"b": [1]}}, *HOSTILE_TEXT[:8]]

QUERY_FIELDS = {
    "/api/v1/search": ["q", "k", "mode", "business_line", "category", "type", "as_of"],
    "/api/v1/sops/pay-duplicate-charge": ["as_of"],
    "/api/v1/drafts": ["status", "sop_id"],
    "/api/v1/sops/pay-duplicate-charge/diff": ["from", "to"],
    "/api/v1/audit": ["actor", "action", "target", "outcome", "since", "until", "limit", "offset"],
}
PATH_TEMPLATES = [
    "/api/v1/sops/{}",
    "/api/v1/sops/{}/revisions",
    "/api/v1/sops/pay-duplicate-charge/revisions/{}",
    "/api/v1/categories/{}",
    "/api/v1/drafts/{}",
]
BODY_FIELDS = {
    ("POST", "/api/v1/search"): {"query": "refund", "k": 3, "mode": "hybrid", "filters": {}, "as_of": None},
    ("POST", "/api/v1/assist"): {
        "subject": "charged twice",
        "body": "refund",
        "business_line": None,
        "category": None,
        "k": 3,
    },
    ("POST", "/api/v1/drafts"): {
        "sop_id": "pay-duplicate-charge",
        "markdown": "x",
        "base_revision": None,
        "summary": "s",
    },
    ("PUT", "/api/v1/drafts/1"): {"markdown": "x", "summary": "s", "base_revision": None},
    ("POST", "/api/v1/drafts/1/return"): {"comment": "c"},
    ("POST", "/api/v1/sops/pay-duplicate-charge/restore"): {"revision": "0" * 40},
}


def _check(response, what: str, failures: list[str]) -> None:
    if response.status_code >= 500:
        failures.append(f"{what}: {response.status_code} {response.get_data(as_text=True)[:200]}")
    elif response.status_code >= 400:
        error = (response.get_json(silent=True) or {}).get("error")
        if not (isinstance(error, dict) and {"code", "message", "details"} <= set(error)):
            failures.append(f"{what}: {response.status_code} not in the error shape")


@pytest.mark.parametrize(
    ("path", "field"), [(p, f) for p, fields in QUERY_FIELDS.items() for f in fields], ids=lambda v: str(v)
)
def test_query_string_fields_never_answer_5xx(fuzz, path, field):
    failures: list[str] = []
    for value in HOSTILE_TEXT:
        for user in (None, "ada"):
            response = fuzz.call("GET", path, user, query_string={"q": "refund", field: value})
            _check(response, f"{field}={value[:30]!r} as {user}", failures)
    assert failures == []


@pytest.mark.parametrize("template", PATH_TEMPLATES)
def test_path_segments_never_answer_5xx(fuzz, template):
    failures: list[str] = []
    for value in [v for v in HOSTILE_TEXT if v.strip() and "/" not in v and "%" not in v]:
        response = fuzz.call("GET", template.format(value), "ada")
        if response.status_code != 404 or response.get_json(silent=True) is not None:  # a route miss is a 404 page
            _check(response, f"{template.format(value[:30])}", failures)
    assert failures == []


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [(m, p, f) for (m, p), body in BODY_FIELDS.items() for f in body],
    ids=lambda v: str(v),
)
def test_json_fields_never_answer_5xx(fuzz, method, path, field):
    base = BODY_FIELDS[(method, path)]
    failures: list[str] = []
    for value in HOSTILE_JSON:
        body = json.dumps({**base, field: value})
        for user in ("ann", "bob"):
            response = fuzz.call(method, path, user, data=body, content_type="application/json")
            _check(response, f"{field}={str(value)[:30]!r} as {user}", failures)
    assert failures == []


PAGE_FIELDS = {
    "/": ["q", "mode", "business_line", "category", "type", "as_of"],
    "/drafts": ["status"],
    "/sops/pay-duplicate-charge/as-of": ["date"],
    "/sops/pay-duplicate-charge/diff": ["from", "to"],
    "/admin/audit": ["actor", "action", "target", "outcome", "since", "until", "limit", "offset"],
}
PAGE_PATHS = [
    "/sops/{}",
    "/sops/{}/history",
    "/sops/{}/edit",
    "/sops/pay-duplicate-charge/revisions/{}",
    "/categories/{}",
]
FORMS = {
    "/drafts/preview": ["body", "title"],
    "/drafts/save": ["sop_id", "summary", "base_revision", "title", "effective", "categories", "body", "draft_id"],
    "/drafts/1/return": ["comment"],
    "/sops/pay-duplicate-charge/restore": ["revision"],
}


@pytest.fixture(scope="module")
def admin_page(fuzz):
    """A browser session of the admin (who may see every page), with its CSRF token."""
    import re

    client = fuzz.app.test_client()
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    assert (
        client.post("/login", data={"name": "ada", "password": "ada-password-123", "csrf_token": token}).status_code
        == 303
    )
    page = client.get("/sops/new").get_data(as_text=True)
    return client, re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _check_page(response, what: str, failures: list[str]) -> None:
    if response.status_code >= 500:
        failures.append(f"{what}: {response.status_code}")


@pytest.mark.parametrize(("path", "field"), [(p, f) for p, fs in PAGE_FIELDS.items() for f in fs], ids=lambda v: str(v))
def test_page_query_fields_never_answer_5xx(admin_page, path, field):
    client, _ = admin_page
    failures: list[str] = []
    for value in HOSTILE_TEXT:
        _check_page(client.get(path, query_string={"q": "refund", field: value}), f"{field}={value[:30]!r}", failures)
    assert failures == []


@pytest.mark.parametrize("template", PAGE_PATHS)
def test_page_path_segments_never_answer_5xx(admin_page, template):
    client, _ = admin_page
    failures: list[str] = []
    for value in [v for v in HOSTILE_TEXT if v.strip() and "/" not in v and "%" not in v]:
        _check_page(client.get(template.format(value)), template.format(value[:30]), failures)
    assert failures == []


@pytest.mark.parametrize(("path", "field"), [(p, f) for p, fs in FORMS.items() for f in fs], ids=lambda v: str(v))
def test_form_fields_never_answer_5xx(admin_page, path, field):
    client, token = admin_page
    failures: list[str] = []
    for value in HOSTILE_TEXT:
        data = {
            "csrf_token": token,
            "sop_id": "pay-duplicate-charge",
            "summary": "s",
            "body": "## Purpose\nx",
            field: value,
        }
        _check_page(client.post(path, data=data), f"{field}={value[:30]!r}", failures)
    assert failures == []
