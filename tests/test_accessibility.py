"""Accessibility of the main pages, checked in Debian's Chromium with axe-core from npm (issue 13, item 5):
no serious or critical violation, no console error, at 1280x800 and at 400 px wide. Screenshots of each page
are saved in tests/screenshots/ (git ignores it)."""

from __future__ import annotations

import pytest

from tests.conftest import axe_violations, log_in, screenshot

PAGES = {
    "search": "/?q=charged+twice+for+the+same+order",
    "list": "/sops",
    "categories": "/categories",
    "sop": "/sops/pay-duplicate-charge",
    "login": "/login",
}
WIDTHS = {"wide": {"width": 1280, "height": 800}, "narrow": {"width": 400, "height": 800}}


@pytest.mark.parametrize("width", sorted(WIDTHS))
@pytest.mark.parametrize("name", sorted(PAGES))
def test_main_pages_have_no_serious_accessibility_violation(live_workspace, page, name, width):
    page.set_viewport_size(WIDTHS[width])
    if name != "login":
        log_in(page, live_workspace, "agnes")
    page.goto(live_workspace + PAGES[name])
    assert axe_violations(page) == []
    assert page.console_errors == []
    # Nothing is wider than the window: usable at 400 px without scrolling sideways.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= WIDTHS[width]["width"]
    screenshot(page, f"{name}-{width}")
