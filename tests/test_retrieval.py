"""Dify's External Knowledge API (kb/web/api_retrieval.py, kb/retrieval.py): POST /retrieval over the shipped library.

The instance is a copy of the indexed shipped library (its own users and keys), so nothing here touches the
session's `app`.
"""

from __future__ import annotations

import logging

import pytest

from kb import accounts, audit, store
from kb.config import load_settings
from kb.search import Searcher
from kb.web.api import ROUTE_SCOPES
from tests.conftest import copy_data

RELEVANT = "I was charged twice for the same order"
OFF_TOPIC = "recipe for banana bread"
OFF_TOPIC_THRESHOLD = 0.35  # documented in kb/retrieval.py: every dev query keeps a record, off-topic ones none
PAN = "4111 1111 1111 1111"
RECORD_KEYS = {"content", "score", "title", "metadata"}
METADATA_KEYS = {
    "sop_id",
    "anchor",
    "heading",
    "revision",
    "url",
    "business_line",
    "categories",
    "path",
    "type",
    "similarity",
}
ERROR_KEYS = {"error_code", "error_msg", "details"}


class Instance:
    """An app over a copy of the indexed shipped library, with a user and keys of several kinds."""

    def __init__(self, settings: dict):
        from kb.web import create_app

        self.settings = settings
        unlimited = {"RATE_LIMIT_SEARCH": "100000/minute", "RATE_LIMIT_LOGIN": "100000/minute"}  # many refusals
        self.app = create_app({**settings, "TESTING": True, **unlimited})
        db = store.connect(settings["DATA_DIR"])
        try:
            with db:
                accounts.add_user(db, "dify", "agent", "dify-password-123")
                self.key = accounts.create_key(db, "dify", "dify", ("search",))[0]
                self.read_only = accounts.create_key(db, "dify", "reader", ("read",))[0]
                revoked, row = accounts.create_key(db, "dify", "old", ("search",))
                accounts.revoke_key(db, row["id"])
                self.revoked = revoked
        finally:
            db.close()

    def post(self, body=None, key: str | None = "default", **kwargs):
        """POST /retrieval with the search key (key=None: no Authorization header; else that header's key)."""
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers.setdefault("Authorization", f"Bearer {self.key if key == 'default' else key}")
        if body is not None:
            kwargs["json"] = body
        return self.app.test_client().post("/retrieval", headers=headers, **kwargs)

    def audit(self, **filters) -> list[dict]:
        db = store.connect(self.settings["DATA_DIR"])
        try:
            return audit.query(db, **filters, limit=100)
        finally:
            db.close()


@pytest.fixture(scope="module")
def kb(library, tmp_path_factory) -> Instance:
    data = tmp_path_factory.mktemp("retrieval-data")
    copy_data(library["DATA_DIR"], data)
    return Instance(load_settings({"CONTENT_DIR": library["CONTENT_DIR"], "DATA_DIR": data}, environ={}))


def body(query: str = RELEVANT, top_k: int = 3, threshold: float = 0.5, knowledge_id: str = "kb", **extra) -> dict:
    return {
        "knowledge_id": knowledge_id,
        "query": query,
        "retrieval_setting": {"top_k": top_k, "score_threshold": threshold},
        **extra,
    }


def records(response) -> list[dict]:
    assert response.status_code == 200, response.get_json()
    assert set(response.get_json()) == {"records"}
    return response.get_json()["records"]


