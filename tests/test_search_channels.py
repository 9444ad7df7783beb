"""Every channel that answers from search (the JSON API, the search page, Dify's POST /retrieval, POST
/api/v1/assist, the MCP tools) cites real sections, never a links-only one ("Related documents"), and goes into
the search log: masked, bot with a key (anonymous without), its channel named; a log failure never fails it."""

from __future__ import annotations

import re

import anyio
import pytest
from mcp import Client

from kb import search_log, store
from kb.mcp_server import build_server
from kb.search import Searcher, fuse_sections
from kb.web.searches import recorder
from tests.conftest import empty_search_log

# Each SOP's related-documents list names these titles: the fused ranking's best section is such a list.
RELATED = "customers who paid a scammer, account closure, delayed creator payouts"
CARD = "4111 1111 1111 1111"
MASKED = "[card ending 1111]"
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def gen(workspace):
    return workspace.app.extensions["kb"]["searcher"].generation


@pytest.fixture
def logged(workspace):
    """The workspace with an empty search log; returns a function listing its rows."""
    empty_search_log(workspace.data)

    def rows() -> list[dict]:
        db = store.connect(workspace.data)
        try:
            return [dict(row) for row in db.execute("SELECT * FROM search_log ORDER BY id")]
        finally:
            db.close()

    return rows


def assert_cites_real_sections(gen, cited: list[tuple[str, str]]) -> None:
    assert cited, "nothing was cited"
    for sop_id, anchor in cited:
        assert gen.citable(f"{sop_id}#{anchor}"), f"{sop_id}#{anchor} is a links-only section"


def test_the_query_matches_related_documents_sections_first(workspace, gen):
    searcher = Searcher(workspace.settings)
    prepared = gen.rewriter.prepare(RELATED)
    found = searcher.rankings(gen, prepared, "hybrid", None)
    fused = fuse_sections({name: found[name] for name in ("keyword", "semantic")}, workspace.settings)
    assert not gen.citable(fused[0][0])  # the premise of every test below
    assert sum(not gen.citable(key) for key, _ in fused[:5]) >= 3


def test_the_search_api_cites_another_section(workspace, gen):
    for mode in ("hybrid", "keyword", "semantic"):
        results = workspace.client.get("/api/v1/search", query_string={"q": RELATED, "mode": mode}).get_json()
        hits = results["results"]
        assert_cites_real_sections(gen, [(h["sop_id"], h["section"]["anchor"]) for h in hits])
        assert_cites_real_sections(gen, [(h["sop_id"], o["anchor"]) for h in hits for o in h["other_sections"]])
        assert all(not h["url"].endswith("#related-documents") for h in hits)


def test_the_search_page_cites_another_section(workspace, gen):
    page = workspace.client.get("/", query_string={"q": RELATED}).get_data(as_text=True)
    cited = re.findall(r'href="/sops/([a-z0-9-]+)#([a-z0-9-]+)"', page)
    assert_cites_real_sections(gen, cited)
    assert "#related-documents" not in page


def test_retrieval_cites_another_section(workspace, gen):
    body = {"knowledge_id": "kb", "query": RELATED, "retrieval_setting": {"top_k": 5, "score_threshold": 0.0}}
    answer = workspace.client.post("/retrieval", json=body, headers=workspace.headers("agnes")).get_json()
    records = answer["records"]
    assert_cites_real_sections(gen, [(r["metadata"]["sop_id"], r["metadata"]["anchor"]) for r in records])
    for record in records:  # the text is the cited section's, not a list of titles
        assert (
            record["content"] == gen.section(f"{record['metadata']['sop_id']}#{record['metadata']['anchor']}")["text"]
        )


def test_assist_cites_another_section(workspace, gen):
    answer = workspace.client.post("/api/v1/assist", json={"subject": "", "body": RELATED}).get_json()
    assert_cites_real_sections(gen, [(r["citation"]["sop_id"], r["citation"]["anchor"]) for r in answer["results"]])


def test_the_mcp_tools_cite_another_section(workspace, gen):
    server = build_server(Searcher(workspace.settings), workspace.app.extensions["kb"]["history"])

    async def body():
        async with Client(server) as client:
            found = (await client.call_tool("search_sops", {"query": RELATED})).structured_content
            assisted = (await client.call_tool("assist_ticket", {"subject": "", "body": RELATED})).structured_content
        return found, assisted

    found, assisted = anyio.run(body)
    assert_cites_real_sections(gen, [(h["sop_id"], h["anchor"]) for h in found["results"]])
    assert_cites_real_sections(gen, [(r["citation"]["sop_id"], r["citation"]["anchor"]) for r in assisted["results"]])


# -- the search log ---------------------------------------------------------------------------------------


