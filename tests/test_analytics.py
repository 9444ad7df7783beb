"""The owners' dashboard figures (issue 13, item 3): kb.analytics over dated rows of the search log, feedback and
flags; content gaps grouped by meaning with the real model; the period's checks; GET /api/v1/analytics (shape,
401/403, scope); CSV export without formula injection; /dashboard for owners only, hostile text shown as text;
resolving a flag (CSRF, audited)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest

from kb import analytics, analytics_csv, content_gaps, feedback, search_log, store
from kb.errors import InputError
from kb.redaction import count_masks

TODAY = dt.datetime.now(dt.UTC).date()
CARD = "4111 1111 1111 1111"
MASKED = "[card ending 1111]"
HOSTILE = ['<script>alert("q")</script>', '"><img src=x onerror=alert(1)>']
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def day(n: int) -> str:
    """The day n days before today, YYYY-MM-DD."""
    return (TODAY - dt.timedelta(days=n)).isoformat()


@pytest.fixture
def db(workspace):
    """The workspace's database with the search log, feedback and flags emptied."""
    connection = store.connect(workspace.data)
    with connection:
        for table in ("search_log", "feedback", "flags"):
            connection.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    yield connection
    connection.close()


@pytest.fixture
def searcher(workspace):
    return workspace.app.extensions["kb"]["searcher"]


def search(db, query: str, kind: str = "person", results: int = 3, ago: int = 0, clicked: str | None = None) -> int:
    row = search_log.record(db, query, kind, results, "pay-duplicate-charge" if results else None, "hybrid")
    with db:
        db.execute("UPDATE search_log SET at = ?, clicked = ? WHERE id = ?", (f"{day(ago)}T10:00:00Z", clicked, row))
    return row


def rate(db, searcher, sop_id: str, helpful: bool, reason=None, query=None, ago: int = 0) -> dict:
    documents = searcher.generation.documents
    record = feedback.record_feedback(
        db, sop_id=sop_id, anchor=None, helpful=helpful, reason=reason, query=query, actor="agnes",
        actor_kind="person", known_ids=set(documents),
    )  # fmt: skip
    with db:
        db.execute("UPDATE feedback SET created = ? WHERE id = ?", (f"{day(ago)}T11:00:00Z", record["id"]))
    return record


def flag(db, searcher, sop_id: str, comment: str, ago: int = 0) -> dict:
    documents = searcher.generation.documents
    record = feedback.record_flag(
        db, sop_id=sop_id, comment=comment, actor="agnes", actor_kind="person", known_ids=set(documents)
    )
    with db:
        db.execute("UPDATE flags SET created = ? WHERE id = ?", (f"{day(ago)}T12:00:00Z", record["id"]))
    return record


# -- the period ------------------------------------------------------------------------------------------------


def test_the_period_defaults_to_the_last_30_days():
    when = analytics.period(today=dt.date(2026, 3, 31))
    assert (when.since, when.until) == ("2026-03-02", "2026-03-31") and len(when.days) == 30
    assert analytics.period(None, "2026-03-10", today=dt.date(2026, 3, 31)).since == "2026-02-09"


@pytest.mark.parametrize(
    "since, until, field, problem",
    [
        ("yesterday", None, "since", "YYYY-MM-DD"),
        ("2026-02-30", None, "since", "YYYY-MM-DD"),
        ("2026-03-01T00:00", None, "since", "YYYY-MM-DD"),
        (None, "31/03/2026", "until", "YYYY-MM-DD"),
        (None, 20260331, "until", "YYYY-MM-DD"),
        (None, "2026-04-01", "until", "today"),
        ("2026-03-20", "2026-03-10", "since", "on or before until"),
        ("2025-12-01", "2026-03-31", "since", "at most 90 days"),
    ],
)
def test_a_bad_period_is_refused_naming_the_field(since, until, field, problem):
    with pytest.raises(InputError) as raised:
        analytics.period(since, until, max_days=90, today=dt.date(2026, 3, 31))
    assert raised.value.details == {"field": field} and raised.value.message.startswith(f"{field}: ")
    assert problem in raised.value.message


