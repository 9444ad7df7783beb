"""The audit log: recording rows (card numbers masked) and querying them with validated filters."""

from __future__ import annotations

import json

import pytest

from kb.audit import ACTIONS, OUTCOMES, query, record
from kb.errors import QueryError
from kb.store import connect
from tests.conftest import bind_database

VISA = "4111 1111 1111 1111"
MASTERCARD = "5555555555554444"


@pytest.fixture
def db(tmp_path, database_url):
    """A fresh workflow database in a temporary instance folder."""
    conn = connect(bind_database(tmp_path / "instance", database_url))  # on SQLite, then PostgreSQL
    yield conn
    conn.close()


def at(db, row_id: int, moment: str) -> None:
    """Set the time of an audit row (rows are stamped now; tests need known times)."""
    with db:
        db.execute("UPDATE audit SET at = ? WHERE id = ?", (moment, row_id))


def test_the_vocabulary():
    assert len(ACTIONS) == len(set(ACTIONS)) == 27
    assert {
        "login",
        "draft_approved",
        "published",
        "permission_denied",
        "unauthenticated_write",
        "external_change",
        "webhook_added",
        "webhook_removed",
        "tickets_imported",
        "tickets_removed",
        "user_disabled",
        "user_enabled",
    } <= set(ACTIONS)
    assert OUTCOMES == ("ok", "denied", "failed")


def test_record_stores_every_field_and_returns_the_id(db):
    row_id = record(
        db,
        "published",
        actor="alice",
        target="sop:pay-duplicate-charge",
        client="web",
        details={"revision": "abc123", "reviewer": "bob"},
    )
    row = db.execute("SELECT * FROM audit WHERE id = ?", (row_id,)).fetchone()
    assert dict(row) | {"at": None} == {
        "id": row_id,
        "at": None,
        "actor": "alice",
        "action": "published",
        "target": "sop:pay-duplicate-charge",
        "outcome": "ok",
        "client": "web",
        "details": json.dumps({"reviewer": "bob", "revision": "abc123"}),
    }
    assert row["at"].endswith("Z") and len(row["at"]) == 20


def test_record_with_only_an_action(db):
    row_id = record(db, "logout")
    assert query(db) == [
        {
            "id": row_id,
            "at": query(db)[0]["at"],
            "actor": None,
            "action": "logout",
            "target": None,
            "outcome": "ok",
            "client": None,
            "details": None,
        }
    ]


@pytest.mark.parametrize(("action", "outcome"), [("hacked", "ok"), ("", "ok"), ("login", "maybe"), ("login", None)])
def test_record_rejects_unknown_actions_and_outcomes(db, action, outcome):
    with pytest.raises(ValueError):
        record(db, action, outcome=outcome)
    assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == 0


def test_record_masks_card_numbers_in_details_and_target(db):
    record(
        db,
        "draft_edited",
        target=f"draft:1#{MASTERCARD}",
        details={
            "note": f"customer wrote {VISA} in the ticket",
            "pan": 4111111111111111,
            "nested": {"cards": [MASTERCARD, "order 1234567890123"]},
            MASTERCARD: "as a key",
            "count": 3,
            "flag": True,
        },
    )
    raw = db.execute("SELECT target, details FROM audit").fetchone()
    stored = raw["target"] + raw["details"]
    for digits in ("4111111111111111", VISA, MASTERCARD):
        assert digits not in stored
    entry = query(db)[0]
    assert entry["target"] == "draft:1#[card ending 4444]"
    assert entry["details"] == {
        "note": "customer wrote [card ending 1111] in the ticket",
        "pan": "[card ending 1111]",
        "nested": {"cards": ["[card ending 4444]", "order 1234567890123"]},
        "[card ending 4444]": "as a key",
        "count": 3,
        "flag": True,
    }


@pytest.fixture
def log(db):
    """Six audit rows at known times, oldest first."""
    rows = [
        ("2026-11-30T23:59:59Z", "login", "alice", "user:alice", "ok"),
        ("2026-12-01T00:00:00Z", "draft_created", "alice", "sop:pay-duplicate-charge", "ok"),
        ("2026-12-01T09:15:02Z", "draft_edited", "alice", "sop:pay-duplicate-charge#procedure", "ok"),
        ("2026-12-01T12:00:00Z", "published", "bob", "sop:pay-duplicate-charge/abc123", "failed"),
        ("2026-12-01T23:59:59Z", "permission_denied", "carol", "sop:pay-duplicate-charge-eu", "denied"),
        ("2026-12-02T00:00:00Z", "login_failed", None, "user:mallory", "failed"),
    ]
    ids = []
    for moment, action, actor, target, outcome in rows:
        row_id = record(db, action, actor=actor, target=target, outcome=outcome, client="web")
        at(db, row_id, moment)
        ids.append(row_id)
    return ids


def ids(entries: list[dict]) -> list[int]:
    return [e["id"] for e in entries]


def test_query_returns_newest_first(db, log):
    assert ids(query(db)) == list(reversed(log))