def test_retrieval_is_logged_as_a_bot_masked(workspace, logged):
    body = {
        "knowledge_id": "kb",
        "query": f"refund card {CARD}",
        "retrieval_setting": {"top_k": 3, "score_threshold": 0},
    }
    answer = workspace.client.post("/retrieval", json=body, headers=workspace.headers("agnes")).get_json()
    [row] = logged()
    assert (row["actor_kind"], row["channel"], row["mode"]) == ("bot", "retrieval", "hybrid")
    assert row["query"] == f"refund card {MASKED}" and "4111" not in row["query"]
    assert row["results"] == len(answer["records"]) > 0
    assert row["top_sop_id"] == answer["records"][0]["metadata"]["sop_id"]


def test_assist_is_logged_with_the_ticket_as_searched_masked_and_bounded(workspace, logged):
    subject, body = "Charged twice", f"Hello, my card {CARD} was charged twice for one order. " + "More. " * 1000
    with_key = workspace.client.post(
        "/api/v1/assist", json={"subject": subject, "body": body}, headers=workspace.headers("agnes")
    )
    anonymous = workspace.client.post("/api/v1/assist", json={"subject": "", "body": "payout late"})
    assert with_key.status_code == anonymous.status_code == 200
    first, second = logged()
    assert (first["actor_kind"], first["channel"], first["mode"]) == ("bot", "assist", "hybrid")
    assert first["query"].startswith(f"Charged twice\n\nHello, my card {MASKED} was charged twice")
    assert "4111" not in first["query"] and len(first["query"]) <= workspace.settings["MAX_QUERY_CHARS"]
    assert first["results"] == len(with_key.get_json()["results"])
    assert first["top_sop_id"] == with_key.get_json()["results"][0]["sop_id"]
    assert (second["actor_kind"], second["channel"], second["query"]) == ("anonymous", "assist", "payout late")


def test_the_api_and_the_page_name_their_channels(workspace, logged):
    workspace.client.get("/api/v1/search?q=refund", headers=workspace.headers("agnes"))
    workspace.client.get("/?q=refund")
    assert [(r["actor_kind"], r["channel"]) for r in logged()] == [("bot", "api"), ("person", "page")]


def test_mcp_over_http_is_logged_as_a_bot(workspace, logged):
    def call(tool: str, arguments: dict) -> dict:
        message = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
        response = workspace.client.post("/mcp", json=message, headers={**ACCEPT, **workspace.headers("agnes")})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["result"]["structuredContent"]

    found = call("search_sops", {"query": f"declined {CARD}", "mode": "keyword"})
    assisted = call("assist_ticket", {"subject": "Refund", "body": "where is my refund"})
    search, assist = logged()
    assert (search["actor_kind"], search["channel"], search["mode"]) == ("bot", "mcp_search", "keyword")
    assert search["query"] == f"declined {MASKED}" and search["results"] == len(found["results"])
    assert (assist["actor_kind"], assist["channel"], assist["mode"]) == ("bot", "mcp_assist", "hybrid")
    assert assist["query"] == "Refund\n\nwhere is my refund" and assist["results"] == len(assisted["results"])


def test_mcp_over_stdio_logs_as_anonymous(workspace, logged):
    def log_search(query, results, top, mode, channel):
        search_log.record_quietly(workspace.data, query, "anonymous", results, top, mode, channel)

    server = build_server(
        Searcher(workspace.settings), workspace.app.extensions["kb"]["history"], log_search=log_search
    )

    async def body():
        async with Client(server) as client:
            await client.call_tool("search_sops", {"query": "refund"})

    anyio.run(body)
    assert [(r["actor_kind"], r["channel"], r["query"]) for r in logged()] == [("anonymous", "mcp_search", "refund")]


def test_a_log_that_cannot_be_written_never_fails_an_answer(workspace, logged, monkeypatch):
    import sqlite3

    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(search_log, "record", broken)
    body = {"knowledge_id": "kb", "query": "refund", "retrieval_setting": {"top_k": 3, "score_threshold": 0}}
    assert workspace.client.post("/retrieval", json=body, headers=workspace.headers("agnes")).status_code == 200
    assert workspace.client.post("/api/v1/assist", json={"subject": "", "body": "refund"}).status_code == 200

    def failing(*args):
        raise RuntimeError("no log today")

    server = build_server(Searcher(workspace.settings), workspace.app.extensions["kb"]["history"], log_search=failing)

    async def body_():
        async with Client(server) as client:
            answer = await client.call_tool("search_sops", {"query": "refund"})
            assert answer.is_error is False and answer.structured_content["results"]
            assisted = await client.call_tool("assist_ticket", {"subject": "", "body": "refund"})
            assert assisted.is_error is False

    anyio.run(body_)
    recorder(workspace.app, "bot")("refund", 1, None, "hybrid", "mcp_search")  # outside a request: swallowed
    assert logged() == []