def test_the_period_is_bounded_by_the_search_log_days():
    assert len(analytics.period("2026-01-01", "2026-03-31", max_days=90, today=dt.date(2026, 3, 31)).days) == 90
    with pytest.raises(InputError, match="at most 7 days"):
        analytics.period("2026-03-01", "2026-03-31", max_days=7, today=dt.date(2026, 3, 31))
    assert analytics.period(max_days=7, today=dt.date(2026, 3, 31)).since == "2026-03-25"


def test_count_masks_counts_each_kind_of_mask():
    assert count_masks(f"{MASKED} exp [expiry] [cvv] and [card ending 4242]") == {"card": 2, "cvv": 1, "expiry": 1}
    assert count_masks("[card ending 12] [CVV] nothing") == {"card": 0, "cvv": 0, "expiry": 0}


# -- every key ---------------------------------------------------------------------------------------------------


def test_every_key_is_computed_from_the_period_rows(db, searcher):
    search(db, "Charged  TWICE", ago=1, clicked="pay-duplicate-charge")
    search(db, "charged twice", ago=1)  # a person, results, no click
    search(db, "charged twice", "bot", ago=2)
    search(db, "refund status", "anonymous", ago=2)
    search(db, "zzqx unknown thing", results=0, ago=1)
    search(db, "zzqx unknown thing", "bot", results=0, ago=3)
    search(db, f"card {CARD} exp 09/27 declined", ago=1)
    search(db, "long ago", ago=40)  # outside the period
    rate(
        db, searcher, "pay-duplicate-charge", False, reason=f"Wrong fee {CARD}", query="fee for a double charge", ago=1
    )
    rate(db, searcher, "pay-duplicate-charge", False, reason="Step 3 is gone", ago=2)
    rate(db, searcher, "pay-duplicate-charge", True, ago=2)
    rate(db, searcher, "pay-card-declined", False, ago=50)  # outside the period
    old = flag(db, searcher, "pay-card-declined", "Old limits", ago=60)  # open, raised before the period
    flag(db, searcher, "pay-duplicate-charge", f"New fee table, customer card {CARD}", ago=1)
    done = flag(db, searcher, "pay-duplicate-charge", "Fixed already", ago=1)
    feedback.resolve_flag(db, done["id"], "ann")

    when = analytics.Period(day(29), day(0))
    data = analytics.analytics(db, searcher, when)
    assert set(analytics.KEYS) <= set(data) and data["period"] == {"since": day(29), "until": day(0)}

    per_day = {row["day"]: row for row in data["searches_per_day"]}
    assert len(per_day) == 30 and sum(row["total"] for row in per_day.values()) == 7
    assert per_day[day(1)] == {"day": day(1), "person": 4, "bot": 0, "anonymous": 0, "total": 4}
    assert per_day[day(2)] == {"day": day(2), "person": 0, "bot": 1, "anonymous": 1, "total": 2}
    assert per_day[day(5)]["total"] == 0

    top = data["top_queries"]
    assert top[0] == {"query": "charged twice", "count": 3, "person": 2, "bot": 1, "anonymous": 0}
    assert {"query": "zzqx unknown thing", "count": 2, "person": 1, "bot": 1, "anonymous": 0} in top
    assert all("4111" not in row["query"] for row in top)
    assert any(MASKED in row["query"] for row in top)

    assert [(q["query"], q["count"]) for q in data["zero_result_queries"]] == [("zzqx unknown thing", 2)]
    no_click = {q["query"]: q["count"] for q in data["no_click_queries"]}
    assert no_click["charged twice"] == 1 and "zzqx unknown thing" not in no_click and "refund status" not in no_click

    (unhelpful,) = data["unhelpful"]
    assert unhelpful["sop_id"] == "pay-duplicate-charge" and (unhelpful["unhelpful"], unhelpful["helpful"]) == (2, 1)
    assert unhelpful["title"] and unhelpful["owner"]
    assert unhelpful["reasons"][0]["reason"] == f"Wrong fee {MASKED}"
    assert unhelpful["reasons"][0]["query"] == "fee for a double charge"

    flags = {row["sop_id"]: row for row in data["flags"]}
    assert flags["pay-duplicate-charge"]["open"] == 1 and flags["pay-duplicate-charge"]["raised"] == 2
    assert [c["comment"] for c in flags["pay-duplicate-charge"]["comments"]] == [
        f"New fee table, customer card {MASKED}"
    ]
    assert flags["pay-card-declined"]["open"] == 1 and flags["pay-card-declined"]["raised"] == 0
    assert flags["pay-card-declined"]["comments"][0]["id"] == old["id"]
    assert data["flags"][0]["sop_id"] in flags  # ranked by open flags, then raised

    redactions = {row["day"]: row for row in data["redactions_per_day"]}
    # day 1: the search (card and expiry), the feedback reason (card), the open flag's comment (card)
    assert redactions[day(1)] == {"day": day(1), "card": 3, "cvv": 0, "expiry": 1, "total": 4}
    assert sum(row["total"] for row in redactions.values()) == 4 and len(redactions) == 30

    gaps = data["content_gaps"]
    assert (
        sum(g["count"] for g in gaps) == 2 + 2 + 1
    )  # zero results x2, no click x2 (charged twice, the card), unhelpful x1
    assert all(set(g) == {"count", "queries", "examples", "sources", "category"} for g in gaps)