def test_query_newest_first_is_by_time_then_id(db, log):
    at(db, log[0], "2027-01-01T00:00:00Z")
    assert ids(query(db))[0] == log[0]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"actor": "alice"}, [2, 1, 0]),
        ({"actor": "nobody"}, []),
        ({"action": "published"}, [3]),
        ({"outcome": "failed"}, [5, 3]),
        ({"outcome": "denied"}, [4]),
        ({"target": "sop:pay-duplicate-charge"}, [3, 2, 1]),
        ({"target": "sop:pay-duplicate-charge#procedure"}, [2]),
        ({"target": "sop:pay-duplicate"}, []),
        ({"target": "user:alice"}, [0]),
        ({"since": "2026-12-01"}, [5, 4, 3, 2, 1]),
        ({"until": "2026-12-01"}, [4, 3, 2, 1, 0]),
        ({"since": "2026-12-01", "until": "2026-12-01"}, [4, 3, 2, 1]),
        ({"since": "2026-12-01T09:15:02Z"}, [5, 4, 3, 2]),
        ({"until": "2026-12-01T09:15:02Z"}, [2, 1, 0]),
        ({"since": "2026-12-01T10:15:02+01:00", "until": "2026-12-01T12:00:00"}, [3, 2]),
        ({"actor": "alice", "since": "2026-12-01", "action": "draft_edited"}, [2]),
        ({"limit": 2}, [5, 4]),
        ({"limit": 2, "offset": 2}, [3, 2]),
        ({"offset": 6}, []),
        ({"limit": "3"}, [5, 4, 3]),
    ],
)
def test_query_filters(db, log, filters, expected):
    assert ids(query(db, **filters)) == [log[i] for i in expected]


def test_query_entries_have_parsed_details(db):
    record(db, "role_changed", actor="cli:root", target="user:alice", details={"from": "agent", "to": "admin"})
    (entry,) = query(db, target="user:alice")
    assert entry["details"] == {"from": "agent", "to": "admin"}
    assert set(entry) == {"id", "at", "actor", "action", "target", "outcome", "client", "details"}


def test_query_target_filter_finds_a_masked_target(db):
    record(db, "draft_edited", target=f"draft:{MASTERCARD}")
    assert len(query(db, target=f"draft:{MASTERCARD}")) == 1


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"action": "hacked"}, "action"),
        ({"action": ""}, "action"),
        ({"outcome": "maybe"}, "outcome"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-13-01"}, "since"),
        ({"since": 20261201}, "since"),
        ({"until": "2026-12-01T25:00:00Z"}, "until"),
        ({"until": "12/01/2026"}, "until"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "until"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": 2.5}, "limit"),
        ({"limit": None}, "limit"),
        ({"limit": True}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
    ],
)
def test_query_rejects_bad_filters_naming_the_field(db, log, filters, field):
    with pytest.raises(QueryError) as caught:
        query(db, **filters)
    assert caught.value.details == {"field": field}
    assert caught.value.message.startswith(f"{field}: ")


@pytest.mark.parametrize("limit", [1, 1000])
def test_query_limit_bounds_are_allowed(db, log, limit):
    assert len(query(db, limit=limit)) == min(limit, len(log))


def test_record_outside_a_transaction_commits_at_once(db, tmp_path):
    record(db, "login", actor="alice")
    other = connect(tmp_path / "instance")
    assert [r["action"] for r in query(other)] == ["login"]
    other.close()


def test_record_joins_the_callers_transaction_and_rolls_back_with_it(db, tmp_path):
    stamp = "2026-12-01T09:15:02Z"
    with pytest.raises(RuntimeError), db:
        db.execute(
            "INSERT INTO drafts (sop_id, markdown, summary, author, status, created, updated)"
            " VALUES ('pay-x', '# x', 'new', 'alice', 'draft', ?, ?)",
            (stamp, stamp),
        )
        record(db, "draft_created", actor="alice", target="sop:pay-x")
        assert db.in_transaction  # record did not commit the caller's work early
        raise RuntimeError("the caller fails after recording")
    assert db.execute("SELECT count(*) FROM drafts").fetchone()[0] == 0
    assert query(db) == []


@pytest.mark.parametrize(
    "written",
    [
        "4111\u00a01111\u00a01111\u00a01111",  # no-break spaces
        "4111\u200b1111\u200b1111\u200b1111",  # zero-width spaces
        "4111\u20131111\u20131111\u20131111",  # en dashes
        "\u0664\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661",  # Arabic-Indic
        "\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11",  # full-width
    ],
    ids=["nbsp", "zero-width", "en dash", "arabic-indic", "full-width"],
)
def test_record_masks_actor_target_client_and_details_in_any_form(db, written):
    record(
        db,
        "login_failed",
        actor=f"user {written}",
        target=f"user:{written}",
        outcome="denied",
        client=f"10.0.0.1 {written}",
        details={"typed": f"{written} exp 09/27 cvv 123"},
    )
    row = db.execute("SELECT actor, target, client, details FROM audit").fetchone()
    assert row["actor"] == "user [card ending 1111]"
    assert row["target"] == "user:[card ending 1111]"
    assert row["client"] == "10.0.0.1 [card ending 1111]"
    assert json.loads(row["details"]) == {"typed": "[card ending 1111] exp [expiry] cvv [cvv]"}
    # Filters are redacted the same way, so the name or target as typed finds its rows.
    assert [e["id"] for e in query(db, actor=f"user {written}")] == [1]
    assert [e["id"] for e in query(db, target=f"user:{written}")] == [1]
