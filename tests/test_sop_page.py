"""The answer-first SOP page (issue 13, item 2), server side: metadata, macros with resolved values, related SOPs,
the masked query and the click it records, the helpful and flag forms (CSRF, log-in, limits, errors by field,
hostile text shown as text and card numbers masked), and the owner's summary for authors only."""

from __future__ import annotations

import html
import json
import re
import sqlite3

import pytest
from markupsafe import escape

from kb import search_log, store
from kb.indexing.builder import build_index
from tests.conftest import Authoring

SOP = "/sops/pay-duplicate-charge"
CARD = "4111 1111 1111 1111"
MASKED = "[card ending 1111]"
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def logged_in(kb: Authoring, name: str):
    """A fresh test client of kb's app, logged in as name."""
    client = kb.app.test_client()
    form = client.get("/login").get_data(as_text=True)
    answer = client.post(
        "/login", data={"name": name, "password": f"{name}-password-123", "csrf_token": TOKEN.search(form)[1]}
    )
    assert answer.status_code == 303
    return client


def token(client, path: str = SOP) -> str:
    return TOKEN.search(client.get(path).get_data(as_text=True))[1]


def rows(kb: Authoring, sql: str, *params) -> list[dict]:
    db = store.connect(kb.data)
    try:
        return [dict(row) for row in db.execute(sql, params)]
    finally:
        db.close()


def macros_of(page_html: str) -> list[dict]:
    data = re.search(r'<script type="application/json" id="sop-macros">(.*?)</script>', page_html, re.S)[1]
    return json.loads(data)


def test_the_page_shows_owner_status_dates_revision_and_review(workspace):
    page = workspace.client.get(SOP).get_data(as_text=True)
    for label, value in (("Owner", "payments-policy"), ("Status", "published"), ("Effective", "2026-12-03")):
        assert re.search(rf"<dt>{label}</dt><dd>(<span[^>]*>)?{re.escape(value)}", page), label
    assert "<dt>Review by</dt>" in page and "2027-06-01" in page and "<dt>Revision</dt>" in page
    assert '<nav class="toc" aria-label="Contents">\n      <details open>' in page and 'aria-label="Contents"' in page


def test_an_overdue_review_is_highlighted(workspace):
    from kb.web.sop_page import review_state

    assert review_state("2020-01-01")["overdue"] is True
    assert review_state("2999-01-01")["overdue"] is False and review_state(None) is None


def test_each_customer_macro_is_plain_text_with_values_resolved_and_placeholders_kept(workspace):
    found = macros_of(workspace.client.get(SOP).get_data(as_text=True))
    assert [m["anchor"] for m in found] == [
        "macro-pending-hold-not-a-second-charge",
        "macro-duplicate-refunded",
        "macro-two-separate-purchases",
    ]
    text = found[0]["text"]
    assert text.startswith("Hi [first name], I've checked your account. Your payment of [amount] on [date]")
    assert "{{" not in text and re.search(r"usually within \d+ business days", text)
    assert "<" not in text and ">" not in text  # plain text: no markup, no block-quote marker


def test_related_sops_come_from_the_related_section_first_then_shared_categories(workspace):
    page = workspace.client.get(SOP).get_data(as_text=True)
    related = re.search(r'<nav class="related".*?</nav>', page, re.S)[0]
    ids = re.findall(r'href="/sops/([a-z0-9-]+)"', related)
    assert ids[:3] == ["pay-pending-authorization", "policy-refunds", "pay-unrecognized-charge"]
    assert "pay-duplicate-charge" not in ids and 0 < len(ids) <= 6


def test_a_card_number_in_the_address_redirects_to_the_masked_address(workspace):
    answer = workspace.client.get(SOP, query_string={"q": f"charged twice {CARD}", "from": "3"})
    assert answer.status_code == 303
    location = answer.headers["Location"]
    assert "4111" not in location and "card+ending+1111" in location and "from=3" in location


def test_a_hostile_query_is_shown_as_text(workspace):
    page = workspace.client.get(SOP, query_string={"q": HOSTILE}).get_data(as_text=True)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert str(escape(HOSTILE)) in page  # the data-query attribute and the "opened from" line