def dify_error(response, status: int, code: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_json()
    error = response.get_json()
    assert set(error) == ERROR_KEYS and error["error_code"] == code and isinstance(error["error_msg"], str)
    if field is not None:
        assert error["details"]["field"] == field, error
    return error


# -- the answer -----------------------------------------------------------------------------------------


def test_a_relevant_query_answers_records_in_difys_shape(kb, library):
    found = records(kb.post(body(top_k=3, threshold=0.5)))
    assert found and found[0]["metadata"]["sop_id"] == "pay-duplicate-charge"
    gen = Searcher(library).generation
    for record in found:
        assert set(record) == RECORD_KEYS and set(record["metadata"]) == METADATA_KEYS
        meta = record["metadata"]
        document, section = gen.documents[meta["sop_id"]], gen.section(f"{meta['sop_id']}#{meta['anchor']}")
        assert record["title"] == document["title"] and meta["heading"] == section["heading"]
        assert record["content"] == section["text"]  # the section as plain text, shared values resolved
        assert "{{" not in record["content"] and "## " not in record["content"]
        assert meta["revision"] == document["revision"] and meta["path"] == document["path"]
        assert meta["business_line"] == document["business_line"] and meta["categories"] == document["categories"]
        assert meta["url"] == f"http://localhost/sops/{meta['sop_id']}#{meta['anchor']}"


def test_scores_lie_in_0_1_never_increase_and_never_exceed_the_sections_similarity(kb):
    for query in (RELEVANT, "payout has not arrived", "how do I cancel my subscription", OFF_TOPIC):
        for threshold in (0.0, 0.3, 0.5):
            found = records(kb.post(body(query, top_k=10, threshold=threshold)))
            scores = [r["score"] for r in found]
            assert scores == sorted(scores, reverse=True)
            assert all(threshold <= s <= 1.0 for s in scores)
            assert all(r["score"] <= max(0.0, r["metadata"]["similarity"]) + 1e-9 for r in found)  # clipped to 0


def test_top_k_bounds_the_records_one_per_sop(kb):
    assert len(records(kb.post(body(top_k=1, threshold=0.0)))) == 1
    found = records(kb.post(body(top_k=7, threshold=0.0)))
    assert len(found) == 7 and len({r["metadata"]["sop_id"] for r in found}) == 7


def test_the_threshold_keeps_relevant_records_and_drops_off_topic_ones(kb):
    relevant = records(kb.post(body(RELEVANT, top_k=5, threshold=0.5)))
    assert relevant and all(r["score"] >= 0.5 for r in relevant)
    assert kb.post(body(OFF_TOPIC, top_k=5, threshold=OFF_TOPIC_THRESHOLD)).get_json() == {"records": []}
    below = records(kb.post(body(OFF_TOPIC, top_k=5, threshold=0.0)))  # Dify sends 0 when the threshold is off
    assert below and all(r["score"] < OFF_TOPIC_THRESHOLD for r in below)
    assert kb.post(body(RELEVANT, threshold=1.0)).get_json() == {"records": []}


# -- knowledge ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "knowledge_id, passes",
    [
        ("business_line:creator-payouts", lambda m: m["business_line"] in ("creator-payouts", "all")),
        ("business_line:all", lambda m: m["business_line"] == "all"),
        ("category:creator-payouts", lambda m: any(c.startswith("creator-payouts/") for c in m["categories"])),
        ("category:payments/duplicate-charge", lambda m: "payments/duplicate-charge" in m["categories"]),
    ],
)
def test_a_knowledge_id_names_a_part_of_the_library(kb, knowledge_id, passes):
    found = records(kb.post(body("payment problem", top_k=10, threshold=0.0, knowledge_id=knowledge_id)))
    assert found and all(passes(r["metadata"]) for r in found)


@pytest.mark.parametrize(
    "knowledge_id", ["nope", "KB", "all", "business_line:mars", "category:nope", "category:", "business_line"]
)
def test_an_unknown_knowledge_id_is_difys_2001(kb, knowledge_id):
    error = dify_error(kb.post(body(knowledge_id=knowledge_id)), 404, 2001, "knowledge_id")
    assert "no knowledge" in error["error_msg"] and "business_line:<line>" in error["error_msg"]


# -- authorization --------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   ", "bearer"])
def test_a_missing_or_malformed_authorization_header_is_difys_1001(kb, header):
    headers = {} if header is None else {"Authorization": header}
    error = dify_error(kb.post(body(), key=None, headers=headers), 401, 1001, "Authorization")
    assert "Bearer <API key>" in error["error_msg"]
    dify_error(kb.post({"bad": 1}, key=None, headers=headers), 401, 1001)  # before the body is looked at


