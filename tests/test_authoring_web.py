"""Authoring in the browser: log-in sessions, CSRF, roles on pages, the editor, review and publish."""

import re
import time

import pytest

from tests.conftest import CHROMIUM_ARGS, CHROMIUM_PATH, full_sop, git

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def token(page_html: str) -> str:
    return TOKEN.search(page_html).group(1)


def login(client, name: str, password: str | None = None):
    form = client.get("/login").get_data(as_text=True)
    return client.post(
        "/login", data={"name": name, "password": password or f"{name}-password-123", "csrf_token": token(form)}
    )


def test_login_sets_a_hardened_session_cookie_and_is_audited(authoring):
    from kb.web import create_app

    app = create_app({**authoring.settings, "TESTING": True})  # COOKIE_SECURE on, the default
    client = app.test_client()
    response = login(client, "ann")
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert "kb_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    assert authoring.audit(action="login")[0]["actor"] == "ann"


def test_a_wrong_password_is_refused_and_audited(authoring):
    response = login(authoring.client, "ann", "not-the-password")
    assert response.status_code == 401 and "Unknown user name or wrong password" in response.get_data(as_text=True)
    assert authoring.audit(action="login_failed")[0]["outcome"] == "denied"
    assert authoring.client.get("/drafts").status_code == 303  # still anonymous: sent to log in


def test_forms_without_the_csrf_token_are_refused(authoring):
    login(authoring.client, "ann")
    response = authoring.client.post("/drafts/save", data={"id": "x", "summary": "x"})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    assert authoring.client.post("/login", data={"name": "ann", "password": "ann-password-123"}).status_code == 400


def test_logout_ends_the_session(authoring):
    login(authoring.client, "ann")
    page = authoring.client.get("/drafts")
    assert page.status_code == 200
    assert authoring.client.post("/logout", data={"csrf_token": token(page.get_data(as_text=True))}).status_code == 303
    assert authoring.client.get("/drafts").headers["Location"].startswith("/login")
    assert authoring.audit(action="logout")[0]["actor"] == "ann"


def test_an_idle_session_expires(authoring):
    login(authoring.client, "ann")
    with authoring.client.session_transaction() as session:
        session["seen"] = int(time.time()) - 31 * 60
    assert authoring.client.get("/drafts").status_code == 303
    assert authoring.audit(action="session_expired")[0]["actor"] == "ann"


@pytest.mark.parametrize("name, path, status", [("agnes", "/drafts", 403), ("ann", "/admin/audit", 403)])
def test_pages_check_roles_on_the_server(authoring, name, path, status):
    login(authoring.client, name)
    assert authoring.client.get(path).status_code == status
    assert authoring.audit(action="permission_denied")[0]["actor"] == name


def test_the_api_ignores_the_session_cookie(authoring):
    login(authoring.client, "ann")
    response = authoring.client.post("/api/v1/drafts", json={"sop_id": "x", "markdown": "x", "summary": "x"})
    assert response.status_code == 401


def test_pages_send_security_headers(authoring):
    headers = authoring.client.get("/").headers
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_retired_documents_leave_search_but_stay_readable_with_a_banner(authoring):
    text = full_sop("pay-card-declined", "Declined card payments", "Declined payments.", status="retired")
    body = {"sop_id": "pay-card-declined", "markdown": text, "summary": "Retire", "base_revision": None}
    body["base_revision"] = authoring.revision("pay-card-declined")
    draft = authoring.call("POST", "/api/v1/drafts", "ann", json=body).get_json()
    authoring.call("POST", f"/api/v1/drafts/{draft['id']}/submit", "ann")
    assert authoring.call("POST", f"/api/v1/drafts/{draft['id']}/approve", "bob").status_code == 200
    results = authoring.client.get("/api/v1/search?q=declined&mode=keyword").get_json()["results"]
    assert "pay-card-declined" not in [r["sop_id"] for r in results]
    page = authoring.client.get("/sops/pay-card-declined").get_data(as_text=True)
    assert "This document is retired" in page


