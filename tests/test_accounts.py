"""The workflow database, users and roles, passwords and API keys: real SQLite in a temporary folder."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from kb import accounts
from kb.accounts import (
    ROLES,
    User,
    add_user,
    authenticate,
    create_key,
    get_user,
    has_role,
    key_grant,
    list_keys,
    list_users,
    revoke_key,
    role_scopes,
    set_disabled,
    set_password,
    set_role,
    user_for_key,
)
from kb.database import IntegrityError, engine
from kb.errors import ConfigError, InputError, NotFoundError
from kb.store import SCHEMA_VERSION, TIME_FORMAT, connect, now, transaction
from tests.conftest import bind_database

PASSWORD = "correct horse battery"


@pytest.fixture
def db(tmp_path, database_url):
    """A fresh workflow database in a temporary instance folder."""
    conn = connect(bind_database(tmp_path / "instance", database_url))  # on SQLite, then PostgreSQL
    yield conn
    conn.close()


def ago(seconds: int) -> str:
    """The stored-format time this many seconds ago."""
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime(TIME_FORMAT)


# --- the database ---------------------------------------------------------------------------------

EXPECTED_COLUMNS = {
    "users": ["id", "name", "role", "password_hash", "created", "disabled", "session_generation"],
    "api_keys": ["id", "user_id", "label", "key_hash", "prefix", "created", "last_used", "revoked", "scopes"],
    "audit": ["id", "at", "actor", "action", "target", "outcome", "client", "details"],
    "drafts": [
        "id",
        "sop_id",
        "base_revision",
        "markdown",
        "summary",
        "author",
        "status",
        "reviewer",
        "comment",
        "revision",
        "restored_from",
        "created",
        "updated",
    ],
    "tickets": ["id", "text", "category", "source", "imported_by", "imported"],
    "webhooks": ["id", "url", "events", "secret", "created_by", "created", "removed"],
    "webhook_deliveries": [
        "id",
        "webhook_id",
        "event_id",
        "event",
        "payload",
        "status",
        "attempts",
        "next_attempt",
        "claimed_until",
        "claim",
        "last_attempt",
        "last_status",
        "last_error",
        "created",
        "delivered",
    ],
    "feedback": ["id", "sop_id", "anchor", "helpful", "reason", "query", "actor", "actor_kind", "created"],
    "flags": ["id", "sop_id", "anchor", "comment", "actor", "actor_kind", "created", "resolved"],
    "search_log": ["id", "at", "query", "actor_kind", "results", "top_sop_id", "mode", "clicked", "channel"],
}


def test_connect_creates_the_folder_and_the_schema_at_the_current_version(tmp_path):
    db = connect(tmp_path / "new" / "instance")
    assert (tmp_path / "new" / "instance" / "kb.sqlite").is_file()
    tables = {r["name"] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == set(EXPECTED_COLUMNS)
    for table, columns in EXPECTED_COLUMNS.items():
        assert [r["name"] for r in db.execute(f"PRAGMA table_info({table})")] == columns
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 8
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 10000
    assert db.row_factory is sqlite3.Row


def test_connect_again_keeps_the_data(tmp_path):
    first = connect(tmp_path)
    add_user(first, "alice", "author", PASSWORD)
    first.close()
    second = connect(tmp_path)
    assert get_user(second, "alice") == User(1, "alice", "author")
    assert second.execute("PRAGMA user_version").fetchone()[0] == 8


def test_connect_upgrades_a_version_1_database_keeping_its_users_and_keys(tmp_path):
    from werkzeug.security import generate_password_hash

    from kb.schema import MIGRATIONS
    from kb.schema import statements as _statements

    raw = sqlite3.connect(tmp_path / "kb.sqlite")
    for statement in _statements(MIGRATIONS[0]):  # the schema exactly as kb made it at version 1
        raw.execute(statement)
    raw.execute(
        "INSERT INTO users (name, role, password_hash, created) VALUES ('alice', 'author', ?, ?)",
        (generate_password_hash(PASSWORD), now()),
    )
    raw.execute(
        "INSERT INTO api_keys (user_id, label, key_hash, prefix, created) VALUES (1, 'bot', ?, 'kb_abc', ?)",
        (hashlib.sha256(b"kb_abc-key").hexdigest(), now()),
    )
    raw.execute("PRAGMA user_version=1")
    raw.commit()
    raw.close()
    db = connect(tmp_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 8
    columns = [r["name"] for r in db.execute("PRAGMA table_info(users)")]
    assert columns == EXPECTED_COLUMNS["users"]
    alice = authenticate(db, "alice", PASSWORD)
    assert alice == User(1, "alice", "author") and alice.generation == 0
    assert user_for_key(db, "kb_abc-key") == alice
    assert key_grant(db, "kb_abc-key")[1] == {"search", "read", "write"}  # every scope, bounded by the role
    assert list_keys(db)[0]["scopes"] == ["search", "read", "write", "review", "admin"]
    db.close()
    again = connect(tmp_path)  # a second start migrates nothing
    assert again.execute("PRAGMA user_version").fetchone()[0] == 8 and get_user(again, "alice").generation == 0
    again.close()


def test_connect_refuses_a_database_from_a_newer_kb(tmp_path):
    raw = sqlite3.connect(tmp_path / "kb.sqlite")
    raw.execute("PRAGMA user_version=99")
    raw.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        connect(tmp_path)


def test_foreign_keys_are_enforced(db):
    with pytest.raises(IntegrityError), db:
        db.execute(
            "INSERT INTO api_keys (user_id, label, key_hash, prefix, created) VALUES (42, 'x', 'h', 'p', ?)", (now(),)
        )


def test_transaction_commits_alone_and_joins_an_open_one(db):
    with transaction(db):
        add_user(db, "alice", "agent", PASSWORD)
        assert db.in_transaction  # add_user's own transaction joined this one instead of committing
    assert not db.in_transaction and get_user(db, "alice").role == "agent"

    with pytest.raises(RuntimeError), transaction(db):
        set_role(db, "alice", "admin")
        raise RuntimeError("the caller fails")
    assert get_user(db, "alice").role == "agent"

    with pytest.raises(RuntimeError), db:  # a plain `with db:` block, after its first write
        db.execute("UPDATE users SET created = 'changed'")
        set_role(db, "alice", "admin")
        raise RuntimeError("the caller fails")
    assert get_user(db, "alice").role == "agent"
    assert db.execute("SELECT created FROM users").fetchone()[0] != "changed"


def test_now_is_utc_with_seconds():
    stamp = now()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    assert abs(datetime.strptime(stamp, TIME_FORMAT).replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(seconds=5)


# --- roles ----------------------------------------------------------------------------------------


def test_roles_are_in_increasing_order_of_power():
    assert ROLES == ("agent", "author", "approver", "admin")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("needed", ROLES)
def test_a_role_includes_every_role_below_it(role, needed):
    assert has_role(User(1, "x1", role), needed) is (ROLES.index(role) >= ROLES.index(needed))


@pytest.mark.parametrize("needed", ROLES)
def test_no_user_and_a_disabled_user_have_no_role(needed):
    assert has_role(None, needed) is False
    assert has_role(User(1, "x1", "admin", disabled=True), needed) is False


def test_has_role_rejects_an_unknown_role_name():
    with pytest.raises(ValueError):
        has_role(User(1, "x1", "admin"), "superuser")


# --- adding users: every validation rule ------------------------------------------------------------


@pytest.mark.parametrize("name", ["al", "alice", "a.b", "a_b", "a-b", "0day", "x" * 64, "j.smith-2"])
def test_add_user_accepts_valid_names(db, name):
    user = add_user(db, name, "agent", PASSWORD)
    assert user == User(user.id, name, "agent")
    assert get_user(db, name) == user


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a",
        "x" * 65,
        "Alice",
        "-alice",
        ".alice",
        "_alice",
        "al ice",
        "alice\n",
        "al/ice",
        "alicé",
        None,
        7,
        "4111111111111111",  # digits only are a valid name, but not a card number
        "pan-4111-1111-1111-1111",
    ],
)
def test_add_user_rejects_invalid_names(db, name):
    with pytest.raises(InputError, match=r"^name: must be 2-64 characters") as caught:
        add_user(db, name, "agent", PASSWORD)
    assert caught.value.details == {"field": "name"}
    assert list_users(db) == []


@pytest.mark.parametrize("role", ["", "Admin", "root", "reader", None])
def test_add_user_rejects_unknown_roles(db, role):
    with pytest.raises(InputError, match=r"^role: must be one of agent, author, approver, admin") as caught:
        add_user(db, "alice", role, PASSWORD)
    assert caught.value.details == {"field": "role"}
    assert list_users(db) == []


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "password: must be at least 10 characters"),
        ("123456789", "password: must be at least 10 characters"),
        ("aaaaaaaaaa", "password: must not be one character repeated"),
        ("          ", "password: must not be one character repeated"),
        ("x" * 40, "password: must not be one character repeated"),
        (None, "password: must be text"),
        (b"bytes-password", "password: must be text"),
    ],
)
def test_add_user_rejects_weak_passwords(db, password, message):
    with pytest.raises(InputError) as caught:
        add_user(db, "alice", "agent", password)
    assert caught.value.message == message and caught.value.details == {"field": "password"}
    assert list_users(db) == []


@pytest.mark.parametrize("password", ["1234567890", "aaaaaaaaab", "ten chars!", "ünïcødé-pässwörd"])
def test_add_user_accepts_passwords_of_ten_characters_not_all_the_same(db, password):
    add_user(db, "alice", "agent", password)
    assert authenticate(db, "alice", password) == User(1, "alice", "agent")


def test_add_user_rejects_a_duplicate_name(db):
    add_user(db, "alice", "author", PASSWORD)
    with pytest.raises(InputError, match="name: a user named 'alice' already exists") as caught:
        add_user(db, "alice", "admin", "another password")
    assert caught.value.details == {"field": "name"}
    assert list_users(db) == [User(1, "alice", "author")]


# --- passwords ------------------------------------------------------------------------------------


def test_only_a_scrypt_hash_of_the_password_is_stored(db):
    add_user(db, "alice", "author", PASSWORD)
    row = db.execute("SELECT * FROM users WHERE name = 'alice'").fetchone()
    assert row["password_hash"].startswith("scrypt:")
    assert PASSWORD not in row["password_hash"]
    assert not any(PASSWORD in str(value) for value in tuple(row))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["created"]) and row["disabled"] == 0


def test_authenticate_accepts_the_right_password_only(db):
    add_user(db, "alice", "approver", PASSWORD)
    assert authenticate(db, "alice", PASSWORD) == User(1, "alice", "approver")
    assert authenticate(db, "alice", PASSWORD + "!") is None
    assert authenticate(db, "alice", PASSWORD.upper()) is None
    assert authenticate(db, "alice", "") is None
    assert authenticate(db, "Alice", PASSWORD) is None


def test_authenticate_refuses_a_disabled_user_until_enabled_again(db):
    add_user(db, "alice", "author", PASSWORD)
    assert set_disabled(db, "alice") == User(1, "alice", "author", disabled=True)
    assert authenticate(db, "alice", PASSWORD) is None
    assert get_user(db, "alice").disabled is True
    set_disabled(db, "alice", False)
    assert authenticate(db, "alice", PASSWORD) == User(1, "alice", "author")


def test_authenticate_an_unknown_user_still_checks_a_hash(db, monkeypatch):
    checked = []
    real = accounts.check_password_hash

    def spy(pwhash, password):
        checked.append(pwhash)
        return real(pwhash, password)

    monkeypatch.setattr(accounts, "check_password_hash", spy)
    assert authenticate(db, "nobody", PASSWORD) is None
    assert len(checked) == 1 and checked[0].startswith("scrypt:")


@pytest.mark.parametrize(("name", "password"), [(None, PASSWORD), ("alice", None), (3, 4)])
def test_authenticate_returns_none_for_input_that_is_not_text(db, name, password):
    add_user(db, "alice", "author", PASSWORD)
    assert authenticate(db, name, password) is None


def test_set_password_replaces_the_old_one(db):
    add_user(db, "alice", "author", PASSWORD)
    set_password(db, "alice", "a brand new secret")
    assert authenticate(db, "alice", PASSWORD) is None
    assert authenticate(db, "alice", "a brand new secret") == User(1, "alice", "author")


def test_set_password_validates_and_keeps_the_old_one(db):
    add_user(db, "alice", "author", PASSWORD)
    with pytest.raises(InputError, match="password: must be at least 10 characters"):
        set_password(db, "alice", "short")
    with pytest.raises(NotFoundError, match="no user named 'bob'"):
        set_password(db, "bob", "a brand new secret")
    assert authenticate(db, "alice", PASSWORD) is not None


# --- users and roles ------------------------------------------------------------------------------


def test_get_and_list_users(db):
    add_user(db, "carol", "admin", PASSWORD)
    add_user(db, "alice", "agent", PASSWORD)
    assert get_user(db, "alice") == User(2, "alice", "agent")
    assert get_user(db, "nobody") is None
    assert list_users(db) == [User(2, "alice", "agent"), User(1, "carol", "admin")]


def test_set_role_changes_the_stored_role(db):
    add_user(db, "alice", "agent", PASSWORD)
    assert set_role(db, "alice", "approver") == User(1, "alice", "approver")
    assert get_user(db, "alice").role == "approver"
    assert has_role(get_user(db, "alice"), "author")


def test_set_role_rejects_a_bad_role_or_an_unknown_user(db):
    add_user(db, "alice", "agent", PASSWORD)
    with pytest.raises(InputError, match="role: must be one of") as caught:
        set_role(db, "alice", "owner")
    assert caught.value.details == {"field": "role"}
    with pytest.raises(NotFoundError, match="no user named 'bob'"):
        set_role(db, "bob", "admin")
    assert get_user(db, "alice").role == "agent"


# --- API keys -------------------------------------------------------------------------------------


def test_a_key_is_created_works_and_stops_working_when_revoked(db):
    add_user(db, "bot", "agent", PASSWORD)
    key, row = create_key(db, "bot", "chatbot")
    assert re.fullmatch(r"kb_[A-Za-z0-9_-]{43}", key)
    assert row == {
        "id": 1,
        "user": "bot",
        "label": "chatbot",
        "prefix": key[:10],
        "scopes": ["search", "read"],
        "created": row["created"],
        "last_used": None,
        "revoked": None,
    }
    assert user_for_key(db, key) == User(1, "bot", "agent")

    revoked = revoke_key(db, row["id"])
    assert revoked["revoked"] is not None
    assert user_for_key(db, key) is None
    assert list_keys(db)[0]["revoked"] == revoked["revoked"]


def test_only_the_sha256_of_a_key_is_stored(db):
    add_user(db, "bot", "agent", PASSWORD)
    key, _ = create_key(db, "bot", "chatbot")
    row = db.execute("SELECT * FROM api_keys").fetchone()
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["prefix"] == key[:10]
    assert not any(key in str(value) for value in tuple(row))
    if engine(db) == "sqlite":  # a dump of the whole file
        assert all(key not in line for line in db.iterdump())


def test_keys_are_unique_and_each_works_for_its_own_user(db):
    add_user(db, "bot", "agent", PASSWORD)
    add_user(db, "editor", "author", PASSWORD)
    first, _ = create_key(db, "bot", "one")
    second, _ = create_key(db, "editor", "two")
    assert first != second
    assert user_for_key(db, first).name == "bot"
    assert user_for_key(db, second).name == "editor"


@pytest.mark.parametrize("key", ["", "kb_", "kb_nope", "not-a-key", None, 12, "KB_" + "x" * 43])
def test_an_unknown_key_finds_no_user(db, key):
    add_user(db, "bot", "agent", PASSWORD)
    create_key(db, "bot", "chatbot")
    assert user_for_key(db, key) is None


def test_a_key_follows_its_user_role_and_disabled_state(db):
    add_user(db, "bot", "agent", PASSWORD)
    key, _ = create_key(db, "bot", "chatbot")
    set_role(db, "bot", "author")
    assert user_for_key(db, key) == User(1, "bot", "author")
    set_disabled(db, "bot")
    assert user_for_key(db, key) is None
    with pytest.raises(InputError, match="user: 'bot' is disabled"):
        create_key(db, "bot", "another")


def test_last_used_is_updated_at_most_once_a_minute(db):
    add_user(db, "bot", "agent", PASSWORD)
    key, row = create_key(db, "bot", "chatbot")
    user_for_key(db, key)
    assert list_keys(db)[0]["last_used"] is not None

    recent = ago(30)
    with db:
        db.execute("UPDATE api_keys SET last_used = ?", (recent,))
    user_for_key(db, key)
    assert list_keys(db)[0]["last_used"] == recent

    old = ago(120)
    with db:
        db.execute("UPDATE api_keys SET last_used = ?", (old,))
    user_for_key(db, key)
    assert list_keys(db)[0]["last_used"] > recent


def test_revoke_is_idempotent_and_unknown_ids_are_not_found(db):
    add_user(db, "bot", "agent", PASSWORD)
    _, row = create_key(db, "bot", "chatbot")
    first = revoke_key(db, row["id"])
    with db:
        db.execute("UPDATE api_keys SET revoked = '2026-01-01T00:00:00Z'")
    again = revoke_key(db, row["id"])
    assert again == {**first, "revoked": "2026-01-01T00:00:00Z"}
    with pytest.raises(NotFoundError, match="no API key with id 99"):
        revoke_key(db, 99)


def test_list_keys_never_shows_the_hash_and_filters_by_user(db):
    add_user(db, "bot", "agent", PASSWORD)
    add_user(db, "editor", "author", PASSWORD)
    create_key(db, "bot", "one")
    create_key(db, "editor", "two")
    create_key(db, "bot", "three")
    everything = list_keys(db)
    assert [k["label"] for k in everything] == ["one", "two", "three"]
    assert all(
        set(k) == {"id", "user", "label", "prefix", "scopes", "created", "last_used", "revoked"} for k in everything
    )
    assert [k["label"] for k in list_keys(db, "bot")] == ["one", "three"]
    assert list_keys(db, "editor")[0]["user"] == "editor"
    with pytest.raises(NotFoundError):
        list_keys(db, "nobody")


@pytest.mark.parametrize("label", ["", " ", "x" * 65, "tab\there", "new\nline", "\x00", None, 5])
def test_create_key_rejects_bad_labels(db, label):
    add_user(db, "bot", "agent", PASSWORD)
    with pytest.raises(InputError, match=r"^label: must be 1-64 printable characters") as caught:
        create_key(db, "bot", label)
    assert caught.value.details == {"field": "label"}
    assert list_keys(db) == []


@pytest.mark.parametrize("label", ["x", "x" * 64, "Zendesk assist (prod)", "bot #2 / é"])
def test_create_key_accepts_printable_labels_up_to_64(db, label):
    add_user(db, "bot", "agent", PASSWORD)
    _, row = create_key(db, "bot", label)
    assert list_keys(db)[0]["label"] == row["label"] == label


def test_create_key_for_an_unknown_user_is_not_found(db):
    with pytest.raises(NotFoundError, match="no user named 'ghost'"):
        create_key(db, "ghost", "chatbot")
    assert db.execute("SELECT count(*) FROM api_keys").fetchone()[0] == 0


# --- session generations: what ends every session of a user ---------------------------------------


@pytest.mark.parametrize(
    ("change", "role", "disabled"),
    [
        (lambda db: set_password(db, "alice", "a brand new secret"), "author", False),
        (lambda db: set_role(db, "alice", "approver"), "approver", False),
        (lambda db: set_role(db, "alice", "author"), "author", False),  # even to the same role
        (lambda db: set_disabled(db, "alice"), "author", True),
        (lambda db: set_disabled(db, "alice", False), "author", False),
        (lambda db: accounts.end_sessions(db, "alice"), "author", False),
    ],
    ids=["password", "role", "same-role", "disable", "enable", "log-out"],
)
def test_each_account_change_starts_a_new_session_generation(db, change, role, disabled):
    add_user(db, "alice", "author", PASSWORD)
    add_user(db, "bob", "author", PASSWORD)
    assert get_user(db, "alice").generation == 0
    change(db)
    alice = get_user(db, "alice")
    assert alice.generation == 1 and alice.role == role and alice.disabled is disabled
    assert get_user(db, "bob").generation == 0  # other users keep their sessions
    change(db)
    assert get_user(db, "alice").generation == 2


def test_end_sessions_returns_the_new_generation_and_knows_no_stranger(db):
    add_user(db, "alice", "author", PASSWORD)
    assert accounts.end_sessions(db, "alice") == 1 == get_user(db, "alice").generation
    with pytest.raises(NotFoundError, match="no user named 'bob'"):
        accounts.end_sessions(db, "bob")


def test_a_missing_user_is_named_masked_in_the_error(db):
    with pytest.raises(NotFoundError) as caught:
        set_role(db, "card 4111 1111 1111 1111", "agent")
    assert "4111 1111 1111 1111" not in caught.value.message and "[card ending 1111]" in caught.value.message


# --- names typed into the log-in form ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("ann", "ann"),
        ("  ann  ", "ann"),
        ("\uff41\uff4e\uff4e", "ann"),  # full-width letters are the same name after NFKC
        ("4111 1111 1111 1111", "[card ending 1111]"),
        ("4111\u20131111\u20131111\u20131111", "[card ending 1111]"),
        ("Ann Smith", "Ann Smith"),  # not an account name, but a harmless thing to have typed
        ("x" * 64, "x" * 64),
    ],
    ids=["plain", "spaces", "full-width", "card", "card-en-dashes", "display-name", "64"],
)
def test_login_name_normalises_and_masks(typed, name):
    assert accounts.login_name(typed) == name


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "name: required"),
        ("   ", "name: required"),
        ("x" * 65, "name: at most 64 printable characters"),
        ("x" * 100_000, "name: at most 64 characters"),
        ("ann\x00", "name: must not contain control characters"),
        ("ann\r\nadmin", "name: must not contain control characters"),
        ("ann\u2028", "name: must not contain control characters"),
        ("ann\u202e", "name: must not contain control characters"),
        ("ann\ud800", "name: must not contain control characters"),
        ("\x1b[31mann", "name: must not contain control characters"),
        (None, "name: must be text"),
    ],
    ids=["empty", "blank", "65", "huge", "nul", "crlf", "line-separator", "bidi", "surrogate", "ansi", "none"],
)
def test_login_name_refuses_what_cannot_be_a_name(typed, message):
    with pytest.raises(InputError) as caught:
        accounts.login_name(typed)
    assert caught.value.message == message and caught.value.details == {"field": "name"}


# --- key scopes -----------------------------------------------------------------------------------


def test_a_key_has_the_scopes_it_was_given_and_search_and_read_by_default(db):
    add_user(db, "bot", "approver", PASSWORD)
    key, row = create_key(db, "bot", "assist")
    assert row["scopes"] == ["search", "read"] and key_grant(db, key)[1] == {"search", "read"}
    key, row = create_key(db, "bot", "reviewer", ["review", "search", "review"])
    assert row["scopes"] == ["search", "review"] and key_grant(db, key)[1] == {"search", "review"}


@pytest.mark.parametrize(
    "role, scopes, message",
    [
        ("agent", ["write"], "scope: a key never exceeds its user's role (agent): write needs author"),
        ("author", ["review", "admin"], "review needs approver, admin needs admin"),
        ("admin", ["everything"], "scope: unknown everything; choose from search, read, write, review, admin"),
        ("admin", [], "scope: give one or more of search, read, write, review, admin"),
        ("admin", "search", "scope: give one or more"),
    ],
)
def test_a_key_never_exceeds_its_user_s_role_and_scopes_are_checked(db, role, scopes, message):
    add_user(db, "bot", role, PASSWORD)
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        create_key(db, "bot", "x", scopes)
    assert caught.value.details == {"field": "scope"}
    assert list_keys(db) == []  # nothing half written


def test_a_lowered_role_shrinks_what_an_existing_key_may_do(db):
    add_user(db, "bot", "approver", PASSWORD)
    key, _ = create_key(db, "bot", "all", role_scopes("approver"))
    assert key_grant(db, key)[1] == {"search", "read", "write", "review"}
    set_role(db, "bot", "agent")
    assert key_grant(db, key)[1] == {"search", "read"}
    assert role_scopes("admin") == ("search", "read", "write", "review", "admin")


def test_a_card_number_in_a_key_label_is_masked_before_it_is_stored(db):
    add_user(db, "bot", "agent", PASSWORD)
    _, row = create_key(db, "bot", "zendesk 4111 1111 1111 1111")
    assert row["label"] == "zendesk [card ending 1111]" and list_keys(db)[0]["label"] == row["label"]


# --- the last enabled admin ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda db: set_role(db, "ada", "approver"), "role"),
        (lambda db: set_disabled(db, "ada"), "disabled"),
    ],
    ids=["demote", "disable"],
)
def test_the_last_enabled_admin_can_be_neither_demoted_nor_disabled(db, change, field):
    add_user(db, "ada", "admin", PASSWORD)
    add_user(db, "abe", "admin", PASSWORD)
    set_disabled(db, "abe")  # a disabled admin does not count
    with pytest.raises(InputError, match=rf"^{field}: ada is the last enabled admin") as caught:
        change(db)
    assert caught.value.details == {"field": field}
    assert get_user(db, "ada") == User(1, "ada", "admin") and get_user(db, "ada").generation == 0
    set_disabled(db, "abe", False)
    change(db)  # with another enabled admin, it goes through
    assert not has_role(get_user(db, "ada"), "admin")


def test_the_last_admin_may_keep_the_admin_role_and_others_change_freely(db):
    add_user(db, "ada", "admin", PASSWORD)
    add_user(db, "alice", "author", PASSWORD)
    assert set_role(db, "ada", "admin").role == "admin"
    assert set_disabled(db, "alice").disabled and set_role(db, "alice", "agent").role == "agent"