@pytest.mark.parametrize("which", ["unknown", "revoked"])
def test_an_unknown_or_revoked_key_is_difys_1002_and_audited(kb, which):
    key = "kb_nosuchkey" if which == "unknown" else kb.revoked
    before = len(kb.audit(action="login_failed"))
    error = dify_error(kb.post(body(), key=key), 403, 1002, "Authorization")
    assert "unknown or revoked" in error["error_msg"]
    assert len(kb.audit(action="login_failed")) == before + 1


def test_retrieval_needs_the_search_scope(kb):
    assert ROUTE_SCOPES[("POST", "/retrieval")] == "search"
    error = dify_error(kb.post(body(), key=kb.read_only), 403, 1002, "scope")
    assert "lacks the search scope" in error["error_msg"]
    assert kb.audit(action="permission_denied")[0]["details"]["path"] == "/retrieval"
    assert records(kb.post(body(), key=kb.key))


def test_difys_endpoint_check_passes_with_a_good_key_and_reports_a_bad_one(kb):
    """Dify POSTs an empty body when a user adds the endpoint, and calls it wrong only on 403, 404 or 502."""
    dify_error(kb.post(), 400, 400, "body")
    dify_error(kb.post(key="kb_wrong"), 403, 1002)


# -- metadata conditions --------------------------------------------------------------------------------


def condition(name, operator, value=None) -> dict:
    return {"name": name, "comparison_operator": operator, "value": value}


@pytest.mark.parametrize(
    "metadata_condition, passes",
    [
        (
            {"logical_operator": "and", "conditions": [condition("business_line", "is", "subscriptions")]},
            lambda m: m["business_line"] == "subscriptions",
        ),
        ({"conditions": [condition("type", "is", "policy")]}, lambda m: m["type"] == "policy"),
        (
            {
                "conditions": [
                    condition("categories", "contains", "creator-payouts"),
                    condition("type", "is not", "policy"),
                ]
            },
            lambda m: m["type"] == "sop" and any(c.startswith("creator-payouts/") for c in m["categories"]),
        ),
        (
            {
                "logical_operator": "or",
                "conditions": [condition("sop_id", "is", "sub-cancellation"), condition("type", "is", "policy")],
            },
            lambda m: m["sop_id"] == "sub-cancellation" or m["type"] == "policy",
        ),
        ({"conditions": [condition("heading", "start with", "macro")]}, lambda m: m["heading"].startswith("Macro")),
        (
            {"conditions": [condition("sop_id", "in", ["pay-duplicate-charge", "policy-refunds"])]},
            lambda m: m["sop_id"] in ("pay-duplicate-charge", "policy-refunds"),
        ),
        (
            {"conditions": [condition("path", "start with", "e-commerce/")]},
            lambda m: m["path"].startswith("e-commerce/"),
        ),
    ],
)
def test_metadata_conditions_filter_the_records(kb, metadata_condition, passes):
    found = records(kb.post(body(RELEVANT, top_k=10, threshold=0.0, metadata_condition=metadata_condition)))
    assert found and all(passes(r["metadata"]) for r in found)


def test_a_narrow_condition_finds_its_sop_whatever_the_query(kb):
    narrow = {"conditions": [condition("sop_id", "is", "payout-tax-forms")]}
    found = records(kb.post(body("payout tax form", top_k=5, threshold=0.0, metadata_condition=narrow)))
    assert [r["metadata"]["sop_id"] for r in found] == ["payout-tax-forms"]


def test_the_condition_dify_sends_when_none_is_set_filters_nothing(kb):
    """Dify sends metadata_condition.model_dump(): a null operator and null conditions are no condition."""
    plain = records(kb.post(body(top_k=5, threshold=0.0)))
    empty = {"logical_operator": None, "conditions": None}
    assert records(kb.post(body(top_k=5, threshold=0.0, metadata_condition=empty))) == plain
    assert records(kb.post(body(top_k=5, threshold=0.0, metadata_condition={"conditions": []}))) == plain


