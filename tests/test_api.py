import pytest

RESULT_KEYS = {
    "sop_id",
    "title",
    "type",
    "business_line",
    "categories",
    "section",
    "url",
    "snippet",
    "score",
    "revision",
    "other_sections",
    "effective",
    "review_by",
    "badges",
}


def test_get_search_returns_ranked_cited_sections(client):
    response = client.get("/api/v1/search", query_string={"q": "customer charged twice", "k": 3})
    assert response.status_code == 200
    body = response.get_json()
    assert body["query"] == "customer charged twice" and body["took_ms"] >= 0
    assert len(body["results"]) == 3
    first = body["results"][0]
    assert set(first) == RESULT_KEYS
    assert first["sop_id"] == "pay-duplicate-charge"
    assert first["url"] == f"/sops/pay-duplicate-charge#{first['section']['anchor']}"
    assert len(first["revision"]) == 40


def test_post_search_with_filters(client):
    response = client.post(
        "/api/v1/search", json={"query": "refund", "k": 5, "mode": "keyword", "filters": {"type": "policy"}}
    )
    assert response.status_code == 200
    assert {r["type"] for r in response.get_json()["results"]} == {"policy"}


def test_get_search_filters_by_business_line(client):
    body = client.get("/api/v1/search?q=refund&business_line=e-commerce&k=10").get_json()
    assert body["results"] and {r["business_line"] for r in body["results"]} <= {"e-commerce", "all"}


def test_query_is_echoed_redacted(client):
    body = client.get("/api/v1/search", query_string={"q": "card 4111-1111-1111-1111 declined"}).get_json()
    assert body["query"] == "card [card ending 1111] declined"


def test_snippets_are_escaped_with_only_mark_added(client):
    response = client.get("/api/v1/search", query_string={"q": "<script>alert(1)</script> refund", "k": 5})
    body = response.get_json()
    assert response.mimetype == "application/json"  # the query is data, echoed as typed, never as HTML
    assert body["query"] == "<script>alert(1)</script> refund" and body["results"]
    for result in body["results"]:
        cleaned = result["snippet"].replace("<mark>", "").replace("</mark>", "")
        assert "<" not in cleaned and ">" not in cleaned


@pytest.mark.parametrize(
    "request_args, field",
    [
        ({"path": "/api/v1/search"}, "q"),
        ({"path": "/api/v1/search?q=" + "x" * 2001}, "q"),
        ({"path": "/api/v1/search?q=refund&k=ten"}, "k"),
        ({"path": "/api/v1/search?q=refund&k=0"}, "k"),
        ({"path": "/api/v1/search?q=refund&mode=fuzzy"}, "mode"),
        ({"path": "/api/v1/search?q=refund&business_line=crypto"}, "business_line"),
        ({"path": "/api/v1/search?q=refund&colour=red"}, "colour"),
    ],
)
def test_bad_get_requests_get_400_in_the_error_shape(client, request_args, field):
    response = client.get(request_args["path"])
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad_request" and error["details"]["field"] == field
    assert [p["field"] for p in error["details"]["problems"]] == [field]
    assert error["message"].startswith(field)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"data": "not json", "content_type": "application/json"}, "body"),
        ({"json": ["refund"]}, "body"),
        ({"json": {"query": 5}}, "query"),
        ({"json": {"query": "refund", "k": "5"}}, "k"),
        ({"json": {"query": "refund", "filters": "policy"}}, "filters"),
        ({"json": {"query": "refund", "limit": 5}}, "limit"),
    ],
)
def test_bad_post_requests_get_400_in_the_error_shape(client, kwargs, field):
    response = client.post("/api/v1/search", **kwargs)
    assert response.status_code == 400
    details = response.get_json()["error"]["details"]
    assert details["field"] == field and [p["field"] for p in details["problems"]] == [field]