def test_review_due_is_the_needs_review_list_and_the_owner_filter_narrows_the_inbox(db, searcher):
    documents = searcher.list_documents()
    dated = [d for d in documents if d.get("review_by") and d["status"] != "retired"]
    latest = max(dt.date.fromisoformat(d["review_by"]) for d in dated)
    due = analytics.due_for_review(documents, today=latest)
    assert len(due) == len(dated) and due == sorted(due, key=lambda e: (e["review_by"], e["id"]))
    owner = due[0]["owner"]
    assert {e["owner"] for e in analytics.due_for_review(documents, owner, today=latest)} == {owner}

    owners = {searcher.generation.documents[i]["owner"] for i in ("pay-duplicate-charge", "pay-card-declined")}
    rate(db, searcher, "pay-duplicate-charge", False, reason="x", ago=1)
    flag(db, searcher, "pay-duplicate-charge", "outdated", ago=1)
    other = sorted(set(analytics.owners(searcher)) - owners)[0]
    when = analytics.Period(day(29), day(0))
    mine = searcher.generation.documents["pay-duplicate-charge"]["owner"]
    assert analytics.unhelpful(db, when, searcher.generation.documents, mine)[0]["sop_id"] == "pay-duplicate-charge"
    assert analytics.unhelpful(db, when, searcher.generation.documents, other) == []
    assert analytics.flags(db, when, searcher.generation.documents, other) == []


def test_lists_are_cut_to_top_and_gaps_embed_at_most_max_queries(db, searcher, monkeypatch):
    for n in range(analytics.TOP + 5):
        search(db, f"zzqx missing topic {n}", results=0, ago=1)
    when = analytics.Period(day(29), day(0))
    assert len(analytics.top_queries(db, when)) == analytics.TOP
    assert len(analytics.zero_result_queries(db, when)) == analytics.TOP
    embedded = []
    real = searcher.encoder.encode
    monkeypatch.setattr(content_gaps, "MAX_QUERIES", 7)
    monkeypatch.setattr(analytics.content_gaps, "MAX_QUERIES", 7)

    class Counting:
        def encode(self, texts):
            embedded.extend(texts)
            return real(texts)

    monkeypatch.setattr(type(searcher), "encoder", property(lambda self: Counting()))
    groups = analytics.gaps(db, when, searcher)
    assert len(embedded) == 7 and sum(g["queries"] for g in groups) == 7


# -- content gaps with the real model -------------------------------------------------------------------------


PARAPHRASES = {
    "double": [
        "charged twice for the same order",
        "double charge on my card",
        "I was billed two times for one purchase",
    ],
    "payout": ["creator payout has not arrived", "my earnings withdrawal never came", "payout still not received"],
}