def test_opening_an_sop_from_a_search_records_the_click_once(workspace):
    db = store.connect(workspace.data)
    try:
        first = search_log.record(db, "charged twice", "person", 3, "pay-duplicate-charge", "hybrid")
    finally:
        db.close()
    assert workspace.client.get(SOP, query_string={"q": "charged twice", "from": str(first)}).status_code == 200
    assert workspace.client.get("/sops/policy-refunds", query_string={"from": str(first)}).status_code == 200
    assert rows(workspace, "SELECT clicked FROM search_log WHERE id = ?", first) == [
        {"clicked": "pay-duplicate-charge"}
    ]


@pytest.mark.parametrize("value", ["x", "-1", "0", "1e3", "9" * 40, "١٢", " 7"])
def test_a_bad_from_is_ignored(workspace, value):
    assert workspace.client.get(SOP, query_string={"from": value}).status_code == 200


def test_a_failed_click_write_never_fails_the_page(workspace, monkeypatch):
    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(search_log, "record_click", broken)
    assert workspace.client.get(SOP, query_string={"from": "1"}).status_code == 200


def test_anonymous_visitors_are_asked_to_log_in_and_cannot_post(workspace):
    client = workspace.app.test_client()
    page = client.get(SOP).get_data(as_text=True)
    assert "Log in to give feedback" in page and "feedback-form" not in page and "Feedback for the owner" not in page
    before = rows(workspace, "SELECT COUNT(*) AS n FROM feedback")[0]["n"]
    answer = client.post(f"{SOP}/feedback", data={"helpful": "yes", "csrf_token": token(client, "/login")})
    assert answer.status_code == 401
    answer = client.post(f"{SOP}/flag", data={"comment": "old", "csrf_token": token(client, "/login")})
    assert answer.status_code == 401
    assert rows(workspace, "SELECT COUNT(*) AS n FROM feedback")[0]["n"] == before


def test_helpful_feedback_is_stored_with_the_masked_query_and_the_section(workspace):
    client = logged_in(workspace, "agnes")
    query = f"charged twice on {CARD}"
    data = {"helpful": "no", "anchor": "procedure", "reason": f"Step 6 is wrong for {CARD}", "q": query}
    answer = client.post(f"{SOP}/feedback", data={**data, "csrf_token": token(client)})
    assert answer.status_code == 303
    location = answer.headers["Location"]
    assert location.endswith("#page-feedback") and "sent=feedback" in location and "4111" not in location
    stored = rows(workspace, "SELECT * FROM feedback ORDER BY id DESC LIMIT 1")[0]
    assert stored["sop_id"] == "pay-duplicate-charge" and stored["anchor"] == "procedure"
    assert stored["helpful"] == 0 and stored["actor"] == "agnes" and stored["actor_kind"] == "person"
    assert stored["query"] == f"charged twice on {MASKED}" and stored["reason"] == f"Step 6 is wrong for {MASKED}"
    confirmed = client.get(location).get_data(as_text=True)
    assert "your answer was recorded" in confirmed


def test_a_flag_is_stored_with_its_comment_and_section(workspace):
    client = logged_in(workspace, "agnes")
    data = {"anchor": "escalation", "comment": "Tier 2 now answers within 2 days", "csrf_token": token(client)}
    answer = client.post(f"{SOP}/flag", data=data)
    assert answer.status_code == 303 and "sent=flag" in answer.headers["Location"]
    stored = rows(workspace, "SELECT * FROM flags ORDER BY id DESC LIMIT 1")[0]
    assert (stored["anchor"], stored["comment"], stored["actor_kind"]) == (
        "escalation",
        "Tier 2 now answers within 2 days",
        "person",
    )
    assert "the SOP is flagged as outdated" in client.get(answer.headers["Location"]).get_data(as_text=True)


def test_the_forms_need_the_csrf_token(workspace):
    client = logged_in(workspace, "agnes")
    before = rows(workspace, "SELECT COUNT(*) AS n FROM flags")[0]["n"]
    assert client.post(f"{SOP}/flag", data={"comment": "no token"}).status_code == 400
    assert client.post(f"{SOP}/feedback", data={"helpful": "yes"}).status_code == 400
    assert rows(workspace, "SELECT COUNT(*) AS n FROM flags")[0]["n"] == before


