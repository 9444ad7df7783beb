"""Agent assist (kb/assist.py) and POST /api/v1/assist (kb/web/api_assist.py): the shipped library with the real
model, and the tiny library for stale documents."""

from __future__ import annotations

import json

import pytest

from kb.assist import Assistant, ticket_text
from kb.errors import QueryError
from kb.indexing.builder import build_index
from kb.search import Searcher
from kb.web.api_assist import AssistAnswer
from tests.conftest import DEV_QUERIES, ROOT, TINY_DOCS, dev_queries, init_repo, shipped_ids

CARD, OTHER_CARD = "4111 1111 1111 1111", "5500-0000-0000-0004"
OFF_TOPIC = [
    json.loads(line) for line in (ROOT / "tests" / "data" / "off_topic_tickets.jsonl").read_text().splitlines()
]


@pytest.fixture(scope="module")
def assistant(searcher) -> Assistant:
    return Assistant(searcher)


# -- the answer ---------------------------------------------------------------------------------------------


def test_a_duplicate_charge_ticket_gets_its_category_sop_citation_and_macro(assistant):
    answer = assistant.assist(subject="Double charge", body="Hi, I was charged twice for the same order. Thanks")
    assert set(answer) == {"categories", "results", "macro", "answerable", "redactions"}
    assert answer["answerable"] and answer["redactions"] == 0
    top = answer["categories"][0]
    assert top["id"] == "payments/duplicate-charge" and top["name"] == "Duplicate charge"
    confidences = [c["confidence"] for c in answer["categories"]]
    assert len(confidences) == 3 and confidences == sorted(confidences, reverse=True) and sum(confidences) <= 1.0001
    first = answer["results"][0]
    assert first["sop_id"] == "pay-duplicate-charge" and first["stale"] is False
    assert first["citation"] == {
        "sop_id": "pay-duplicate-charge",
        "anchor": first["section"]["anchor"],
        "revision": first["revision"],
        "url": f"/sops/pay-duplicate-charge#{first['section']['anchor']}",
    }
    assert first["text"] and "{{" not in first["text"] and "<mark>" not in first["text"]
    assert answer["macro"]["sop_id"] == "pay-duplicate-charge" and answer["macro"]["anchor"].startswith("macro-")
    assert answer["macro"]["text"].startswith("Hi [first name]") and ">" not in answer["macro"]["text"]
    AssistAnswer.model_validate(answer)


@pytest.mark.parametrize(
    "body, anchor",
    [
        ("my card expired and the details didn't match, it says the card is invalid", "macro-card-details-or-expiry"),
        ("my bank declined the payment, what should i do", "macro-declined-by-the-bank"),
    ],
)
def test_the_macro_is_the_one_closest_to_the_ticket(assistant, body, anchor):
    macro = assistant.assist(subject="Card declined", body=body)["macro"]
    assert (macro["sop_id"], macro["anchor"]) == ("pay-card-declined", anchor)


def test_shared_values_are_resolved_in_the_cited_text(assistant):
    answer = assistant.assist(subject="", body="checkout paused my card after too many attempts")
    texts = [r["text"] for r in answer["results"]] + [answer["macro"]["text"] if answer["macro"] else ""]
    assert all("{{" not in text for text in texts)


def test_card_numbers_are_masked_before_anything_and_counted(assistant):
    answer = assistant.assist(
        subject=f"card {CARD}", body=f"I paid with {OTHER_CARD} cvv 123 and was charged twice", k=3
    )
    assert answer["redactions"] == 2
    dumped = json.dumps(answer)
    assert "1111 1111" not in dumped and "0000-0000" not in dumped and "123" not in dumped.replace("1230", "")


def test_off_topic_tickets_are_not_answerable_with_a_reason(assistant):
    for ticket in OFF_TOPIC[:3] + OFF_TOPIC[7:9] + OFF_TOPIC[27:29]:  # weather, recipes, unrelated tech support
        answer = assistant.assist(subject=ticket["subject"], body=ticket["body"])
        assert answer["answerable"] is False and answer["macro"] is None, ticket
        assert answer["reason"].startswith("neither the category classifier nor search is confident")
        assert "needs 0.42" in answer["reason"]


