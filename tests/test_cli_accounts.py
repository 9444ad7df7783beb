"""`kb users` and `kb keys`: run through click's CliRunner against a temporary instance folder."""

from __future__ import annotations

import getpass
import json

import pytest
from click.testing import CliRunner

from kb.accounts import User, add_user, authenticate, get_user, user_for_key
from kb.audit import query
from kb.cli import main
from kb.store import connect

PASSWORD = "correct horse battery"
ACTOR = "cli:" + getpass.getuser()


@pytest.fixture
def data(tmp_path, monkeypatch):
    """The instance folder the CLI uses (KB_DATA_DIR); the content folder is an empty temporary one."""
    folder = tmp_path / "instance"
    monkeypatch.setenv("KB_DATA_DIR", str(folder))
    monkeypatch.setenv("KB_CONTENT_DIR", str(tmp_path / "content"))
    return folder


@pytest.fixture
def cli(data):
    """Run a kb command; return click's result."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(main, list(args), input=input)

    return run


@pytest.fixture
def db(data):
    """The CLI's workflow database, opened for checking the state after a command."""
    conn = connect(data)
    yield conn
    conn.close()


def audit_rows(db, **filters) -> list[dict]:
    return list(reversed(query(db, **filters)))


def test_users_add_reads_the_password_from_stdin(cli, db):
    result = cli("users", "add", "alice", "--role", "author", "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert result.output == "added user alice (author)\n"
    assert authenticate(db, "alice", PASSWORD) == User(1, "alice", "author")
    (row,) = audit_rows(db)
    assert {k: row[k] for k in ("actor", "action", "target", "outcome", "client", "details")} == {
        "actor": ACTOR,
        "action": "user_added",
        "target": "user:alice",
        "outcome": "ok",
        "client": "cli",
        "details": {"role": "author"},
    }
    assert PASSWORD not in json.dumps(row)


def test_users_add_strips_only_the_line_ending_from_stdin(cli, db):
    result = cli("users", "add", "alice", "--role", "agent", "--password-stdin", input=" padded pass \r\n")
    assert result.exit_code == 0, result.output
    assert authenticate(db, "alice", " padded pass ") is not None


def test_users_add_prompts_twice_hidden_until_both_match(cli, db):
    typed = "\n".join([PASSWORD, "something else", PASSWORD, PASSWORD]) + "\n"
    result = cli("users", "add", "alice", "--role", "approver", input=typed)
    assert result.exit_code == 0, result.output
    assert "The two entered values do not match" in result.output
    assert PASSWORD not in result.output
    assert result.output.endswith("added user alice (approver)\n")
    assert authenticate(db, "alice", PASSWORD) == User(1, "alice", "approver")


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (["bob", "--role", "author"], "short", "password: must be at least 10 characters"),
        (["bob", "--role", "author"], "zzzzzzzzzzzz", "password: must not be one character repeated"),
        (["bob", "--role", "owner"], PASSWORD, "role: must be one of agent, author, approver, admin"),
        (["Bob", "--role", "author"], PASSWORD, "name: must be 2-64 characters"),
    ],
)
def test_users_add_rejects_bad_input_cleanly_and_audits_the_failure(cli, db, args, password, message):
    result = cli("users", "add", *args, "--password-stdin", input=password + "\n")
    assert result.exit_code == 1
    assert f"Error: {message}" in result.output and "Traceback" not in result.output
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 0
    (row,) = audit_rows(db)
    assert row["action"] == "user_added" and row["outcome"] == "failed" and row["actor"] == ACTOR
    assert row["target"] == f"user:{args[0]}" and row["details"]["error"].startswith(message)


