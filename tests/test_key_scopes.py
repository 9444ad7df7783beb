"""API key scopes: a key does only what its scopes name, never more than its user's role, on every route."""

import pytest

from kb.web.api import ROUTE_SCOPES
from kb.web.paths import MCP_PATH, takes_key
from tests.conftest import full_sop


@pytest.fixture
def authoring(shared_authoring):
    """Every test here runs on SQLite and on PostgreSQL (issue 14)."""
    return shared_authoring


NEW_TEXT = full_sop("pay-duplicate-charge", "Duplicate charges", "A customer sees two charges for one purchase.")


def key_for(authoring, name: str, *scopes: str) -> dict:
    """A new key for a user with these scopes: its Authorization header."""
    from kb import accounts, store

    db = store.connect(authoring.data)
    try:
        key, _ = accounts.create_key(db, name, "scoped", scopes)
    finally:
        db.close()
    return {"Authorization": f"Bearer {key}"}


def test_every_api_route_names_the_scope_a_key_needs(authoring):
    rules = {
        (method, rule.rule)
        for rule in authoring.app.url_map.iter_rules()
        if takes_key(rule.rule) and rule.rule != MCP_PATH  # /mcp: each tool's scope (kb/web/mcp.py TOOL_SCOPES)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert ("POST", "/retrieval") in rules  # Dify's External Knowledge API, outside /api/ (kb/web/paths.py)
    assert rules == set(ROUTE_SCOPES)


@pytest.mark.parametrize(
    "scopes, method, path, missing",
    [
        (("read",), "GET", "/api/v1/search?q=refund", "search"),
        (("search",), "GET", "/api/v1/sops", "read"),
        (("search",), "GET", "/api/v1/sops/pay-duplicate-charge", "read"),
        (("search", "read"), "GET", "/api/v1/audit", "admin"),
    ],
)
def test_a_key_without_the_scope_is_403_naming_it(authoring, scopes, method, path, missing):
    response = authoring.client.open(path, method=method, headers=key_for(authoring, "ada", *scopes))
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["code"] == "forbidden" and error["details"] == {"field": "scope", "scope": missing}
    assert f"lacks the {missing} scope" in error["message"]
    assert authoring.audit(action="permission_denied")[0]["actor"] == "ada"


def test_a_key_with_the_scope_works_and_anonymous_reading_is_unchanged(authoring):
    search = authoring.client.get("/api/v1/search?q=refund", headers=key_for(authoring, "agnes", "search"))
    assert search.status_code == 200 and search.get_json()["results"]
    assert authoring.client.get("/api/v1/sops").status_code == 200  # no key: anonymous reading
    assert authoring.client.get("/api/v1/sops", headers=key_for(authoring, "agnes", "read")).status_code == 200


def test_writing_and_reviewing_need_their_scopes_as_well_as_the_role(authoring):
    revision = authoring.revision("pay-duplicate-charge")
    body = {"sop_id": "pay-duplicate-charge", "markdown": NEW_TEXT, "base_revision": revision, "summary": "Edit"}
    read_only = key_for(authoring, "ann", "search", "read")
    refused = authoring.client.post("/api/v1/drafts", headers=read_only, json=body)
    assert refused.status_code == 403 and refused.get_json()["error"]["details"]["scope"] == "write"
    writer = key_for(authoring, "ann", "write")
    draft = authoring.client.post("/api/v1/drafts", headers=writer, json=body)
    assert draft.status_code == 201, draft.get_json()
    draft_id = draft.get_json()["id"]
    assert authoring.client.post(f"/api/v1/drafts/{draft_id}/submit", headers=writer).status_code == 200
    approver_without_review = key_for(authoring, "bob", "search", "read", "write")
    approve = f"/api/v1/drafts/{draft_id}/approve"
    denied = authoring.client.post(approve, headers=approver_without_review)
    assert denied.status_code == 403 and denied.get_json()["error"]["details"]["scope"] == "review"
    assert authoring.client.post(approve, headers=key_for(authoring, "bob", "review")).status_code == 200


def test_a_role_lowered_after_the_key_was_made_bounds_it_on_the_next_request(authoring):
    from kb import accounts, store

    headers = key_for(authoring, "bob", "review", "read")
    assert authoring.client.get("/api/v1/sops", headers=headers).status_code == 200
    db = store.connect(authoring.data)
    with db:
        accounts.set_role(db, "bob", "agent")
    db.close()
    response = authoring.client.post("/api/v1/drafts/1/approve", headers=headers)
    assert response.status_code == 403 and response.get_json()["error"]["details"]["scope"] == "review"
