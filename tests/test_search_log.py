"""The search log: every search the API and the search page answer is logged with its query masked and who
asked by kind (bot, person, anonymous), pruned after KB_SEARCH_LOG_DAYS at most hourly, and counted per day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kb import search_log, store
from kb.errors import InputError
from kb.web.searches import PRUNED_KEY
from tests.conftest import entries

CARD = "4111 1111 1111 1111"


def test_an_api_search_is_logged_masked_as_a_bot_with_a_key(logged):
    response = logged.client.get(
        f"/api/v1/search?q=refund+for+card+{CARD.replace(' ', '+')}", headers=logged.headers("agnes")
    )
    assert response.status_code == 200
    [entry] = entries(logged)
    assert entry["query"] == "refund for card [card ending 1111]" and "4111" not in entry["query"]
    assert entry["actor_kind"] == "bot" and entry["mode"] == "hybrid"
    assert entry["results"] == len(response.get_json()["results"]) > 0
    assert entry["top_sop_id"] == response.get_json()["results"][0]["sop_id"]
    assert entry["at"].endswith("Z")


def test_who_asked_is_anonymous_without_a_key_and_a_person_on_the_search_page(logged):
    assert logged.client.post("/api/v1/search", json={"query": "payout late", "mode": "keyword"}).status_code == 200
    assert logged.client.get("/?q=declined+card").status_code == 200
    moved = logged.client.get(f"/?q={CARD.replace(' ', '+')}")  # the page first takes the card out of the address
    assert moved.status_code == 303
    assert logged.client.get(moved.headers["Location"]).status_code == 200
    found = [(e["actor_kind"], e["query"], e["mode"]) for e in entries(logged)]
    assert found == [
        ("anonymous", "payout late", "keyword"),
        ("person", "declined card", "hybrid"),
        ("person", "[card ending 1111]", "hybrid"),
    ]


def test_a_search_with_no_result_is_logged_with_none(logged):
    response = logged.client.get("/api/v1/search?q=zzzqqxx&mode=keyword", headers=logged.headers("agnes"))
    assert response.status_code == 200 and response.get_json()["results"] == []
    [entry] = entries(logged)
    assert entry["results"] == 0 and entry["top_sop_id"] is None


def test_a_refused_search_is_not_logged(logged):
    assert logged.client.get("/api/v1/search?q=refund&k=0").status_code == 400
    assert entries(logged) == []


def test_old_searches_are_pruned_on_the_first_search_and_then_at_most_hourly(logged):
    db = store.connect(logged.data)
    try:
        search_log.record(db, "old one", "person", 1, "pay-duplicate-charge", "hybrid")
        old = (datetime.now(UTC) - timedelta(days=91)).strftime(store.TIME_FORMAT)
        with store.transaction(db):
            db.execute("UPDATE search_log SET at = ?", (old,))
    finally:
        db.close()
    logged.app.extensions["kb"].pop(PRUNED_KEY, None)  # as in a process that has not pruned yet
    assert logged.client.get("/api/v1/search?q=refund").status_code == 200
    assert [e["query"] for e in entries(logged)] == ["refund"]  # 91 days > KB_SEARCH_LOG_DAYS (90): gone
    db = store.connect(logged.data)
    try:
        search_log.record(db, "another old one", "person", 0, None, "hybrid")
        with store.transaction(db):
            db.execute("UPDATE search_log SET at = ? WHERE query = 'another old one'", (old,))
    finally:
        db.close()
    assert logged.client.get("/api/v1/search?q=payout").status_code == 200
    assert [e["query"] for e in entries(logged)] == ["refund", "another old one", "payout"]  # pruned within the hour


def test_prune_keeps_what_is_younger_than_the_days(tmp_path):
    db = store.connect(tmp_path)
    moment = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    for query, age in (("fresh", 1), ("edge", 89), ("stale", 91)):
        search_log.record(db, query, "bot", 0, None, "hybrid")
        at = (moment - timedelta(days=age)).strftime(store.TIME_FORMAT)
        with store.transaction(db):
            db.execute("UPDATE search_log SET at = ? WHERE query = ?", (at, query))
    assert search_log.prune(db, 90, moment) == 1
    assert [r[0] for r in db.execute("SELECT query FROM search_log ORDER BY id")] == ["fresh", "edge"]
    with pytest.raises(InputError, match="days"):
        search_log.prune(db, 0)
    db.close()


def test_searches_are_counted_per_day_with_bots_apart_from_people(tmp_path):
    db = store.connect(tmp_path)
    for kind, day in (("person", 1), ("person", 1), ("bot", 1), ("anonymous", 2), ("bot", 2)):
        search_log.record(db, "q", kind, 1, "x", "hybrid")
        with store.transaction(db):
            db.execute("UPDATE search_log SET at = ? WHERE id = last_insert_rowid()", (f"2026-11-0{day}T10:00:00Z",))
    assert search_log.searches_per_day(db) == [
        {"day": "2026-11-01", "person": 2, "bot": 1, "anonymous": 0, "total": 3},
        {"day": "2026-11-02", "person": 0, "bot": 1, "anonymous": 1, "total": 2},
    ]
    assert [d["day"] for d in search_log.searches_per_day(db, since="2026-11-02")] == ["2026-11-02"]
    assert search_log.searches_per_day(db, until="2026-10-31") == []
    with pytest.raises(InputError, match="since"):
        search_log.searches_per_day(db, since="yesterday")
    with pytest.raises(InputError, match="actor_kind"):
        search_log.record(db, "q", "robot", 0, None, "hybrid")
    db.close()


def test_a_search_log_that_cannot_be_written_never_fails_the_search(logged, monkeypatch):
    import sqlite3

    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(search_log, "record", broken)
    assert logged.client.get("/api/v1/search?q=refund").status_code == 200


def test_only_the_first_sop_opened_from_a_search_is_kept_as_its_click(tmp_path):
    db = store.connect(tmp_path)
    try:
        first = search_log.record(db, "refund", "person", 3, "ecom-refund", "hybrid")
        assert search_log.record_click(db, first, "ecom-refund") is True
        assert search_log.record_click(db, first, "pay-duplicate-charge") is False
        assert search_log.record_click(db, 999, "ecom-refund") is False  # pruned or unknown: nothing happens
        row = db.execute("SELECT clicked FROM search_log WHERE id = ?", (first,)).fetchone()
        assert row["clicked"] == "ecom-refund"
        with pytest.raises(InputError, match="^search: must be a whole number"):
            search_log.record_click(db, 0, "ecom-refund")
    finally:
        db.close()