@pytest.mark.parametrize(
    "item, field, words",
    [
        (condition("categories", ">", 3), "comparison_operator", "not supported for categories"),
        (condition("sop_id", "≥", 1), "comparison_operator", "not supported for sop_id"),
        (condition("sop_id", "before", "2026-01-01"), "comparison_operator", "not supported for sop_id"),
        (condition("sop_id", "like", "x"), "comparison_operator", "must be 'is'"),
        (condition("colour", "is", "blue"), "name", "not a metadata field"),
        (condition("sop_id", "in", 5), "value", "list of strings"),
        (condition("effective", "after", "soon"), "value", "needs a date"),
        ({"name": "sop_id", "comparison_operator": "is", "value": "x", "extra": 1}, "extra", "unknown field"),
    ],
)
def test_a_condition_kb_cannot_check_is_refused_naming_it(kb, item, field, words):
    sent = body(metadata_condition={"conditions": [item]})
    error = dify_error(kb.post(sent), 400, 400, f"metadata_condition.conditions[0].{field}")
    assert words in error["error_msg"]


# -- bad input ------------------------------------------------------------------------------------------


def test_every_problem_of_a_request_is_listed_with_its_field(kb):
    sent = {
        "knowledge_id": 5,
        "query": "   ",
        "retrieval_setting": {"top_k": 0, "score_threshold": 2, "x": 1},
        "metadata_condition": {
            "logical_operator": "xor",
            "conditions": [{"name": "sop_id", "comparison_operator": "is"}],
        },
        "extra": True,
    }
    error = dify_error(kb.post(sent), 400, 400)
    fields = [p["field"] for p in error["details"]["problems"]]
    assert set(fields) == {
        "knowledge_id",
        "query",
        "retrieval_setting.top_k",
        "retrieval_setting.score_threshold",
        "retrieval_setting.x",
        "metadata_condition.logical_operator",
        "metadata_condition.conditions[0].value",  # "is" needs a value
        "extra",
    }
    assert all(f"{p['field']}: {p['message']}" in error["error_msg"] for p in error["details"]["problems"])


@pytest.mark.parametrize(
    "change, field",
    [
        ({"retrieval_setting": {"top_k": True, "score_threshold": 0.5}}, "retrieval_setting.top_k"),
        ({"retrieval_setting": {"top_k": 2.5, "score_threshold": 0.5}}, "retrieval_setting.top_k"),
        ({"retrieval_setting": {"top_k": "3", "score_threshold": 0.5}}, "retrieval_setting.top_k"),
        ({"retrieval_setting": {"top_k": 51, "score_threshold": 0.5}}, "retrieval_setting.top_k"),
        ({"retrieval_setting": {"top_k": 3, "score_threshold": -0.1}}, "retrieval_setting.score_threshold"),
        ({"retrieval_setting": {"top_k": 3, "score_threshold": "0.5"}}, "retrieval_setting.score_threshold"),
        ({"retrieval_setting": {"top_k": 3, "score_threshold": True}}, "retrieval_setting.score_threshold"),
        ({"retrieval_setting": {"top_k": 3}}, "retrieval_setting.score_threshold"),
        ({"retrieval_setting": None}, "retrieval_setting"),
        ({"retrieval_setting": [3, 0.5]}, "retrieval_setting"),
        ({"query": None}, "query"),
        ({"query": "x" * 2001}, "query"),
        ({"knowledge_id": ""}, "knowledge_id"),
        ({"knowledge_id": "k" * 201}, "knowledge_id"),
        ({"metadata_condition": "business_line=all"}, "metadata_condition"),
        (
            {"metadata_condition": {"conditions": [condition("type", "is", "sop")] * 21}},
            "metadata_condition.conditions",
        ),
        (
            {"metadata_condition": {"conditions": [{"name": ["type"], "comparison_operator": "is", "value": {}}]}},
            "metadata_condition.conditions[0].value",
        ),
        (
            {"metadata_condition": {"conditions": [{"name": 7, "comparison_operator": "is"}]}},
            "metadata_condition.conditions[0].name",
        ),
    ],
)
def test_a_bad_field_is_400_naming_it(kb, change, field):
    sent = {**body(), **change}
    error = dify_error(kb.post(sent), 400, 400)
    assert field in [p["field"] for p in error["details"]["problems"]], error