def test_users_add_refuses_a_duplicate(cli, db):
    add_user(db, "alice", "author", PASSWORD)
    result = cli("users", "add", "alice", "--role", "admin", "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 1 and "Error: name: a user named 'alice' already exists" in result.output
    assert authenticate(db, "alice", PASSWORD).role == "author"


def test_users_role_changes_the_role_and_audits_from_and_to(cli, db):
    add_user(db, "alice", "author", PASSWORD)
    result = cli("users", "role", "alice", "approver")
    assert result.exit_code == 0, result.output
    assert result.output == "alice: author -> approver\n"
    assert authenticate(db, "alice", PASSWORD).role == "approver"
    (row,) = audit_rows(db, action="role_changed")
    assert row["target"] == "user:alice" and row["outcome"] == "ok" and row["client"] == "cli"
    assert row["details"] == {"from": "author", "to": "approver"}


def test_users_role_of_an_unknown_user_fails_cleanly(cli, db):
    result = cli("users", "role", "ghost", "admin")
    assert result.exit_code == 1 and "Error: no user named 'ghost'" in result.output
    (row,) = audit_rows(db)
    assert (row["action"], row["outcome"], row["target"]) == ("role_changed", "failed", "user:ghost")


def test_users_list_plain_and_json(cli, db):
    add_user(db, "bob", "admin", PASSWORD)
    add_user(db, "alice", "agent", PASSWORD)
    result = cli("users", "list")
    assert result.exit_code == 0
    assert result.output.splitlines() == ["alice  agent", "bob    admin"]
    result = cli("users", "list", "--json")
    assert json.loads(result.output) == [
        {"id": 2, "name": "alice", "role": "agent", "disabled": False, "generation": 0},
        {"id": 1, "name": "bob", "role": "admin", "disabled": False, "generation": 0},
    ]


@pytest.mark.parametrize(
    ("args", "password"),
    [
        (("users", "password", "alice", "--password-stdin"), "a brand new secret\n"),
        (("users", "role", "alice", "admin"), None),
    ],
    ids=["password", "role"],
)
def test_users_password_and_role_end_every_session_of_the_user(cli, db, args, password):
    add_user(db, "alice", "author", PASSWORD)
    add_user(db, "bob", "author", PASSWORD)
    result = cli(*args, input=password)
    assert result.exit_code == 0, result.output
    assert get_user(db, "alice").generation == 1  # the web refuses cookies of generation 0 from now on
    assert get_user(db, "bob").generation == 0


def test_an_unknown_user_named_by_a_card_number_is_masked_in_the_error_and_the_audit(cli, db):
    result = cli("users", "role", "4111 1111 1111 1111", "admin")
    assert result.exit_code != 0
    assert "4111 1111 1111 1111" not in result.output and "[card ending 1111]" in result.output
    rows = audit_rows(db, action="role_changed")
    assert rows and all("4111 1111 1111 1111" not in json.dumps(row) for row in rows)


def test_users_password_sets_a_new_password(cli, db):
    add_user(db, "alice", "author", PASSWORD)
    result = cli("users", "password", "alice", "--password-stdin", input="a brand new secret\n")
    assert result.exit_code == 0, result.output
    assert authenticate(db, "alice", PASSWORD) is None
    assert authenticate(db, "alice", "a brand new secret") is not None
    (row,) = audit_rows(db)
    assert (row["action"], row["target"], row["outcome"], row["actor"]) == (
        "password_changed",
        "user:alice",
        "ok",
        ACTOR,
    )
    assert "a brand new secret" not in json.dumps(row)


def test_users_password_rejects_a_weak_one(cli, db):
    add_user(db, "alice", "author", PASSWORD)
    result = cli("users", "password", "alice", "--password-stdin", input="weak\n")
    assert result.exit_code == 1 and "Error: password: must be at least 10 characters" in result.output
    assert authenticate(db, "alice", PASSWORD) is not None
    assert audit_rows(db)[0]["outcome"] == "failed"


def test_keys_create_prints_the_key_alone_on_the_last_line(cli, db):
    add_user(db, "bot", "agent", PASSWORD)
    result = cli("keys", "create", "--user", "bot", "--name", "zendesk assist")
    assert result.exit_code == 0, result.output
    key = result.stdout.splitlines()[-1]
    assert result.output.splitlines()[-1] == key
    assert result.stdout.splitlines()[0] == (
        "created key 1 for user bot (agent), label 'zendesk assist', scopes search read:"
    )
    assert "shown only once" in result.stderr and key not in result.stderr
    assert user_for_key(db, key) == User(1, "bot", "agent")
    (row,) = audit_rows(db)
    assert row["action"] == "key_created" and row["target"] == "key:1" and row["actor"] == ACTOR
    assert row["details"] == {
        "user": "bot",
        "label": "zendesk assist",
        "scopes": ["search", "read"],
        "prefix": key[:10],
    }
    assert key not in json.dumps(row)


def test_keys_create_takes_several_scopes_and_never_more_than_the_role(cli, db):
    add_user(db, "editor", "author", PASSWORD)
    made = cli("keys", "create", "--user", "editor", "--name", "drafts bot", "--scope", "write", "--scope", "read")
    assert made.exit_code == 0, made.output
    assert "scopes read write:" in made.stdout.splitlines()[0]
    refused = cli("keys", "create", "--user", "editor", "--name", "too much", "--scope", "review")
    assert refused.exit_code == 1
    assert "scope: a key never exceeds its user's role (author): review needs approver" in refused.output
    unknown = cli("keys", "create", "--user", "editor", "--name", "x", "--scope", "root")
    assert unknown.exit_code == 2 and "'root' is not one of" in unknown.output
    listed = cli("keys", "list")
    assert "scopes read,write" in listed.output and "last used never" in listed.output
    assert json.loads(cli("keys", "list", "--json").output)[0]["scopes"] == ["read", "write"]


def test_keys_create_for_an_unknown_user_fails_cleanly(cli, db):
    result = cli("keys", "create", "--user", "ghost", "--name", "bot")
    assert result.exit_code == 1 and "Error: no user named 'ghost'" in result.output
    (row,) = audit_rows(db)
    assert (row["action"], row["outcome"], row["target"]) == ("key_created", "failed", "user:ghost")


def test_keys_list_shows_prefixes_never_keys(cli, db):
    add_user(db, "bot", "agent", PASSWORD)
    add_user(db, "editor", "author", PASSWORD)
    first = cli("keys", "create", "--user", "bot", "--name", "one").stdout.splitlines()[-1]
    second = cli("keys", "create", "--user", "editor", "--name", "two").stdout.splitlines()[-1]
    plain = cli("keys", "list")
    assert plain.exit_code == 0
    assert first[:10] in plain.output and first not in plain.output and second not in plain.output
    listed = json.loads(cli("keys", "list", "--json").output)
    assert [(k["id"], k["user"], k["label"], k["prefix"]) for k in listed] == [
        (1, "bot", "one", first[:10]),
        (2, "editor", "two", second[:10]),
    ]
    assert all("key_hash" not in k for k in listed)
    only = json.loads(cli("keys", "list", "--user", "editor", "--json").output)
    assert [k["label"] for k in only] == ["two"]


def test_keys_revoke_stops_the_key_and_is_idempotent(cli, db):
    add_user(db, "bot", "agent", PASSWORD)
    key = cli("keys", "create", "--user", "bot", "--name", "chatbot").stdout.splitlines()[-1]
    result = cli("keys", "revoke", "1")
    assert result.exit_code == 0, result.output
    assert result.output == "revoked key 1 (bot, 'chatbot')\n"
    assert user_for_key(db, key) is None
    again = cli("keys", "revoke", "1")
    assert again.exit_code == 0 and "already revoked" in again.output
    rows = audit_rows(db, action="key_revoked")
    assert [(r["target"], r["outcome"], r["details"]["already_revoked"]) for r in rows] == [
        ("key:1", "ok", False),
        ("key:1", "ok", True),
    ]


def test_keys_revoke_an_unknown_id_fails_cleanly(cli, db):
    result = cli("keys", "revoke", "42")
    assert result.exit_code == 1 and "Error: no API key with id 42" in result.output
    (row,) = audit_rows(db)
    assert (row["action"], row["outcome"], row["target"]) == ("key_revoked", "failed", "key:42")


def test_users_disable_and_enable_are_audited_and_spare_the_last_admin(cli, db):
    add_user(db, "alice", "author", PASSWORD)
    add_user(db, "ada", "admin", PASSWORD)
    result = cli("users", "disable", "alice")
    assert result.exit_code == 0 and result.output == "disabled alice\n"
    assert authenticate(db, "alice", PASSWORD) is None and get_user(db, "alice").generation == 1
    assert cli("users", "enable", "alice").output == "enabled alice\n"
    assert authenticate(db, "alice", PASSWORD) is not None
    result = cli("users", "disable", "ada")
    assert result.exit_code == 1 and "Error: disabled: ada is the last enabled admin" in result.output
    rows = [(r["action"], r["target"], r["outcome"], r["client"]) for r in audit_rows(db)]
    assert rows == [
        ("user_disabled", "user:alice", "ok", "cli"),
        ("user_enabled", "user:alice", "ok", "cli"),
        ("user_disabled", "user:ada", "failed", "cli"),
    ]
