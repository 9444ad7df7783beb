"""Search as you type, the server's side (issue 13, item 1): the search page's own API searches (X-KB-Page: search)
are logged as the session's person and one typed search stays one search log row (revised, never one row per
pause), whose id only the signed session names; results carry dates and badges; result links carry the masked
query and the search's row to the SOP page."""

from __future__ import annotations

import datetime as dt
import re
from datetime import UTC, datetime, timedelta

import pytest

from kb import search_log, store
from kb.results import BADGES, badges
from kb.web.pages import result_link
from tests.conftest import entries
from tests.test_authoring_web import login

PAGE = {"X-KB-Page": "search"}
CARD = "4111 1111 1111 1111"


def typed(client, query: str, headers: dict | None = None):
    response = client.get(
        "/api/v1/search", query_string={"q": query, "mode": "keyword"}, headers=PAGE if headers is None else headers
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# == which query continues which ==================================================================================


@pytest.mark.parametrize(
    ("previous", "query", "same"),
    [
        ("charged", "charged twice", True),  # typed on
        ("charged twice for the", "charged twice", True),  # deleted back
        ("charged twise", "charged twice", True),  # the end edited
        ("Charged  Twice", "charged twice for", True),  # case and spacing aside
        ("charged twice", "refund policy", False),
        ("refund", "chargeback", False),
        ("ab", "ac", False),  # two letters share one: too little
        ("", "charged", False),
    ],
)
def test_a_query_continues_the_previous_one_when_typed_on_or_its_end_edited(previous, query, same):
    assert search_log.continues(previous, query) is same


def test_revise_replaces_a_fresh_unclicked_row_of_the_same_kind_by_a_continuation(tmp_path):
    db = store.connect(tmp_path)
    try:
        moment = datetime.now(UTC)
        row = search_log.record(db, "charged", "person", 3, "a", "hybrid")
        assert search_log.revise(db, row, f"charged twice {CARD}", "person", 2, "b", "keyword", moment) is True
        [entry] = [dict(r) for r in db.execute("SELECT * FROM search_log")]
        assert entry["query"] == "charged twice [card ending 1111]"  # masked as record masks
        assert (entry["results"], entry["top_sop_id"], entry["mode"]) == (2, "b", "keyword")
        late = moment + timedelta(seconds=search_log.REVISE_SECONDS + 1)
        refusals = [
            (row, "charged twice again", "person", late),  # too long after
            (row, "refund", "person", moment),  # another search
            (row, "charged twice again", "bot", moment),  # another kind of asker
            (999, "charged twice again", "person", moment),  # gone
        ]
        for search_id, query, kind, when in refusals:
            assert search_log.revise(db, search_id, query, kind, 1, None, "hybrid", when) is False
        search_log.record_click(db, row, "b")
        assert search_log.revise(db, row, "charged twice again", "person", 1, None, "hybrid", moment) is False
        assert [r["query"] for r in db.execute("SELECT query FROM search_log")] == ["charged twice [card ending 1111]"]
    finally:
        db.close()


# == the page's searches: the session's person, one row per typed search ===========================================


def test_typing_on_the_search_page_is_one_search_log_row_with_its_last_query(logged):
    answers = [typed(logged.client, q) for q in ("dupl", "duplicate", "duplicate charge")]
    assert len({a["search_id"] for a in answers}) == 1
    [entry] = entries(logged)
    assert entry["id"] == answers[0]["search_id"]
    assert entry["query"] == "duplicate charge" and entry["actor_kind"] == "person"
    assert entry["results"] == len(answers[-1]["results"])
    other = typed(logged.client, "refund window")  # another search: a row of its own
    assert other["search_id"] != answers[0]["search_id"]
    assert [e["query"] for e in entries(logged)] == ["duplicate charge", "refund window"]


def test_the_server_rendered_page_and_the_script_share_the_row(logged):
    assert logged.client.get("/?q=duplicate&mode=keyword").status_code == 200
    typed(logged.client, "duplicate charge")
    assert [(e["query"], e["actor_kind"]) for e in entries(logged)] == [("duplicate charge", "person")]


def test_a_clicked_search_is_never_revised(logged):
    first = typed(logged.client, "duplicate")
    db = store.connect(logged.data)
    try:
        search_log.record_click(db, first["search_id"], "pay-duplicate-charge")
    finally:
        db.close()
    second = typed(logged.client, "duplicate charge")
    assert second["search_id"] != first["search_id"] and len(entries(logged)) == 2


def test_the_page_search_logs_the_logged_in_person_and_counts_for_them(logged):
    login(logged.client, "agnes")
    typed(logged.client, "duplicate")
    typed(logged.client, "duplicate", headers={})  # the same browser without the header: the cookie is ignored
    assert [e["actor_kind"] for e in entries(logged)] == ["person", "anonymous"]


def test_api_callers_never_revise_rows(logged):
    for query in ("dupl", "duplicate"):
        typed(logged.client, query, headers=logged.headers("agnes"))  # a bot: one row per search
        typed(logged.client, query, headers={})  # anonymous: one row per search
    assert [e["actor_kind"] for e in entries(logged)] == ["bot", "anonymous", "bot", "anonymous"]


def test_nobody_can_revise_another_browsers_row(logged):
    mine = typed(logged.client, "duplicate")
    stranger = logged.app.test_client()
    # The row id is not a parameter anyone can send: a search_id argument is refused...
    refused = stranger.get(
        "/api/v1/search", query_string={"q": "duplicate charge", "search_id": mine["search_id"]}, headers=PAGE
    )
    assert refused.status_code == 400
    theirs = typed(stranger, "duplicate charge")  # ...and another browser's typing is a search of its own
    # ...and a session cookie not signed by the server is no session.
    forged = logged.app.test_client()
    forged.set_cookie("kb_session", f'{{"search_row": {mine["search_id"]}}}')
    third = typed(forged, "duplicate charge again")
    assert len({mine["search_id"], theirs["search_id"], third["search_id"]}) == 3
    assert [e["query"] for e in entries(logged)] == ["duplicate", "duplicate charge", "duplicate charge again"]


def test_the_header_reads_the_session_for_the_search_get_only(logged):
    login(logged.client, "ann")
    draft = {"sop_id": "x", "markdown": "x", "summary": "x"}
    assert logged.client.post("/api/v1/drafts", json=draft, headers=PAGE).status_code == 401
    assert logged.client.get("/api/v1/drafts", headers=PAGE).status_code == 401
    response = logged.client.post("/api/v1/search", json={"query": "duplicate"}, headers=PAGE)
    assert response.status_code == 200
    assert [e["actor_kind"] for e in entries(logged)] == ["anonymous"]


def test_a_card_number_typed_is_answered_and_logged_masked(logged):
    answer = typed(logged.client, f"refund {CARD}")
    assert answer["query"] == "refund [card ending 1111]"
    assert [e["query"] for e in entries(logged)] == ["refund [card ending 1111]"]


# == what each result carries =====================================================================================


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"effective": "2026-12-01", "review_by": "2027-06-01", "status": "published"}, ("recently_updated",)),
        ({"effective": "2026-11-18", "review_by": None, "status": "published"}, ()),  # 15 days: not recent
        ({"effective": "2026-11-19", "status": "published"}, ("recently_updated",)),  # 14 days: recent
        ({"effective": "2026-12-24", "status": "published"}, ()),  # not in force yet
        ({"effective": "2025-01-01", "revised": "2026-12-02T10:00:00+02:00"}, ("recently_updated",)),
        ({"effective": "2025-01-01", "review_by": "2026-12-02", "status": "published"}, ("review_overdue",)),
        ({"effective": "2025-01-01", "review_by": "2026-12-03", "status": "published"}, ()),  # due today: not yet
        ({"effective": "2026-12-03", "review_by": "2026-01-01", "status": "retired"}, BADGES),
    ],
)
def test_badges_of_a_document(record, expected):
    assert badges(record, dt.date(2026, 12, 3), 14) == expected