def test_a_missing_field_is_named(kb):
    for name in ("knowledge_id", "query", "retrieval_setting"):
        sent = body()
        del sent[name]
        assert dify_error(kb.post(sent), 400, 400, name)["details"]["problems"][0]["message"] == "required"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "{not json", "content_type": "application/json"},
        {"data": '{"a": [' * 40 + "]}" * 40, "content_type": "application/json"},
        {"json": ["kb", "refund"]},
        {"json": "refund"},
        {"data": "knowledge_id=kb&query=refund", "content_type": "application/x-www-form-urlencoded"},
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(kb, kwargs):
    dify_error(kb.post(**kwargs), 400, 400, "body")


def test_an_oversize_body_is_413_unread(kb):
    limit = kb.settings["MAX_REQUEST_BYTES"]
    error = dify_error(kb.post(body(query="refund " * (limit // 7 + 1))), 413, 413, "body")
    assert f"{limit:,}" in error["error_msg"]


def test_a_nul_in_the_query_is_400_naming_it(kb):
    dify_error(kb.post(body(query="refund\x00please")), 400, 400, "query")


def test_other_methods_get_difys_shape_and_the_rest_of_the_api_keeps_its_own(kb):
    client = kb.app.test_client()
    dify_error(client.get("/retrieval", headers={"Authorization": f"Bearer {kb.key}"}), 405, 405)
    unchanged = client.get("/api/v1/search?k=0&q=refund").get_json()
    assert set(unchanged) == {"error"} and unchanged["error"]["code"] == "bad_request"


# -- card numbers, limits, a failing encoder ------------------------------------------------------------


def test_a_card_number_is_never_echoed_or_logged(kb, caplog):
    caplog.set_level(logging.DEBUG)
    digits = PAN.replace(" ", "")
    answers = [
        kb.post(body(f"charged twice on my card {PAN}", threshold=0.0)),
        kb.post(body(knowledge_id=f"category:{digits}")),
        kb.post(body(metadata_condition={"conditions": [condition(digits, "is", "x")]})),
        kb.post(body(metadata_condition={"conditions": [condition("sop_id", "is", "x"), {"name": "a", digits: 1}]})),
    ]
    assert [a.status_code for a in answers] == [200, 404, 400, 400]
    for answer in answers:
        text = answer.get_data(as_text=True)
        assert digits not in text and PAN not in text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "retrieval knowledge_id=" in logged and digits not in logged and PAN not in logged


def test_retrieval_is_rate_limited_as_a_search(kb):
    from kb.web import create_app

    app = create_app({**kb.settings, "TESTING": True, "RATE_LIMIT_SEARCH": "2/minute"})
    client = app.test_client()
    headers = {"Authorization": f"Bearer {kb.key}"}
    assert [client.post("/retrieval", json=body(), headers=headers).status_code for _ in range(2)] == [200, 200]
    limited = client.post("/retrieval", json=body(), headers=headers)
    dify_error(limited, 429, 429)
    assert int(limited.headers["Retry-After"]) >= 1


class BrokenEncoder:
    def encode(self, texts):
        raise RuntimeError("the model is gone")


def test_with_the_query_encoder_failing_no_similarity_is_claimed(kb):
    from kb.web import create_app

    app = create_app({**kb.settings, "TESTING": True})
    app.extensions["kb"]["searcher"] = Searcher(kb.settings, encoder=BrokenEncoder())
    client = app.test_client()
    headers = {"Authorization": f"Bearer {kb.key}"}
    found = records(client.post("/retrieval", json=body(top_k=3, threshold=0.0), headers=headers))
    assert found and all(r["score"] == 0.0 and r["metadata"]["similarity"] is None for r in found)
    assert client.post("/retrieval", json=body(threshold=0.01), headers=headers).get_json() == {"records": []}