@pytest.mark.parametrize(
    "form, data, field, message",
    [
        ("feedback", {"helpful": "yes", "reason": "r" * 501}, "reason", "reason: must be at most 500 characters"),
        ("feedback", {"helpful": "maybe"}, "helpful", "helpful: choose Yes or No"),
        ("feedback", {"helpful": "yes", "anchor": "no-such-section"}, "anchor", "anchor: is not a section"),
        ("flag", {"comment": "   "}, "comment", "comment: must not be empty"),
        ("flag", {"comment": "c" * 2001}, "comment", "comment: must be at most 2,000 characters"),
        ("flag", {"comment": "old", "anchor": "<b>"}, "anchor", "anchor: is not a section"),
    ],
)
def test_a_refused_form_shows_the_error_next_to_the_field_it_names(workspace, form, data, field, message):
    client = logged_in(workspace, "agnes")
    table = "feedback" if form == "feedback" else "flags"
    before = rows(workspace, f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]  # noqa: S608
    answer = client.post(f"{SOP}/{form}", data={**data, "csrf_token": token(client)})
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    error = re.search(rf'<p class="error field-error" id="{form}-{field}-error">([^<]*)</p>', page)
    assert error and html.unescape(error[1]).startswith(message)
    assert rows(workspace, f"SELECT COUNT(*) AS n FROM {table}")[0]["n"] == before  # noqa: S608


def test_the_owner_summary_shows_counts_reasons_and_flags_as_text_to_authors_only(workspace):
    agent = logged_in(workspace, "agnes")
    sop = "/sops/pay-card-declined"
    for helpful, reason in (("yes", None), ("no", f"{HOSTILE} card {CARD}")):
        data = {"helpful": helpful, "csrf_token": token(agent, sop), **({"reason": reason} if reason else {})}
        assert agent.post(f"{sop}/feedback", data=data).status_code == 303
    data = {"comment": f"Outdated {HOSTILE} {CARD}", "csrf_token": token(agent, sop)}
    assert agent.post(f"{sop}/flag", data=data).status_code == 303

    assert "Feedback for the owner" not in agent.get(sop).get_data(as_text=True)
    page = logged_in(workspace, "ann").get(sop).get_data(as_text=True)
    summary = re.search(r'<section class="owner-summary panel".*?</section>', page, re.S)[0]
    assert re.search(r"<strong>1</strong> found it helpful, <strong>1</strong> did not", summary)
    assert "<script>alert" not in summary and "<img src=x" not in summary and "4111" not in summary
    assert summary.count(str(escape(HOSTILE))) == 2 and summary.count(MASKED) == 2
    assert 'href="/dashboard"' in summary


@pytest.fixture
def limited(sop_repo, data_dir, settings_for) -> Authoring:
    """The tiny library with KB_RATE_LIMIT_FEEDBACK at 2 a minute."""
    sops = sop_repo / "sops"
    build_index(sops, data_dir)
    return Authoring(sop_repo, data_dir, {**settings_for(sops, data_dir), "RATE_LIMIT_FEEDBACK": "2/minute"})


def test_feedback_from_the_page_is_rate_limited_per_person(limited):
    client = logged_in(limited, "agnes")
    sop = "/sops/pay-card-declined"
    statuses = [
        client.post(f"{sop}/feedback", data={"helpful": "yes", "csrf_token": token(client, sop)}).status_code
        for _ in range(3)
    ]
    assert statuses == [303, 303, 429]
    refused = client.post(f"{sop}/flag", data={"comment": "old", "csrf_token": token(client, sop)})
    assert refused.status_code == 429 and "too many feedback answers" in refused.get_data(as_text=True)
    assert rows(limited, "SELECT COUNT(*) AS n FROM feedback")[0]["n"] == 2
    assert rows(limited, "SELECT COUNT(*) AS n FROM flags")[0]["n"] == 0
