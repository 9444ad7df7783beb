"""The owners' dashboard in Debian's Chromium (issue 13, items 3 and 6): the server-drawn SVG charts are there with
their bars, hostile text stays text, a flag is resolved from the page, no serious accessibility violation and no
console error at 1280x800 and at 400 px wide. Screenshots: tests/screenshots/dashboard*.png."""

from __future__ import annotations

import pytest

from kb import feedback, search_log, store
from tests.conftest import axe_violations, log_in, screenshot

WIDTHS = {"wide": {"width": 1280, "height": 800}, "narrow": {"width": 400, "height": 800}}
HOSTILE = '"><img src=x onerror=alert(1)><script>alert("q")</script>'


@pytest.fixture(scope="module")
def seeded(workspace):
    """Searches by people and bots, feedback and a flag in the workspace, once for the module."""
    db = store.connect(workspace.data)
    try:
        known = set(workspace.app.extensions["kb"]["searcher"].generation.documents)
        for query, kind, results in [
            ("charged twice for the same order", "person", 3),
            ("charged twice for the same order", "bot", 3),
            ("double charge on my card", "person", 0),
            ("creator payout has not arrived", "person", 0),
            (f"card 4111 1111 1111 1111 {HOSTILE}", "person", 0),
            ("refund status", "anonymous", 2),
        ]:
            search_log.record(db, query, kind, results, None, "hybrid")
        feedback.record_feedback(
            db, sop_id="pay-duplicate-charge", anchor=None, helpful=False, reason=HOSTILE, query=HOSTILE,
            actor="agnes", actor_kind="person", known_ids=known,
        )  # fmt: skip
        flagged = feedback.record_flag(
            db, sop_id="pay-duplicate-charge", comment=f"Fee table changed {HOSTILE}", actor="agnes",
            actor_kind="person", known_ids=known,
        )  # fmt: skip
    finally:
        db.close()
    return flagged


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_the_dashboard_draws_its_charts_and_passes_the_accessibility_check(live_workspace, seeded, page, width):
    page.set_viewport_size(WIDTHS[width])
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, live_workspace, "ann")
    page.goto(f"{live_workspace}/dashboard")
    assert page.locator("svg.chart-svg").count() == 3
    assert page.locator("#chart-searches rect.bar").count() >= 2  # people and bots today
    assert page.locator("#chart-top rect.bar").count() >= 3
    assert page.locator("#chart-searches svg title").first.text_content() == "Searches per day"
    assert page.locator("img[src=x]").count() == 0 and dialogs == []  # nothing typed ran
    assert "onerror=alert(1)" in page.locator("#flags").inner_text()
    assert "4111 1111" not in page.content()
    assert page.locator(".gaps .gap").count() >= 1
    assert axe_violations(page) == []
    assert page.console_errors == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= WIDTHS[width]["width"]
    screenshot(page, "dashboard" if width == "wide" else "dashboard-narrow")


def test_a_flag_is_resolved_from_the_dashboard_with_the_keyboard(live_workspace, seeded, page):
    log_in(page, live_workspace, "bob")
    page.goto(f"{live_workspace}/dashboard")
    button = page.get_by_role("button", name=f"Resolve flag {seeded['id']} on pay-duplicate-charge")
    button.focus()
    with page.expect_navigation(url=f"**/dashboard?*resolved={seeded['id']}*"):
        page.keyboard.press("Enter")
    assert f"resolved={seeded['id']}" in page.url
    assert page.get_by_role("status").inner_text() == f"Flag {seeded['id']} resolved."
    assert page.get_by_role("button", name=f"Resolve flag {seeded['id']} on pay-duplicate-charge").count() == 0
    assert page.console_errors == []


def test_an_agent_gets_the_403_page(live_workspace, page):
    log_in(page, live_workspace, "agnes")
    response = page.goto(f"{live_workspace}/dashboard")
    assert response.status == 403
    assert page.get_by_role("link", name="Dashboard").count() == 0
