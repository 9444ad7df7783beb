"""The answer-first SOP page in Debian's Chromium (issue 13, item 2): opened at the search's section with its
words marked, Copy macro and Copy link (read back from the clipboard), placeholders highlighted, the helpful and
flag forms, the owner's summary, keyboard-only copying, and no accessibility violation or console error at
1280x800 and 400 px. Screenshots: sop-answer, sop-feedback (tests/screenshots/, git-ignored)."""

from __future__ import annotations

import pytest

from kb.disclosure import macros
from tests.conftest import axe_violations, log_in, screenshot

SOP_ID = "pay-duplicate-charge"
SOP = f"/sops/{SOP_ID}"
HOSTILE = '"><img src=x onerror=alert(1)> pending hold'
WIDTHS = {"wide": {"width": 1280, "height": 800}, "narrow": {"width": 400, "height": 800}}


def served_macros(workspace) -> list:
    gen = workspace.app.extensions["kb"]["searcher"].generation
    return macros(gen.documents[SOP_ID]["body"])


def clipboard(page, base: str):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)


def read_clipboard(page) -> str:
    return page.evaluate("() => navigator.clipboard.readText()")


def test_the_page_opens_at_the_section_with_the_query_words_marked(live_workspace, page):
    log_in(page, live_workspace, "agnes")
    page.goto(f"{live_workspace}{SOP}?q=pending+hold+released#decision-rules")
    page.wait_for_selector(".body mark")
    marked = page.eval_on_selector_all(".body mark:not(.placeholder)", "marks => marks.map(m => m.textContent)")
    assert marked and all(word.lower().startswith(("pending", "hold", "releas")) for word in marked)
    top = page.eval_on_selector("#decision-rules", "el => el.getBoundingClientRect().top")
    assert 0 <= top < 200  # scrolled to the matching section
    assert page.eval_on_selector(".toc details", "d => d.open") is True
    assert page.console_errors == []


def test_a_hostile_query_is_only_ever_text(live_workspace, page):
    log_in(page, live_workspace, "agnes")
    page.goto(f"{live_workspace}{SOP}?" + "q=" + HOSTILE.replace(" ", "+").replace("#", "%23") + "#procedure")
    page.wait_for_selector(".body mark")
    assert page.evaluate("() => document.querySelectorAll('main img').length") == 0
    assert page.text_content(".found-for .query") == HOSTILE
    # The marks wrap words of the text only: the rendered document keeps every element it had.
    assert page.evaluate("() => document.querySelectorAll('.body mark:not(.placeholder) *').length") == 0
    assert page.console_errors == []


def test_copy_macro_puts_plain_text_with_values_resolved_on_the_clipboard(workspace, live_workspace, page):
    clipboard(page, live_workspace)
    log_in(page, live_workspace, "agnes")
    page.goto(f"{live_workspace}{SOP}")
    expected = served_macros(workspace)
    buttons = page.locator(".body .copy-macro")
    assert buttons.count() == len(expected) == 3
    buttons.nth(1).click()
    page.wait_for_function("() => document.getElementById('copy-status').textContent.startsWith('Copied')")
    copied = read_clipboard(page)
    assert copied == expected[1].text
    assert copied.startswith("Hi [first name], you're right") and "{{" not in copied and "<" not in copied
    assert page.text_content("#copy-status") == f'Copied the macro "{expected[1].heading}"'
    placeholders = page.eval_on_selector_all(
        "blockquote.macro mark.placeholder", "marks => marks.map(m => m.textContent)"
    )
    assert {"[first name]", "[amount]", "[date]", "[last four]"} <= set(placeholders)
    assert (
        page.evaluate("() => document.querySelectorAll('.body mark.placeholder:not(blockquote.macro *)').length") == 0
    )
    assert page.console_errors == []


