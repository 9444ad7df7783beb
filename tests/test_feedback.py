"""Feedback and flags on SOPs: POST /api/v1/feedback and POST /api/v1/sops/<id>/flags store what agents and
bots say, masked and bounded, for the SOP's owner (kb.feedback), and refuse every bad field by name."""

from __future__ import annotations

import pytest

from kb import feedback, store
from kb.errors import InputError, NotFoundError

CARD = "4111 1111 1111 1111"
MASKED = "[card ending 1111]"
FEEDBACK = "/api/v1/feedback"
FLAGS = "/api/v1/sops/pay-duplicate-charge/flags"
GOOD = {"sop_id": "pay-duplicate-charge", "anchor": "procedure", "helpful": True}


def rows(kb, sql: str, *params) -> list[dict]:
    db = store.connect(kb.data)
    try:
        return [dict(row) for row in db.execute(sql, params)]
    finally:
        db.close()


def test_feedback_is_stored_and_answered_201_with_the_record(fuzz):
    body = {**GOOD, "helpful": False, "reason": "The refund step is missing", "query": "charged twice"}
    response = fuzz.call("POST", FEEDBACK, "agnes", json=body)
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    assert set(record) == {"id", "sop_id", "anchor", "helpful", "reason", "query", "actor", "actor_kind", "created"}
    assert record["sop_id"] == "pay-duplicate-charge" and record["anchor"] == "procedure"
    assert record["helpful"] is False and record["reason"] == "The refund step is missing"
    assert record["query"] == "charged twice"
    assert record["actor"] == "agnes" and record["actor_kind"] == "bot"  # an API key
    stored = rows(fuzz, "SELECT * FROM feedback WHERE id = ?", record["id"])[0]
    assert {**stored, "helpful": bool(stored["helpful"])} == record


def test_a_flag_is_stored_and_answered_201_with_the_record(fuzz):
    response = fuzz.call("POST", FLAGS, "ann", json={"anchor": "purpose", "comment": "Pending holds now last 7 days"})
    assert response.status_code == 201, response.get_json()
    record = response.get_json()
    assert set(record) == {"id", "sop_id", "anchor", "comment", "actor", "actor_kind", "created", "resolved"}
    assert record["sop_id"] == "pay-duplicate-charge" and record["anchor"] == "purpose"
    assert record["comment"] == "Pending holds now last 7 days" and record["resolved"] is None
    assert record["actor"] == "ann" and record["actor_kind"] == "bot"
    assert rows(fuzz, "SELECT * FROM flags WHERE id = ?", record["id"]) == [record]
    whole = fuzz.call("POST", FLAGS, "ann", json={"comment": "The whole SOP is out of date"})
    assert whole.status_code == 201 and whole.get_json()["anchor"] is None


@pytest.mark.parametrize(
    "body, field",
    [
        ({"anchor": "procedure", "helpful": True}, "sop_id"),
        ({"sop_id": "pay-duplicate-charge", "helpful": True}, "anchor"),
        ({"sop_id": "pay-duplicate-charge", "anchor": "procedure"}, "helpful"),
        ({**GOOD, "helpful": "yes"}, "helpful"),
        ({**GOOD, "helpful": 1}, "helpful"),
        ({**GOOD, "sop_id": "Not An Id!"}, "sop_id"),
        ({**GOOD, "sop_id": 7}, "sop_id"),
        ({**GOOD, "anchor": ["procedure"]}, "anchor"),
        ({**GOOD, "anchor": "a" * 201}, "anchor"),
        ({**GOOD, "reason": "r" * 501}, "reason"),
        ({**GOOD, "reason": 5}, "reason"),
        ({**GOOD, "query": "q" * 2001}, "query"),
        ({**GOOD, "stars": 5}, "stars"),
    ],
)
def test_a_bad_feedback_field_is_refused_naming_it(fuzz, body, field):
    before = rows(fuzz, "SELECT COUNT(*) AS n FROM feedback")[0]["n"]
    response = fuzz.call("POST", FEEDBACK, "agnes", json=body)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid_input" and error["details"]["field"] == field
    assert rows(fuzz, "SELECT COUNT(*) AS n FROM feedback")[0]["n"] == before


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "comment"),
        ({"comment": ""}, "comment"),
        ({"comment": "   \n "}, "comment"),
        ({"comment": "c" * 2001}, "comment"),
        ({"comment": 12}, "comment"),
        ({"comment": "old", "anchor": 3}, "anchor"),
        ({"comment": "old", "anchor": "no-such-section"}, "anchor"),
        ({"comment": "old", "severity": "high"}, "severity"),
    ],
)
def test_a_bad_flag_field_is_refused_naming_it(fuzz, body, field):
    response = fuzz.call("POST", FLAGS, "agnes", json=body)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["details"]["field"] == field