def test_content_gaps_group_paraphrases_and_name_a_plausible_category(db, searcher):
    for n, query in enumerate(PARAPHRASES["double"]):
        for _ in range(3 - n):
            search(db, query, results=0, ago=1)
    for query in PARAPHRASES["payout"]:
        search(db, query, ago=2)  # people's searches with results and no click
    rate(db, searcher, "pay-duplicate-charge", False, query="payout missing for my stream", ago=1)
    gaps = analytics.analytics(db, searcher, analytics.Period(day(29), day(0)))["content_gaps"]
    grouped = [{e["query"] for e in g["examples"]} for g in gaps]
    double = next(g for g in gaps if "charged twice for the same order" in {e["query"] for e in g["examples"]})
    assert {e["query"] for e in double["examples"]} == {q.lower() for q in PARAPHRASES["double"]}
    assert double is gaps[0] and double["count"] == 6 and double["sources"] == {"zero_results": 6}
    assert double["examples"][0] == {"query": "charged twice for the same order", "count": 3}
    assert double["category"]["id"].endswith("duplicate-charge") and 0 < double["category"]["similarity"] <= 1
    assert double["category"]["name"]
    payout = next(g for g in gaps if "payout still not received" in {e["query"] for e in g["examples"]})
    assert payout["category"]["id"].startswith("creator-payouts/")
    expected = {"creator payout has not arrived", "payout still not received", "payout missing for my stream"}
    assert expected <= {e["query"] for e in payout["examples"]}
    assert payout["sources"]["unhelpful"] == 1 and payout["sources"]["no_click"] >= 2
    assert not any({"charged twice for the same order", "payout still not received"} <= g for g in grouped)
    again = analytics.analytics(db, searcher, analytics.Period(day(29), day(0)))["content_gaps"]
    assert again == gaps  # deterministic


def test_grouping_is_greedy_by_volume_with_the_threshold():
    import numpy as np

    queries = [content_gaps.GapQuery(q, c, {"zero_results": c}) for q, c in (("a", 1), ("b", 5), ("c", 2))]
    vectors = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    assert content_gaps.group(queries, vectors, threshold=0.75) == [
        [1, 0],
        [2],
    ]  # b leads; c (0.6) apart; a (0.8) joins b
    assert content_gaps.group(queries, vectors, threshold=0.95) == [[1], [2], [0]]


# -- the JSON API -------------------------------------------------------------------------------------------------

API = "/api/v1/analytics"


def test_the_api_answers_every_key_to_authors_and_up(workspace, db):
    search(db, "charged twice", ago=1)
    for name in ("ann", "bob", "ada"):
        response = workspace.call("GET", f"{API}?since={day(6)}&until={day(0)}", name)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert set(analytics.KEYS) <= set(body) and body["period"] == {"since": day(6), "until": day(0)}
        assert len(body["searches_per_day"]) == 7 and body["top_queries"][0]["query"] == "charged twice"


def test_the_api_refuses_anonymous_callers_agents_and_keys_without_read(workspace, db):
    from kb import accounts

    assert workspace.call("GET", API).status_code == 401
    refused = workspace.call("GET", API, "agnes")
    assert refused.status_code == 403 and "author" in refused.get_json()["error"]["message"]
    with store.connect(workspace.data) as connection:
        key = accounts.create_key(connection, "ann", "write only", ("write",))[0]
    response = workspace.client.get(API, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403 and "read" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "args, field",
    [("since=yesterday", "since"), ("until=2999-01-01", "until"), (f"since={day(0)}&until={day(3)}", "since"),
     ("since=2000-01-01", "since"), ("colour=red", "colour"), ("owner=" + "x" * 101, "owner")],
)  # fmt: skip
def test_the_api_names_a_bad_argument(workspace, args, field):
    response = workspace.call("GET", f"{API}?{args}", "ann")
    assert response.status_code in (400, 422), response.get_json()
    assert response.get_json()["error"]["details"]["field"] == field


# -- CSV -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, written",
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@x", "'@x"),
        ("\tTAB", "'\tTAB"),
        ("\rCR", "'\rCR"),
        (f"card {CARD}", f"card {MASKED}"),
        ("plain text", "plain text"),
        (3, 3),
        (None, ""),
    ],
)
def test_csv_cells_are_masked_and_never_start_a_formula(value, written):
    assert analytics_csv.safe_cell(value) == written


def login(client, name: str):
    form = client.get("/login").get_data(as_text=True)
    data = {"name": name, "password": f"{name}-password-123", "csrf_token": TOKEN.search(form).group(1)}
    assert client.post("/login", data=data).status_code == 303


@pytest.fixture
def owner_client(workspace):
    client = workspace.app.test_client()
    login(client, "ann")
    return client


