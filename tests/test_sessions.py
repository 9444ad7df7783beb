"""Browser sessions end for real: log-out, a password, role or disabled change end every session of that user.

A session cookie carries the user's session generation from log-in; each request checks it against the
database, so an old cookie replayed afterwards is anonymous in every worker.
"""

from __future__ import annotations

import os
import re
import stat

import pytest

from kb import accounts, store


@pytest.fixture
def authoring(shared_authoring):
    """Every test here runs on SQLite and on PostgreSQL (issue 14)."""
    return shared_authoring


TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def login(client, name: str):
    form = client.get("/login").get_data(as_text=True)
    data = {"name": name, "password": f"{name}-password-123", "csrf_token": TOKEN.search(form)[1]}
    assert client.post("/login", data=data).status_code == 303
    return client


def token(client) -> str:
    return TOKEN.search(client.get("/sops/new").get_data(as_text=True))[1]


def change(authoring, action):
    db = store.connect(authoring.data)
    try:
        action(db)
    finally:
        db.close()


def log_out(authoring, browser):
    assert browser.post("/logout", data={"csrf_token": token(browser)}).status_code == 303


ENDINGS = {
    "log-out": lambda authoring, browser: log_out(authoring, browser),
    "password": lambda authoring, _: change(authoring, lambda db: accounts.set_password(db, "ann", "a new secret 42")),
    "role": lambda authoring, _: change(authoring, lambda db: accounts.set_role(db, "ann", "approver")),
    "disabled": lambda authoring, _: change(authoring, lambda db: accounts.set_disabled(db, "ann")),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_an_ending_ends_every_session_of_the_user(authoring, ending):
    laptop = login(authoring.app.test_client(), "ann")
    phone = login(authoring.app.test_client(), "ann")
    other = login(authoring.app.test_client(), "bob")
    phone_token = token(phone)
    ENDINGS[ending](authoring, laptop)
    for browser in (laptop, phone):
        page = browser.get("/drafts")
        assert page.status_code == 303 and page.headers["Location"].startswith("/login")
    write = phone.post("/drafts/save", data={"csrf_token": phone_token, "id": "x", "summary": "x", "body": "x"})
    assert write.status_code in (400, 401)  # the old session's CSRF token died with it, or the user is anonymous
    assert authoring.audit(action="draft_created") == []
    assert other.get("/drafts").status_code == 200  # bob's session is untouched
    ended = authoring.audit(action="session_expired")
    assert ended and {row["actor"] for row in ended} == {"ann"}
    assert all(row["details"] == {"reason": "ended"} for row in ended)


def test_an_old_cookie_replayed_after_log_out_is_anonymous(authoring):
    browser = login(authoring.app.test_client(), "ann")
    cookie = browser.get_cookie("kb_session").value
    old_token = token(browser)
    log_out(authoring, browser)
    replay = authoring.app.test_client()
    replay.set_cookie("kb_session", cookie)
    page = replay.get("/sops/pay-duplicate-charge/edit")
    assert page.status_code == 303 and page.headers["Location"].startswith("/login")
    replay.set_cookie("kb_session", cookie)
    preview = replay.post("/drafts/preview", data={"csrf_token": old_token, "body": "## Purpose\n\nx\n"})
    assert preview.status_code == 400  # the session, and the CSRF token it held, are gone
    denied = authoring.audit(action="unauthenticated_write")[0]
    assert denied["details"]["reason"] == "no credentials" and denied["details"]["path"] == "/drafts/preview"


def test_logging_in_again_after_an_ending_works(authoring):
    browser = login(authoring.app.test_client(), "ann")
    change(authoring, lambda db: accounts.set_password(db, "ann", "ann-password-123"))  # same password, new generation
    assert browser.get("/drafts").status_code == 303
    login(browser, "ann")
    assert browser.get("/drafts").status_code == 200


def test_a_disabled_user_cannot_log_in_again(authoring):
    change(authoring, lambda db: accounts.set_disabled(db, "ann"))
    form = authoring.client.get("/login").get_data(as_text=True)
    data = {"name": "ann", "password": "ann-password-123", "csrf_token": TOKEN.search(form)[1]}
    assert authoring.client.post("/login", data=data).status_code == 401


def test_a_cookie_without_a_generation_from_before_the_upgrade_must_log_in_again(authoring):
    browser = login(authoring.app.test_client(), "ann")
    with browser.session_transaction() as session:
        del session["generation"]
    assert browser.get("/drafts").status_code == 303


def test_api_keys_keep_working_after_their_user_logs_out(authoring):
    browser = login(authoring.app.test_client(), "ann")
    log_out(authoring, browser)
    assert authoring.call("GET", "/api/v1/drafts", "ann").status_code == 200  # keys are revoked on their own


# -- the session signing key --------------------------------------------------------------------------------


def test_the_secret_key_is_made_once_private_and_whole(authoring):
    from kb.web import create_app

    path = authoring.data / "secret_key"
    key = path.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = create_app({**authoring.settings, "TESTING": True})
    assert again.config["SECRET_KEY"] == key == authoring.app.config["SECRET_KEY"]
    assert not [name for name in os.listdir(authoring.data) if name.endswith(".tmp")]


def test_a_new_instance_gets_a_new_secret_key(authoring, tmp_path):
    from kb.web import auth

    fresh = auth._secret_key(tmp_path / "elsewhere")
    assert fresh != auth._secret_key(authoring.data) and fresh == auth._secret_key(tmp_path / "elsewhere")
    assert stat.S_IMODE(os.stat(tmp_path / "elsewhere" / "secret_key").st_mode) == 0o600