def test_the_longest_reason_and_comment_are_accepted(fuzz):
    assert fuzz.call("POST", FEEDBACK, "agnes", json={**GOOD, "reason": "r" * 500}).status_code == 201
    assert fuzz.call("POST", FLAGS, "agnes", json={"comment": "c" * 2000}).status_code == 201


def test_an_unknown_sop_is_404_and_an_anchor_not_in_the_sop_422(fuzz):
    unknown = fuzz.call("POST", FEEDBACK, "agnes", json={**GOOD, "sop_id": "no-such-sop"})
    assert unknown.status_code == 404 and unknown.get_json()["error"]["details"]["field"] == "sop_id"
    flag = fuzz.call("POST", "/api/v1/sops/no-such-sop/flags", "agnes", json={"comment": "gone"})
    assert flag.status_code == 404 and flag.get_json()["error"]["code"] == "not_found"
    # "customer-macro" is a section of pay-card-declined, not of pay-duplicate-charge
    elsewhere = fuzz.call("POST", FEEDBACK, "agnes", json={**GOOD, "anchor": "customer-macro"})
    assert elsewhere.status_code == 422
    assert elsewhere.get_json()["error"]["details"]["field"] == "anchor"
    assert "not a section of pay-duplicate-charge" in elsewhere.get_json()["error"]["message"]


def test_card_numbers_are_masked_in_the_reason_the_query_and_the_comment(fuzz):
    wide = "４１１１ １１１１ １１１１ １１１１"  # full-width digits: normalised, then masked
    body = {**GOOD, "helpful": False, "reason": f"card {CARD} was refused", "query": f"refund {wide}"}
    record = fuzz.call("POST", FEEDBACK, "agnes", json=body).get_json()
    assert record["reason"] == f"card {MASKED} was refused" and record["query"] == f"refund {MASKED}"
    flag = fuzz.call("POST", FLAGS, "agnes", json={"comment": f"customer {CARD} says hi"}).get_json()
    assert flag["comment"] == f"customer {MASKED} says hi"
    stored = rows(fuzz, "SELECT reason, query FROM feedback WHERE id = ?", record["id"])[0]
    assert "4111" not in stored["reason"] + stored["query"]
    assert "1111 1111" not in rows(fuzz, "SELECT comment FROM flags WHERE id = ?", flag["id"])[0]["comment"]


def test_markup_is_stored_as_text(fuzz):
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    record = fuzz.call("POST", FEEDBACK, "agnes", json={**GOOD, "reason": hostile, "query": hostile}).get_json()
    assert record["reason"] == hostile and record["query"] == hostile
    flag = fuzz.call("POST", FLAGS, "agnes", json={"comment": hostile})
    assert flag.status_code == 201 and flag.get_json()["comment"] == hostile
    assert flag.mimetype == "application/json"