def test_copy_macro_falls_back_to_exec_command_when_the_clipboard_api_refuses(workspace, live_workspace, page):
    clipboard(page, live_workspace)  # to read the result back; writing goes through the fallback
    page.add_init_script("navigator.clipboard.writeText = () => Promise.reject(new Error('denied'));")
    log_in(page, live_workspace, "agnes")
    page.goto(f"{live_workspace}{SOP}")
    page.locator(".body .copy-macro").nth(2).click()
    page.wait_for_function("() => document.getElementById('copy-status').textContent.startsWith('Copied')")
    assert read_clipboard(page) == served_macros(workspace)[2].text
    assert page.locator("textarea.copy-buffer").count() == 0  # the hidden textarea is gone again
    assert page.console_errors == []


def test_copy_link_puts_the_section_address_on_the_clipboard(live_workspace, page):
    clipboard(page, live_workspace)
    log_in(page, live_workspace, "agnes")
    page.goto(f"{live_workspace}{SOP}?q=refund")
    page.click("#procedure + .copy-link")
    page.wait_for_function("() => document.getElementById('copy-status').textContent.startsWith('Copied')")
    assert read_clipboard(page) == f"{live_workspace}{SOP}#procedure"


def test_keyboard_only_tab_to_copy_macro_and_press_enter(workspace, live_workspace, page):
    clipboard(page, live_workspace)
    log_in(page, live_workspace, "agnes")
    page.goto(f"{live_workspace}{SOP}")
    page.locator("body").focus()
    for _ in range(300):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('copy-macro')"):
            break
    else:
        pytest.fail("Tab never reached a Copy macro button")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('copy-status').textContent.startsWith('Copied')")
    assert read_clipboard(page) == served_macros(workspace)[0].text


def test_helpful_and_flag_forms_in_the_browser(workspace, live_workspace, page):
    log_in(page, live_workspace, "agnes")
    page.goto(f"{live_workspace}{SOP}?q=charged+twice#procedure")
    assert page.input_value("#feedback-anchor") == "procedure"  # the section of the address is preselected
    page.fill("#feedback-reason", "Step 6 should say which refund reason to pick")
    page.click("button[name=helpful][value=no]")
    page.wait_for_selector("text=your answer was recorded")
    assert "sent=feedback" in page.url and page.url.endswith("#page-feedback")
    page.select_option("#flag-anchor", "escalation")
    page.fill("#flag-comment", "The Tier 2 queue was renamed")
    page.click(".flag-form button[type=submit]")
    page.wait_for_selector("text=the SOP is flagged as outdated")
    screenshot(page, "sop-feedback")
    from tests.test_sop_page import rows

    answer = rows(workspace, "SELECT * FROM feedback WHERE actor = 'agnes' ORDER BY id DESC LIMIT 1")[0]
    assert (answer["anchor"], answer["helpful"], answer["query"]) == ("procedure", 0, "charged twice")
    flag = rows(workspace, "SELECT * FROM flags WHERE actor = 'agnes' ORDER BY id DESC LIMIT 1")[0]
    assert (flag["anchor"], flag["comment"]) == ("escalation", "The Tier 2 queue was renamed")
    assert page.console_errors == []


@pytest.mark.parametrize("width", sorted(WIDTHS))
@pytest.mark.parametrize("name", ["agnes", "ann"])
def test_the_sop_page_is_accessible_wide_and_narrow(live_workspace, page, name, width):
    page.set_viewport_size(WIDTHS[width])
    log_in(page, live_workspace, name)
    page.goto(f"{live_workspace}{SOP}?q=charged+twice+pending#customer-macros")
    page.wait_for_selector(".body .copy-macro")
    assert (page.locator(".owner-summary").count() == 1) is (name == "ann")
    assert page.eval_on_selector(".toc details", "d => d.open") is (width == "wide")
    assert axe_violations(page) == []
    assert page.console_errors == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= WIDTHS[width]["width"]
    if name == "agnes" and width == "wide":
        screenshot(page, "sop-answer")
    else:
        screenshot(page, f"sop-{name}-{width}")