def test_the_csv_export_neutralises_formulas_and_masks_card_numbers(db, owner_client):
    for query in ("=cmd|' /C calc'!A0", "+1", "-2", "@x", f"my card {CARD}"):
        search(db, query, results=0, ago=1)
    response = owner_client.get(f"/dashboard.csv?part=zero_result_queries&since={day(6)}&until={day(0)}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["query", "count", "last"]
    queries = {row[0] for row in rows[1:]}
    assert {"'=cmd|' /c calc'!a0", "'+1", "'-2", "'@x", f"my card {MASKED}"} == queries
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    assert "4111" not in response.get_data(as_text=True)
    for part in analytics_csv.PARTS:
        assert owner_client.get(f"/dashboard.csv?part={part}").status_code == 200, part
    assert owner_client.get("/dashboard.csv?part=secrets").status_code == 422


# -- the page -------------------------------------------------------------------------------------------------------


def test_the_dashboard_is_for_authors_and_up_and_agents_get_403(workspace):
    agent = workspace.app.test_client()
    login(agent, "agnes")
    refused = agent.get("/dashboard")
    assert refused.status_code == 403 and "author" in refused.get_data(as_text=True)
    assert agent.get("/dashboard.csv?part=top_queries").status_code == 403
    assert workspace.app.test_client().get("/dashboard").status_code == 303  # anonymous: sent to log in
    for name in ("ann", "bob", "ada"):
        client = workspace.app.test_client()
        login(client, name)
        assert client.get("/dashboard").status_code == 200, name


def test_the_dashboard_shows_charts_lists_and_hostile_text_as_text(db, searcher, owner_client):
    for text in HOSTILE:
        search(db, text, results=0, ago=1)
        rate(db, searcher, "pay-duplicate-charge", False, reason=text, query=text, ago=1)
        flag(db, searcher, "pay-duplicate-charge", f"{text} {CARD}", ago=1)
    search(db, "charged twice", "bot", ago=2)
    page = owner_client.get(f"/dashboard?since={day(13)}&until={day(0)}").get_data(as_text=True)
    assert "<script>alert" not in page and "<img src=x" not in page and "onerror=alert(1)>" not in page
    assert (
        "&lt;script&gt;alert(&#34;q&#34;)&lt;/script&gt;" in page
        and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    )
    assert "4111" not in page and MASKED in page
    assert page.count('<svg class="chart-svg"') == 3 and '<title id="chart-searches-title">Searches per day' in page
    assert '<rect class="bar"' in page and '<desc id="chart-searches-desc">' in page
    assert "Content gaps" in page and "Flagged as outdated" in page and "Past or near review" in page


def test_a_bad_period_on_the_page_is_named_and_the_default_shown(owner_client):
    response = owner_client.get("/dashboard?since=2026-13-01")
    assert response.status_code == 400 and "since: must be a date as YYYY-MM-DD" in response.get_data(as_text=True)


def test_resolving_a_flag_needs_csrf_and_an_author_and_is_audited(workspace, db, searcher, owner_client):
    raised = flag(db, searcher, "pay-duplicate-charge", "Fee table changed", ago=1)
    page = owner_client.get("/dashboard").get_data(as_text=True)
    action = f"/dashboard/flags/{raised['id']}/resolve"
    assert action in page
    assert owner_client.post(action, data={}).status_code == 400  # no CSRF token
    token = TOKEN.search(page).group(1)
    response = owner_client.post(action, data={"csrf_token": token, "since": day(6), "until": day(0)})
    assert response.status_code == 303 and f"resolved={raised['id']}" in response.headers["Location"]
    assert f"since={day(6)}" in response.headers["Location"]
    assert db.execute("SELECT resolved FROM flags WHERE id = ?", (raised["id"],)).fetchone()[0]
    (event,) = workspace.audit(action="flag_resolved")[:1]
    assert event["actor"] == "ann" and event["target"] == "sop:pay-duplicate-charge"
    assert event["details"] == {"flag": raised["id"]}
    again = owner_client.post(action, data={"csrf_token": token})
    assert again.status_code == 409 and "already resolved" in again.get_data(as_text=True)
    assert owner_client.post("/dashboard/flags/999999/resolve", data={"csrf_token": token}).status_code == 404
    agent = workspace.app.test_client()
    login(agent, "agnes")
    agent_token = TOKEN.search(agent.get("/").get_data(as_text=True)).group(1)
    assert agent.post(action, data={"csrf_token": agent_token}).status_code == 403