def test_control_characters_are_refused(fuzz):
    response = fuzz.call("POST", FEEDBACK, "agnes", json={**GOOD, "reason": "bad\x07bell"})
    assert response.status_code == 400 and response.get_json()["error"]["details"]["field"] == "reason"
    with pytest.raises(InputError, match="comment: contains a NUL or another control character"):
        feedback.record_flag(
            None, sop_id="x", comment="a\x00b", actor="a", actor_kind="bot", known_ids={"x"}, anchors=()
        )


def test_anonymous_callers_get_401_and_a_key_without_search_403(fuzz):
    anonymous = fuzz.call("POST", FEEDBACK, json={"nonsense": True})  # 401 before the body is read
    assert anonymous.status_code == 401 and anonymous.get_json()["error"]["code"] == "unauthorized"
    assert fuzz.call("POST", FLAGS, json={"comment": "x"}).status_code == 401
    db = store.connect(fuzz.data)
    try:
        from kb import accounts

        key, _ = accounts.create_key(db, "agnes", "read only", ["read"])
    finally:
        db.close()
    refused = fuzz.client.post(FEEDBACK, json=GOOD, headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 403 and refused.get_json()["error"]["details"] == {
        "field": "scope",
        "scope": "search",
    }


def test_feedback_is_rate_limited_per_key(fuzz):
    from kb.web import create_app

    app = create_app({**fuzz.settings, "RATE_LIMIT_FEEDBACK": "3/minute", "TESTING": True})
    client = app.test_client()
    statuses = [client.post(FEEDBACK, json=GOOD, headers=fuzz.headers("agnes")).status_code for _ in range(3)]
    assert statuses == [201, 201, 201]
    refused = client.post(FLAGS, json={"comment": "one more"}, headers=fuzz.headers("agnes"))
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    error = refused.get_json()["error"]
    assert error["code"] == "rate_limited" and "feedback" in error["message"]
    # searches and other writes have their own limits
    assert client.get("/api/v1/search?q=refund", headers=fuzz.headers("agnes")).status_code == 200


def test_feedback_and_flags_are_listed_per_sop_and_per_owner(tmp_path):
    db = store.connect(tmp_path)
    known = {"a-sop", "b-sop"}
    common = {"actor": "agnes", "actor_kind": "person", "known_ids": known}
    first = feedback.record_feedback(db, sop_id="a-sop", anchor=None, helpful=True, **common)
    second = feedback.record_feedback(
        db, sop_id="b-sop", anchor="steps", helpful=False, reason=" no ", anchors=["steps"], **common
    )
    assert second["reason"] == "no" and second["query"] is None
    flag = feedback.record_flag(db, sop_id="b-sop", comment="old", **common)
    db.execute("UPDATE flags SET resolved = ? WHERE id = ?", (store.now(), flag["id"]))
    db.commit()
    assert [r["id"] for r in feedback.list_feedback(db, ["a-sop"])] == [first["id"]]
    assert [r["id"] for r in feedback.list_feedback(db, ["a-sop", "b-sop"])] == [second["id"], first["id"]]
    assert feedback.list_flags(db, ["b-sop"]) == []
    assert [f["id"] for f in feedback.list_flags(db, ["b-sop"], include_resolved=True)] == [flag["id"]]
    documents = {"a-sop": {"owner": "payments"}, "b-sop": {"owner": "payouts"}}
    assert feedback.owned_by(documents, "payouts") == ["b-sop"]
    assert [r["sop_id"] for r in feedback.feedback_for_owner(db, documents, "payouts")] == ["b-sop"]
    assert feedback.list_feedback(db, []) == []
    with pytest.raises(NotFoundError):
        feedback.record_feedback(db, sop_id="c-sop", anchor=None, helpful=True, **common)
    with pytest.raises(InputError, match="actor_kind"):
        feedback.record_flag(db, sop_id="a-sop", comment="x", actor="a", actor_kind="anonymous", known_ids=known)
    with pytest.raises(InputError, match="limit"):
        feedback.list_feedback(db, ["a-sop"], limit=0)
    assert db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 2
    db.close()