def test_most_off_topic_tickets_and_almost_no_dev_queries_are_unanswerable(assistant):
    off = [assistant.assist(subject=t["subject"], body=t["body"])["answerable"] for t in OFF_TOPIC]
    dev = [assistant.assist(subject="", body=q["query"])["answerable"] for q in dev_queries(shipped_ids())]
    assert len(OFF_TOPIC) >= 40 and off.count(False) >= 0.8 * len(off)
    assert len(dev) >= 80 and dev.count(False) <= 0.05 * len(dev), DEV_QUERIES


# -- a named category filters; business lines filter ---------------------------------------------------------


def test_a_named_group_filters_the_results(assistant):
    answer = assistant.assist(subject="", body="my money is late", category="creator-payouts")
    assert answer["results"] and all(
        any(c.startswith("creator-payouts/") for c in r["categories"]) for r in answer["results"]
    )


def test_a_named_category_that_the_classifier_contradicts_does_not_count_its_confidence(assistant):
    answer = assistant.assess(
        subject="", body="I was charged twice for one order", category="creator-payouts/tax-forms"
    )
    assert answer.categories[0]["id"] == "payments/duplicate-charge"  # the classifier's own view is still shown
    assert all("creator-payouts/tax-forms" in r["categories"] for r in answer.results)
    if not answer.answerable:
        assert "lies outside creator-payouts/tax-forms" in answer.reason


def test_a_business_line_filters_the_results(assistant):
    answer = assistant.assist(subject="refund", body="refund for my order", business_line="e-commerce")
    assert {r["business_line"] for r in answer["results"]} <= {"e-commerce", "all"}


# -- bad input: every problem at once -------------------------------------------------------------------------


def test_every_problem_is_reported_at_once(assistant):
    with pytest.raises(QueryError) as caught:
        assistant.assist(subject=3, body="x", business_line="mars", category="Not A Category", k=0)
    fields = [p["field"] for p in caught.value.details["problems"]]
    assert fields == ["subject", "business_line", "category", "k"]


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"subject": " ", "body": "\n"}, "body", "the ticket has no text"),
        ({"subject": "", "body": "x", "category": "nothing/here"}, "category", "no category 'nothing/here'"),
        ({"subject": "", "body": "x", "k": 51}, "k", "from 1 to 50"),
        ({"subject": "", "body": "x", "k": True}, "k", "whole number"),
    ],
)
def test_a_bad_field_is_named(assistant, fields, field, message):
    with pytest.raises(QueryError, match=message) as caught:
        assistant.assist(**fields)
    assert caught.value.details["field"] == field