def test_each_result_carries_its_dates_and_badges(logged):
    answer = typed(logged.client, "duplicate")
    assert answer["results"]
    today, days = dt.date.today(), logged.settings["RECENT_DAYS"]
    for hit in answer["results"]:
        record = {"effective": hit["effective"], "review_by": hit["review_by"], "status": "published"}
        assert hit["badges"] == list(badges(record, today, days))


def test_result_links_carry_the_masked_query_and_the_search_row():
    assert (
        result_link("/sops/a#b", "refund [card ending 1111]", 7) == "/sops/a?q=refund+%5Bcard+ending+1111%5D&from=7#b"
    )
    assert result_link("/sops/a/revisions/abc#b", "x", None) == "/sops/a/revisions/abc?q=x#b"
    long = "word " * 100
    assert len(re.search(r"q=([^&#]*)", result_link("/sops/a#b", long, 1))[1]) <= 200


def test_the_page_links_each_result_with_the_query_and_its_row(logged):
    page = logged.client.get("/?q=duplicate+%3Cscript%3Ealert(1)%3C/script%3E").get_data(as_text=True)
    [entry] = entries(logged)
    assert f"from={entry['id']}#" in page and "?q=duplicate+%3Cscript%3Ealert%281%29%3C%2Fscript%3E" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
