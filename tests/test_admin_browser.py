"""The admin pages in Debian's Chromium (issue 13, item 4): ada adds a user, changes their role, creates a key with
scopes and sees it once, revokes it and disables the user; no serious accessibility violation and no console error
at 1280x800 and at 400 px wide. Screenshots: admin-users, admin-keys (and -narrow, -confirm)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.conftest import axe_violations, log_in, screenshot

NARROW = {"width": 400, "height": 800}


def check(page, name: str, width: int = 1280) -> None:
    """No serious violation, nothing wider than the window, and a screenshot."""
    assert axe_violations(page) == [], name
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width, name
    screenshot(page, name)


def test_an_admin_manages_a_user_and_a_key_in_the_browser(live_workspace, workspace, page):
    base = live_workspace
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    log_in(page, base, "ada")
    page.get_by_role("link", name="Users").click()
    assert page.url == f"{base}/admin/users"

    # Add a user: the generated password is shown once, and copied with the button.
    page.get_by_label("Name", exact=True).fill("carol")
    page.get_by_label("Role", exact=True).select_option("author")
    page.get_by_role("button", name="Add user").click()
    password = page.locator("#shown-once").text_content()
    assert "Added carol (author)" in page.locator(".shown-once").text_content() and len(password) >= 16
    page.get_by_role("button", name="Copy").click()
    expect(page.locator(".copy-status")).to_have_text("Copied.")  # the clipboard answers asynchronously
    assert page.evaluate("() => navigator.clipboard.readText()") == password

    # Change the role: no confirmation needed for someone else; the notice says what changed.
    page.get_by_label("Role of carol").select_option("approver")
    page.get_by_role("button", name="Change the role of carol").click()
    assert "carol: author → approver" in page.get_by_role("status").first.text_content()
    assert password not in page.content()  # shown once, never again
    check(page, "admin-users")

    # Create a key with scopes: shown once, works, and is gone from the page after.
    page.get_by_role("link", name="API keys").first.click()
    page.get_by_label("User").select_option("carol")
    page.get_by_label("Label").fill("carol-review-bot")
    page.get_by_label("read").uncheck()
    page.get_by_label("review").check()
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#shown-once").text_content()
    assert re.fullmatch(r"kb_[\w-]{40,}", key)
    assert "with scopes search, review" in page.locator(".shown-once").text_content()
    assert page.request.get(f"{base}/api/v1/search?q=refund", headers={"Authorization": f"Bearer {key}"}).ok
    check(page, "admin-keys")
    page.goto(f"{base}/admin/keys")
    assert key not in page.content() and key[:10] in page.content()

    # Revoke it, after the confirmation page.
    page.get_by_role("button", name="Revoke key 7").click()
    assert page.get_by_role("heading", name="Revoke key 7?").is_visible()
    check(page, "admin-confirm")
    page.get_by_role("button", name="Revoke key").click()
    assert "Revoked key 7 of carol." in page.get_by_role("status").first.text_content()
    refused = page.request.get(f"{base}/api/v1/search?q=refund", headers={"Authorization": f"Bearer {key}"})
    assert refused.status == 401

    # Disable carol, after the confirmation page.
    page.get_by_role("link", name="Users").first.click()
    page.get_by_role("button", name="Disable carol").click()
    page.get_by_role("button", name="Disable carol").click()  # the confirmation page's button
    assert "carol is disabled." in page.get_by_role("status").first.text_content()
    row = page.get_by_role("row").filter(has_text="carol")
    assert "disabled" in row.text_content()
    assert [r["action"] for r in reversed(workspace.audit(actor="ada")) if r["action"] != "login"] == [
        "user_added",
        "role_changed",
        "key_created",
        "key_revoked",
        "user_disabled",
    ]

    # At 400 px: every row a card, nothing wider than the window.
    page.set_viewport_size(NARROW)
    check(page, "admin-users-narrow", NARROW["width"])
    page.goto(f"{base}/admin/keys")
    check(page, "admin-keys-narrow", NARROW["width"])
    assert page.console_errors == []


def test_the_admin_pages_work_from_the_keyboard(live_workspace, page):
    base = live_workspace
    log_in(page, base, "ada")
    page.goto(f"{base}/admin/keys")
    page.get_by_label("Label").focus()
    page.keyboard.type("keyboard-bot")
    page.keyboard.press("Tab")  # to the first scope checkbox (search, checked by default)
    page.keyboard.press("Enter")  # submits the form
    page.wait_for_load_state()
    assert page.locator("#shown-once").text_content().startswith("kb_")
    assert page.console_errors == []