def test_editor_preview_renders_like_the_page_and_lints(authoring):
    login(authoring.client, "ann")
    page = authoring.client.get("/sops/pay-duplicate-charge/edit").get_data(as_text=True)
    form = {
        "csrf_token": token(page),
        "sop_id": "pay-duplicate-charge",
        "id": "pay-duplicate-charge",
        "title": "Duplicate charges",
        "type": "sop",
        "business_line": "all",
        "categories": "payments/duplicate-charge",
        "owner": "payments-policy",
        "status": "published",
        "effective": "2026-09-01",
        "body": "## Purpose\n\n<script>alert(1)</script> See [x](/sops/nope).\n",
    }
    preview = authoring.client.post("/drafts/preview", data=form).get_json()
    assert "&lt;script&gt;" in preview["html"] and "<script>" not in preview["html"]
    link = next(p for p in preview["problems"] if "unknown SOP" in p["message"])
    assert link["body_line"] == 3
    assert any("no procedure section" in p["message"] for p in preview["problems"])


@pytest.mark.skipif(not CHROMIUM_PATH.exists(), reason="Debian's chromium is not installed")
def test_an_author_edits_and_an_approver_publishes_in_the_browser(authoring, live_authoring, tmp_path):
    from playwright.sync_api import sync_playwright

    base = live_authoring
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM_PATH), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(base + "/sops/pay-duplicate-charge/edit")
        assert "/login" in page.url
        page.fill("input[name=name]", "ann")
        page.fill("input[name=password]", "ann-password-123")
        page.click("button[type=submit]")
        page.wait_for_selector("#live-preview h2")  # the live preview
        body = page.locator("textarea[name=body]")
        body.fill("## Purpose\n\nSee [x](/sops/nope).\n")
        problem = page.locator("#live-problems li[data-line]", has_text="unknown SOP")
        problem.click()  # selects the line in the editor
        selected = body.evaluate("box => box.value.slice(box.selectionStart, box.selectionEnd)")
        assert selected == "See [x](/sops/nope)."
        body.fill(full_sop("x", "x", "Glimmerquark refunds take two days.").split("---\n", 2)[2])
        page.locator("#live-preview", has_text="Glimmerquark").wait_for()  # (CSP forbids evaluating strings)
        assert page.locator("#live-problems li.error").count() == 0
        page.fill("input[name=summary]", "Two-day glimmerquark refunds")
        page.click("button[value=submit]")
        page.wait_for_url(re.compile(r"/drafts/\d+$"))
        assert "in review" in page.locator(".facts").inner_text()
        assert page.locator("text=Approve and publish").count() == 0  # an author cannot approve
        page.screenshot(path=str(tmp_path / "draft.png"), full_page=True)
        page.click("button.link")  # log out
        page.goto(base + "/login?next=/drafts")
        page.fill("input[name=name]", "bob")
        page.fill("input[name=password]", "bob-password-123")
        page.click("button[type=submit]")
        page.click("table.grid a")
        page.click("text=Approve and publish")
        page.wait_for_url(re.compile(r"/sops/pay-duplicate-charge\?published="))
        assert "Glimmerquark refunds take two days." in page.locator(".body").inner_text()
        page.goto(base + "/?q=glimmerquark")
        assert "Duplicate charges" in page.locator("ol.results li a.title").first.inner_text()
        page.screenshot(path=str(tmp_path / "published.png"), full_page=True)
        browser.close()
    log = git(authoring.repo, "log", "-1", "--format=%an|%s|%b")
    assert log.startswith("ann|Two-day glimmerquark refunds|") and "Reviewed-by: bob" in log


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/drafts", "/drafts"),
        ("/sops/pay-duplicate-charge/edit", "/sops/pay-duplicate-charge/edit"),
        ("/?q=refund&mode=keyword", "/?q=refund&mode=keyword"),
        ("", "/"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
    ],
)
def test_login_redirects_only_to_local_pages(authoring, target, location):
    form = authoring.client.get("/login").get_data(as_text=True)
    data = {"name": "ann", "password": "ann-password-123", "csrf_token": token(form), "next": target}
    assert authoring.client.post("/login", data=data).headers["Location"] == location


def test_repeated_failed_logins_lock_the_name_from_that_address_for_a_while(authoring):
    for _ in range(5):
        assert login(authoring.client, "ann", "guess-guess-guess").status_code == 401
    locked = login(authoring.client, "ann")  # even the right password, for now, from this address
    assert locked.status_code == 429 and "Too many failed log-ins" in locked.get_data(as_text=True)
    assert authoring.audit(action="login_failed")[0]["details"] == {"locked": True}
    assert login(authoring.client, "bob").status_code == 303  # other names are not affected
    elsewhere = authoring.app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.9.8.7"
    assert login(elsewhere, "ann").status_code == 303  # nor is the name from another address
