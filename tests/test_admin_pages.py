"""The admin pages for users and API keys (/admin/users, /admin/keys), through Flask's test client: each change
works, is audited with the same actions and details as `kb users` / `kb keys`, asks first when it is destructive,
names the field of a bad value, shows a new key or password once, and never locks the last admin out."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from kb import accounts, store

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
KEY = re.compile(r'<code class="secret" id="shown-once">([^<]+)</code>')
HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "card 4111 1111 1111 1111"]


def token(html: str) -> str:
    return TOKEN.search(html).group(1)


def login(client, name: str, password: str | None = None):
    form = client.get("/login").get_data(as_text=True)
    data = {"name": name, "password": password or f"{name}-password-123", "csrf_token": token(form)}
    return client.post("/login", data=data)


@pytest.fixture
def admin(authoring):
    """The test client logged in as ada (admin); .post(path, data) sends the form with a fresh CSRF token."""
    client = authoring.client
    assert login(client, "ada").status_code == 303

    def post(path: str, **data):
        page = client.get("/admin/users").get_data(as_text=True)
        return client.post(path, data={**data, "csrf_token": token(page)})

    client.post_form = post
    return client


def db_of(authoring):
    return store.connect(authoring.data)


def user(authoring, name: str) -> accounts.User | None:
    db = db_of(authoring)
    try:
        return accounts.get_user(db, name)
    finally:
        db.close()


def summary(row: dict) -> tuple:
    return row["action"], row["actor"], row["target"], row["outcome"], row["client"], row["details"]


# --- who may -------------------------------------------------------------------------------------


ADMIN_ROUTES = [
    ("GET", "/admin/users"),
    ("GET", "/admin/keys"),
    ("POST", "/admin/users"),
    ("POST", "/admin/users/agnes/role"),
    ("POST", "/admin/users/agnes/disable"),
    ("POST", "/admin/users/agnes/enable"),
    ("POST", "/admin/users/agnes/password"),
    ("POST", "/admin/keys"),
    ("POST", "/admin/keys/1/revoke"),
]


@pytest.mark.parametrize("name", ["agnes", "ann", "bob"])
def test_non_admins_get_403_on_every_route_and_it_is_audited(authoring, name):
    client = authoring.client
    login(client, name)
    html = client.get("/").get_data(as_text=True)
    assert ">Users</a>" not in html and ">API keys</a>" not in html  # the nav links are for admins only
    data = {"csrf_token": token(html), "name": "mallory", "role": "admin", "confirm": "yes"}
    data |= {"user": name, "label": "x", "scopes": "search"}
    for method, path in ADMIN_ROUTES:
        response = client.open(path, method=method, data=data if method == "POST" else None)
        assert response.status_code == 403, path
        assert authoring.audit(action="permission_denied")[0]["details"]["path"] == path
    assert {row["actor"] for row in authoring.audit(action="permission_denied")} == {name}
    assert user(authoring, "mallory") is None and user(authoring, "agnes") == accounts.User(1, "agnes", "agent")
    assert authoring.audit(action="key_revoked") == []


def test_anonymous_visitors_are_sent_to_log_in_and_anonymous_forms_refused(authoring):
    assert authoring.client.get("/admin/users").headers["Location"].startswith("/login?next=/admin/users")
    assert authoring.client.post("/admin/users", data={"name": "mallory", "role": "admin"}).status_code in (400, 401)
    assert authoring.audit(action="unauthenticated_write")[0]["details"]["path"] == "/admin/users"
    assert user(authoring, "mallory") is None


def test_forms_without_the_csrf_token_are_refused(admin, authoring):
    data = {"name": "mallory", "role": "admin", "user": "ada", "label": "x", "scopes": "search", "confirm": "yes"}
    for method, path in ADMIN_ROUTES:
        if method == "POST":
            response = admin.post(path, data=data)
            assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True), path
    assert user(authoring, "mallory") is None and user(authoring, "agnes") == accounts.User(1, "agnes", "agent")
    db = db_of(authoring)
    try:
        assert [k["revoked"] for k in accounts.list_keys(db)] == [None] * 6
    finally:
        db.close()
    assert [r["action"] for r in authoring.audit()] == ["login"]


def test_the_nav_links_and_the_users_page(admin):
    html = admin.get("/admin/users").get_data(as_text=True)
    assert '<a href="/admin/users">Users</a>' in html and '<a href="/admin/keys">API keys</a>' in html
    rows = re.findall(r'<th scope="row" data-label="Name">([a-z]+)', html)
    assert rows == ["ada", "agnes", "aldo", "ann", "bea", "bob"]
    ada = html[html.index('data-label="Name">ada') :].split("</tr>")[0]
    assert re.search(r'data-label="Last log-in">\d{4}-\d\d-\d\dT', ada)  # ada just logged in
    assert 'data-label="API keys">1<' in ada and "Disable" not in ada  # never a disable button on yourself
    agnes = html[html.index('data-label="Name">agnes') :].split("</tr>")[0]
    assert 'data-label="Last log-in">never<' in agnes and ">Disable<" in agnes


# --- users ---------------------------------------------------------------------------------------


def test_add_user_shows_a_generated_password_once_and_is_audited_like_the_cli(admin, authoring):
    response = admin.post_form("/admin/users", name="carol", role="author")
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    password = KEY.search(html).group(1)
    assert "Added carol (author)" in html and "only this once" in html
    db = db_of(authoring)
    try:
        assert accounts.authenticate(db, "carol", password) == accounts.User(7, "carol", "author")
    finally:
        db.close()
    assert password not in admin.get("/admin/users").get_data(as_text=True)
    (row,) = authoring.audit(action="user_added")
    assert summary(row) == ("user_added", "ada", "user:carol", "ok", "127.0.0.1", {"role": "author"})
    assert password not in str(authoring.audit())


@pytest.mark.parametrize(
    ("name", "role", "field", "message"),
    [
        ("Carol", "author", "name", "name: must be 2-64 characters"),
        ("ann", "author", "name", "name: a user named &#39;ann&#39; already exists"),
        ("carol", "owner", "role", "role: must be one of agent, author, approver, admin"),
        ("<script>alert(1)</script>", "agent", "name", "name: must be 2-64 characters"),
        ('"><img src=x onerror=alert(1)>', "agent", "name", "name: must be 2-64 characters"),
        ("4111111111111111", "agent", "name", "not a card number"),
    ],
)
def test_add_user_refuses_bad_input_naming_the_field(admin, authoring, name, role, field, message):
    response = admin.post_form("/admin/users", name=name, role=role)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html and 'role="alert"' in html
    assert "<script>alert" not in html and "<img src=x" not in html and "4111111111111111" not in html
    invalid = re.search(r'<(?:input|select) id="new-\w+" name="(\w+)"[^>]*aria-invalid="true"', html)
    assert invalid and invalid.group(1) == field
    (row,) = authoring.audit(action="user_added")
    assert row["outcome"] == "failed" and row["details"]["error"].startswith(f"{field}: ")
    assert "4111111111111111" not in str(row)
    audit_page = admin.get("/admin/audit?action=user_added").get_data(as_text=True)
    assert "<script>alert" not in audit_page and "<img src=x" not in audit_page
    assert "4111111111111111" not in audit_page


def test_change_role_ends_the_users_sessions_and_is_audited_from_and_to(admin, authoring):
    before = user(authoring, "ann").generation
    response = admin.post_form("/admin/users/ann/role", role="approver")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/users"
    assert "ann: author → approver" in admin.get("/admin/users").get_data(as_text=True)
    after = user(authoring, "ann")
    assert after.role == "approver" and after.generation == before + 1
    (row,) = authoring.audit(action="role_changed")
    assert summary(row) == ("role_changed", "ada", "user:ann", "ok", "127.0.0.1", {"from": "author", "to": "approver"})


def test_change_role_to_an_unknown_role_names_the_field(admin, authoring):
    response = admin.post_form("/admin/users/ann/role", role="owner")
    assert response.status_code == 422 and "role: must be one of" in response.get_data(as_text=True)
    assert user(authoring, "ann").role == "author"
    assert authoring.audit(action="role_changed")[0]["outcome"] == "failed"


def test_disable_asks_first_then_ends_sessions_and_stops_keys_and_enable_undoes_it(admin, authoring):
    assert authoring.call("GET", "/api/v1/sops/pay-duplicate-charge", "agnes").status_code == 200
    asked = admin.post_form("/admin/users/agnes/disable")
    html = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Disable agnes?" in html and 'name="confirm" value="yes"' in html
    assert not user(authoring, "agnes").disabled and authoring.audit(action="user_disabled") == []
    response = admin.post_form("/admin/users/agnes/disable", confirm="yes")
    assert response.status_code == 303
    assert user(authoring, "agnes").disabled
    assert authoring.call("GET", "/api/v1/sops/pay-duplicate-charge", "agnes").status_code == 401
    assert admin.post_form("/admin/users/agnes/enable").status_code == 303
    assert not user(authoring, "agnes").disabled
    assert authoring.call("GET", "/api/v1/sops/pay-duplicate-charge", "agnes").status_code == 200
    rows = [summary(r) for r in reversed(authoring.audit(target="user:agnes"))]
    assert rows == [
        ("user_disabled", "ada", "user:agnes", "ok", "127.0.0.1", None),
        ("user_enabled", "ada", "user:agnes", "ok", "127.0.0.1", None),
    ]


def test_reset_password_asks_first_then_shows_a_new_one_once_and_ends_sessions(admin, authoring):
    other = authoring.app.test_client()
    login(other, "ann")
    assert other.get("/drafts").status_code == 200
    asked = admin.post_form("/admin/users/ann/password")
    assert asked.status_code == 200 and "Reset the password of ann?" in asked.get_data(as_text=True)
    assert other.get("/drafts").status_code == 200  # nothing changed yet
    response = admin.post_form("/admin/users/ann/password", confirm="yes")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "New password of ann" in html
    password = KEY.search(html).group(1)
    assert other.get("/drafts").status_code == 303  # ann's session has ended
    assert login(other, "ann").status_code == 401
    assert login(other, "ann", password).status_code == 303
    (row,) = authoring.audit(action="password_changed")
    assert summary(row) == ("password_changed", "ada", "user:ann", "ok", "127.0.0.1", None)


@pytest.mark.parametrize("name", ["4111111111111111", "%3Cscript%3Ealert(1)%3C%5Cscript%3E", "ghost"])
def test_a_confirmation_about_an_unknown_user_is_404_with_the_name_as_masked_text(admin, name):
    for action in ("disable", "password"):
        response = admin.post_form(f"/admin/users/{name}/{action}")
        html = response.get_data(as_text=True)
        assert response.status_code == 404 and "no user named" in html
        assert "4111111111111111" not in html and "<script>alert" not in html and "confirm" not in html


# --- the last admin ------------------------------------------------------------------------------


def test_the_only_admin_cannot_demote_or_disable_themselves(admin, authoring):
    asked = admin.post_form("/admin/users/ada/role", role="approver")
    assert asked.status_code == 200 and "Change your own role?" in asked.get_data(as_text=True)
    response = admin.post_form("/admin/users/ada/role", role="approver", confirm="yes")
    assert response.status_code == 422
    assert "role: ada is the last enabled admin" in response.get_data(as_text=True)
    response = admin.post_form("/admin/users/ada/disable", confirm="yes")
    assert response.status_code == 422 and "disabled: you cannot disable yourself" in response.get_data(as_text=True)
    assert user(authoring, "ada") == accounts.User(6, "ada", "admin")
    assert admin.get("/admin/users").status_code == 200  # still logged in, still admin
    assert authoring.audit(action="role_changed")[0]["outcome"] == "failed"


def test_an_admin_may_step_down_once_another_admin_exists(admin, authoring):
    assert admin.post_form("/admin/users/bob/role", role="admin").status_code == 303
    response = admin.post_form("/admin/users/ada/role", role="approver", confirm="yes")
    assert response.status_code == 303 and user(authoring, "ada").role == "approver"
    assert admin.get("/admin/users").status_code == 303  # the session ended with the role change
    login(admin, "ada")
    assert admin.get("/admin/users").status_code == 403
    login(admin, "bob")
    response = admin.post_form("/admin/users/bob/disable", confirm="yes")
    assert response.status_code == 422 and user(authoring, "bob").role == "admin"


# --- API keys ------------------------------------------------------------------------------------


def test_create_key_shows_it_once_with_its_scopes_and_is_audited_like_the_cli(admin, authoring):
    response = admin.post_form("/admin/keys", user="bob", label="review-bot", scopes=["search", "review"])
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    key = KEY.search(html).group(1)
    assert key.startswith("kb_") and "Created key 7 for bob with scopes search, review." in html
    assert 'data-copy="shown-once"' in html
    headers = {"Authorization": f"Bearer {key}"}
    assert authoring.client.get("/api/v1/search?q=refund", headers=headers).status_code == 200
    assert authoring.client.get("/api/v1/sops/pay-duplicate-charge", headers=headers).status_code == 403  # no read
    listing = admin.get("/admin/keys")
    assert listing.headers["Cache-Control"] == "no-store"
    listed = listing.get_data(as_text=True)
    assert key not in listed and f"<code>{key[:10]}…</code>" in listed and "review-bot" in listed
    (row,) = authoring.audit(action="key_created")
    details = {"user": "bob", "label": "review-bot", "scopes": ["search", "review"], "prefix": key[:10]}
    assert summary(row) == ("key_created", "ada", "key:7", "ok", "127.0.0.1", details)
    assert key not in str(authoring.audit())


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        (
            {"user": "ann", "label": "bot", "scopes": ["search", "review"]},
            "scope",
            "scope: a key never exceeds its user",
        ),
        ({"user": "ann", "label": "bot"}, "scope", "scope: give one or more of"),
        ({"user": "ann", "label": "bot", "scopes": ["everything"]}, "scope", "scope: unknown everything"),
        ({"user": "ann", "label": "", "scopes": ["search"]}, "label", "label: must be 1-64 printable characters"),
        ({"user": "ann", "label": "x" * 65, "scopes": ["search"]}, "label", "label: must be 1-64"),
        ({"user": "ghost", "label": "bot", "scopes": ["search"]}, "user", "user: no user named &#39;ghost&#39;"),
    ],
)
def test_create_key_refuses_bad_input_naming_the_field(admin, authoring, form, field, message):
    response = admin.post_form("/admin/keys", **form)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html and KEY.search(html) is None
    marked = (
        '<fieldset aria-invalid="true"'
        if field == "scope"
        else rf'<(?:input|select) id="new-{field}" name="{field}"[^>]*aria-invalid'
    )
    assert re.search(marked, html)
    assert authoring.audit(action="key_created")[0]["outcome"] == "failed"
    assert len(authoring.audit(action="key_created")) == 1


def test_revoke_asks_first_then_stops_the_key_and_is_audited_like_the_cli(admin, authoring):
    asked = admin.post_form("/admin/keys/1/revoke")
    assert asked.status_code == 200 and "Revoke key 1?" in asked.get_data(as_text=True)
    assert authoring.call("GET", "/api/v1/sops/pay-duplicate-charge", "agnes").status_code == 200
    response = admin.post_form("/admin/keys/1/revoke", confirm="yes")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/keys"
    assert authoring.call("GET", "/api/v1/sops/pay-duplicate-charge", "agnes").status_code == 401
    html = admin.get("/admin/keys").get_data(as_text=True)
    assert "Revoked key 1 of agnes." in html and 'Revoke<span class="visually-hidden"> key 1<' not in html
    assert admin.post_form("/admin/keys/99/revoke", confirm="yes").status_code == 404
    (row,) = authoring.audit(action="key_revoked")
    details = {"user": "agnes", "label": "tests", "already_revoked": False}
    assert summary(row) == ("key_revoked", "ada", "key:1", "ok", "127.0.0.1", details)


@pytest.mark.parametrize("label", HOSTILE)
def test_a_hostile_key_label_is_text_and_masked_on_every_admin_page_and_in_the_audit(admin, authoring, label):
    response = admin.post_form("/admin/keys", user="agnes", label=label, scopes=["search"])
    assert response.status_code == 201
    pages = [
        response.get_data(as_text=True),
        admin.get("/admin/keys").get_data(as_text=True),
        admin.post_form("/admin/keys/7/revoke").get_data(as_text=True),  # the confirmation names the label
        admin.get("/admin/audit").get_data(as_text=True),
    ]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html and "4111 1111 1111 1111" not in html
    if "script" in label:  # escaped by Jinja on the pages, by tojson in the audit log's details
        assert all("&lt;script&gt;alert(1)&lt;/script&gt;" in html for html in pages[:3])
        assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in pages[3]
    if "4111" in label:
        assert all("card [card ending 1111]" in html for html in pages)
    assert "4111 1111 1111 1111" not in str(authoring.audit())


# --- the same audit as the CLI -------------------------------------------------------------------


def test_the_pages_and_the_cli_record_the_same_actions_and_details(admin, authoring, monkeypatch):
    from kb.cli import main

    monkeypatch.setenv("KB_DATA_DIR", str(authoring.data))
    monkeypatch.setenv("KB_CONTENT_DIR", str(authoring.settings["CONTENT_DIR"]))
    cli = CliRunner()

    def run(*args, input=None):
        result = cli.invoke(main, list(args), input=input)
        assert result.exit_code == 0, result.output

    admin.post_form("/admin/users", name="carol", role="agent")
    run("users", "add", "dave", "--role", "agent", "--password-stdin", input="dave-password-123\n")
    admin.post_form("/admin/users/carol/role", role="author")
    run("users", "role", "dave", "author")
    admin.post_form("/admin/users/carol/password", confirm="yes")
    run("users", "password", "dave", "--password-stdin", input="dave-password-456\n")
    admin.post_form("/admin/users/carol/disable", confirm="yes")
    run("users", "disable", "dave")
    admin.post_form("/admin/users/carol/enable")
    run("users", "enable", "dave")
    admin.post_form("/admin/keys", user="carol", label="bot", scopes=["search", "write"])
    run("keys", "create", "--user", "dave", "--name", "bot", "--scope", "search", "--scope", "write")
    admin.post_form("/admin/keys/7/revoke", confirm="yes")
    run("keys", "revoke", "8")

    def shape(row):
        details = {k: v for k, v in (row["details"] or {}).items() if k != "prefix"}
        return (
            row["action"],
            row["target"].split(":")[0],
            row["outcome"],
            {k: v for k, v in details.items() if k != "user"},
        )

    rows = list(reversed(authoring.audit()))
    web = [shape(r) for r in rows if r["actor"] == "ada" and r["action"] not in ("login",)]
    cli_rows = [shape(r) for r in rows if r["client"] == "cli"]
    assert web == cli_rows
    assert [action for action, *_ in web] == [
        "user_added",
        "role_changed",
        "password_changed",
        "user_disabled",
        "user_enabled",
        "key_created",
        "key_revoked",
    ]