def test_every_problem_of_a_request_is_listed_at_once(client):
    response = client.get("/api/v1/search?k=0&mode=fuzzy&type=memo&colour=red")
    assert response.status_code == 400
    error = response.get_json()["error"]
    fields = [p["field"] for p in error["details"]["problems"]]
    assert fields == ["q", "k", "mode", "type", "colour"] and error["details"]["field"] == "q"
    assert error["message"] == "q: required (and 4 more: see details.problems)"
    assert all(p["message"] for p in error["details"]["problems"])
    body = {"query": " ", "k": "5", "filters": {"type": "memo", "owner": "x"}, "limit": 1}
    problems = client.post("/api/v1/search", json=body).get_json()["error"]["details"]["problems"]
    assert {p["field"]: p["message"] for p in problems} == {
        "query": "must not be blank",
        "k": "must be a valid integer",
        "filters.type": "must be 'sop', 'policy' or ''",
        "filters.owner": "unknown field",
        "limit": "unknown field",
    }


def test_get_sop_returns_metadata_sections_html_markdown_and_revision(client, library):
    body = client.get("/api/v1/sops/pay-duplicate-charge").get_json()
    assert body["id"] == "pay-duplicate-charge" and body["type"] == "sop"
    assert body["markdown"] == (library["CONTENT_DIR"] / body["path"]).read_text()
    assert body["markdown"].startswith("---\nid: pay-duplicate-charge")
    assert len(body["revision"]) == 40
    assert body["sections"] and all(f'id="{s["anchor"]}"' in body["html"] for s in body["sections"])


@pytest.mark.parametrize("path", ["/api/v1/sops/no-such-sop", "/api/v1/sops/..%2Fetc", "/api/v1/sops/UPPER"])
def test_unknown_sop_is_404_in_the_error_shape(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_unknown_api_route_and_wrong_method_use_the_error_shape(client):
    assert client.get("/api/v1/nothing").get_json()["error"]["code"] == "not_found"
    response = client.delete("/api/v1/search")
    assert response.status_code == 405 and response.get_json()["error"]["code"] == "method_not_allowed"


def test_list_sops(client):
    ids = [d["id"] for d in client.get("/api/v1/sops").get_json()["sops"]]
    assert "policy-refunds" in ids and ids == sorted(ids)


def test_healthz_names_the_generation(client, library):
    from kb.indexing.builder import read_manifest

    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["generation"] == read_manifest(library["DATA_DIR"])["generation"]


def test_healthz_without_an_index_is_503(tmp_path):
    from kb.web import create_app

    app = create_app({"CONTENT_DIR": tmp_path, "DATA_DIR": tmp_path / "empty", "TESTING": True})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503 and response.get_json()["status"] == "unavailable"
    search = app.test_client().get("/api/v1/search?q=refund")
    assert search.status_code == 503 and search.get_json()["error"]["code"] == "index_not_built"


def test_categories_list_the_tree_with_documents_and_uncovered(client, library):
    from kb.library import load_library
    from kb.taxonomy import MAX_EXAMPLES, MIN_EXAMPLES

    body = client.get("/api/v1/categories").get_json()
    groups = {g["id"]: g for g in body["categories"]}
    children = {c["id"]: c for g in body["categories"] for c in g["children"]}
    assert groups and all(c["parent"] in groups for c in children.values())
    loaded = load_library(library["CONTENT_DIR"])
    for doc in loaded.documents.values():
        for category in doc.categories:
            assert doc.id in [d["id"] for d in children[category]["documents"]]
    assert body["uncovered"] == [c for c, entry in children.items() if not entry["documents"]]
    assert all(MIN_EXAMPLES <= len(c["examples"]) <= MAX_EXAMPLES for c in children.values())


def test_one_category_and_unknown_category(client):
    body = client.get("/api/v1/categories/payments/duplicate-charge").get_json()
    assert body["group"]["id"] == "payments" and "pay-duplicate-charge" in [d["id"] for d in body["documents"]]
    assert client.get("/api/v1/categories/payments").get_json()["children"]
    missing = client.get("/api/v1/categories/payments/nope")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"


def test_a_masked_card_number_is_not_searched_for(client):
    """After the search page's redirect the query holds the mask; it must rank and highlight as without it."""
    masked = client.get("/api/v1/search", query_string={"q": "customer [card ending 1111] charged twice"}).get_json()
    plain = client.get("/api/v1/search", query_string={"q": "customer charged twice"}).get_json()
    assert [r["sop_id"] for r in masked["results"]] == [r["sop_id"] for r in plain["results"]]
    assert not any("<mark>ending</mark>" in r["snippet"] for r in masked["results"])