def test_a_ticket_at_the_size_limit_answers_and_a_longer_one_is_refused(assistant):
    limit = assistant.settings["MAX_REQUEST_BYTES"]
    line = f"my coins never arrived after I paid with {CARD}. "
    body = (line * (limit // len(line) + 1))[: limit - 5]
    answer = assistant.assist(subject="coins", body=body)
    assert answer["redactions"] == body.count(CARD) and CARD not in json.dumps(answer)
    assert answer["results"][0]["sop_id"] == "iap-coins-not-credited"
    with pytest.raises(QueryError, match="longer than"):
        assistant.assist(subject="coins!", body=body)


@pytest.mark.parametrize(
    "subject, body, limit, expected",
    [
        ("Subject", "Body", 100, "Subject\n\nBody"),
        ("", "  Body only ", 100, "Body only"),
        ("", "one two three four", 12, "one two"),  # cut at the last space in the limit
        ("", "x" * 30, 10, "x" * 10),  # no space: cut at the limit
    ],
)
def test_ticket_text_joins_and_bounds_what_is_searched(subject, body, limit, expected):
    assert ticket_text(subject, body, limit) == expected


# -- degraded search, stale documents -------------------------------------------------------------------------


class BrokenEncoder:
    def encode(self, texts):
        raise RuntimeError("model folder is gone")


def test_when_the_encoder_fails_nothing_is_answerable(library):
    answer = Assistant(Searcher(library, encoder=BrokenEncoder())).assist(subject="", body="charged twice")
    assert answer["answerable"] is False and "query encoder is failing" in answer["reason"]
    assert answer["categories"] == [] and answer["macro"] is None and answer["results"]


def _tiny(tmp_path, data_dir, settings_for, stale: set[str]) -> Assistant:
    docs = {
        name: text.replace("review_by: 2027-03-01", "review_by: 2025-01-01") if name in stale else text
        for name, text in TINY_DOCS.items()
    }
    sops = init_repo(tmp_path / "content", docs)
    build_index(sops, data_dir)
    return Assistant(Searcher(settings_for(sops, data_dir)))


def test_a_stale_sop_is_marked_and_never_supplies_the_macro(tmp_path, data_dir, settings_for):
    assistant = _tiny(tmp_path, data_dir, settings_for, {"all/pay-card-declined.md"})
    answer = assistant.assist(subject="", body="my card was declined at checkout, the bank said no")
    flags = {r["sop_id"]: r["stale"] for r in answer["results"]}
    assert flags["pay-card-declined"] is True and set(flags.values()) == {True, False}
    assert answer["macro"] is None  # the only macro is in the stale SOP


def test_when_every_sop_found_is_stale_the_ticket_is_not_answerable(tmp_path, data_dir, settings_for):
    assistant = _tiny(tmp_path, data_dir, settings_for, set(TINY_DOCS))
    answer = assistant.assist(subject="", body="my card was declined at checkout, the bank said no")
    assert answer["answerable"] is False and "past its review_by date" in answer["reason"]
    assert all(r["stale"] for r in answer["results"])


# -- POST /api/v1/assist --------------------------------------------------------------------------------------


def test_the_route_answers_the_assist_shape(client):
    response = client.post("/api/v1/assist", json={"subject": "Double charge", "body": "charged twice", "k": 2})
    assert response.status_code == 200
    answer = response.get_json()
    AssistAnswer.model_validate(answer)
    assert len(answer["results"]) == 2 and answer["results"][0]["sop_id"] == "pay-duplicate-charge"


@pytest.mark.parametrize(
    "kwargs, fields",
    [
        (
            {"json": {"subject": 3, "body": None, "k": "5", "business_line": "mars", "colour": 1}},
            ["subject", "body", "business_line", "k", "colour"],
        ),
        ({"json": {"body": "x"}}, ["subject"]),
        ({"json": {"subject": "", "body": "x", "category": "NOT VALID"}}, ["category"]),
        ({"json": {"subject": "", "body": ""}}, ["body"]),
        ({"json": ["subject", "body"]}, ["body"]),
        ({"data": "{not json", "content_type": "application/json"}, ["body"]),
    ],
    ids=["types and unknown field", "missing field", "category pattern", "no text", "not an object", "malformed"],
)
def test_bad_requests_answer_400_in_the_one_error_shape_listing_every_problem(client, kwargs, fields):
    response = client.post("/api/v1/assist", **kwargs)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad_request" and error["details"]["field"] == fields[0]
    assert [p["field"] for p in error["details"].get("problems", [{"field": "body"}])] == fields


def test_an_oversize_body_is_413(client, library):
    body = json.dumps({"subject": "", "body": "x" * library["MAX_REQUEST_BYTES"]})
    response = client.post("/api/v1/assist", data=body, content_type="application/json")
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "too_large"


def test_assist_needs_the_search_scope(authoring):
    from tests.test_key_scopes import key_for

    body = {"subject": "", "body": "charged twice"}
    denied = authoring.client.post("/api/v1/assist", json=body, headers=key_for(authoring, "ada", "read"))
    assert denied.status_code == 403 and denied.get_json()["error"]["details"]["scope"] == "search"
    allowed = authoring.client.post("/api/v1/assist", json=body, headers=key_for(authoring, "agnes", "search"))
    assert allowed.status_code == 200
    revoked = authoring.client.post("/api/v1/assist", json=body, headers={"Authorization": "Bearer kb_nonsense"})
    assert revoked.status_code == 401


def test_assist_is_rate_limited_with_search(library):
    from kb.web import create_app

    client = create_app({**library, "TESTING": True, "RATE_LIMIT_SEARCH": "2/minute"}).test_client()
    body = {"subject": "", "body": "charged twice"}
    codes = [client.post("/api/v1/assist", json=body).status_code for _ in range(2)]
    codes.append(client.get("/api/v1/search?q=refund").status_code)  # the same counter as search
    assert codes == [200, 200, 429]
