"""The MCP server (kb/mcp_server.py), driven by the SDK's own client over stdio (`kb mcp`), over streamable
HTTP at /mcp of a real server (werkzeug in a thread, and `kb serve` with gunicorn), and in process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import httpx2
import jsonschema
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from kb import accounts, store
from kb.history import History
from kb.mcp_server import build_server
from kb.web.mcp import TOOL_SCOPES
from tests.conftest import serve_in_thread

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {"search_sops", "get_sop", "list_categories", "assist_ticket"}
PAN = "4111 1111 1111 1111"
MASKED = "[card ending 1111]"


def run(step):
    """Run an async test body to its end."""
    return anyio.run(step)


def key_for(data: Path, name: str, *scopes: str) -> str:
    """A new API key for a user, with these scopes."""
    db = store.connect(data)
    try:
        return accounts.create_key(db, name, "mcp tests", scopes)[0]
    finally:
        db.close()


def http_client(url: str, key: str | None, mode: str = "legacy") -> Client:
    """The SDK's client over streamable HTTP, sending the key as a Bearer token."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers)), mode=mode)


async def check_tools(client: Client, sop_id: str) -> dict:
    """List the tools and call each one as a client would; every answer matches its output schema."""
    listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert TOOLS <= set(listed)
    for tool in listed.values():
        assert tool.title and tool.description and tool.input_schema["type"] == "object"
        assert tool.output_schema and tool.output_schema["type"] == "object"
        hints = tool.annotations
        assert hints.read_only_hint is True and hints.idempotent_hint is True and hints.open_world_hint is False
    answers = {
        "search_sops": await client.call_tool("search_sops", {"query": f"charged twice {PAN}", "k": 2}),
        "get_sop": await client.call_tool("get_sop", {"sop_id": sop_id}),
        "list_categories": await client.call_tool("list_categories", {}),
        "assist_ticket": await client.call_tool(
            "assist_ticket", {"subject": "Charged twice", "body": f"My card {PAN} was charged twice for one order."}
        ),
    }
    for name, answer in answers.items():
        assert answer.is_error is False, answer.content
        jsonschema.validate(answer.structured_content, listed[name].output_schema)
    found = answers["search_sops"].structured_content
    assert found["query"] == f"charged twice {MASKED}" and 1 <= len(found["results"]) <= 2
    first = found["results"][0]
    assert first["sop_id"] == "pay-duplicate-charge" and first["url"] == f"/sops/{sop_id}#{first['anchor']}"
    assert first["revision"] and "<mark>" not in first["snippet"]
    document = answers["get_sop"].structured_content
    assert document["id"] == sop_id and document["revision"] == first["revision"]
    assert document["markdown"].startswith("---\nid: pay-duplicate-charge") and document["sections"]
    assert answers["list_categories"].structured_content["categories"][0]["children"]
    ticket = answers["assist_ticket"].structured_content
    assert ticket["redactions"] == 1 and ticket["results"][0]["sop_id"] == "pay-duplicate-charge"
    assert ticket["results"][0]["citation"]["revision"] == first["revision"] and ticket["results"][0]["text"]
    return answers


# -- stdio: `kb mcp` ---------------------------------------------------------------------------------------


def stdio_params(settings: dict) -> StdioServerParameters:
    env = {"PYTHONPATH": str(ROOT), "KB_CONTENT_DIR": str(settings["CONTENT_DIR"])}
    env |= {"KB_DATA_DIR": str(settings["DATA_DIR"]), "KB_WATCH_INTERVAL": "0"}
    return StdioServerParameters(command=sys.executable, args=["-m", "kb.cli", "mcp"], env=env, cwd=str(ROOT))


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_kb_mcp_serves_every_tool_over_stdio(library, mode):
    async def body():
        async with Client(stdio_params(library), mode=mode) as client:
            await check_tools(client, "pay-duplicate-charge")
            bad = await client.call_tool("search_sops", {"query": "refund", "k": 0})
            assert bad.is_error and bad.content[0].text == "k: Input should be greater than or equal to 1"

    run(body)


def test_kb_mcp_writes_nothing_but_protocol_on_stdout(library):
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "search_sops", "arguments": {
            "query": f"refund {PAN}"}}},
    ]  # fmt: skip
    params = stdio_params(library)
    process = subprocess.Popen(
        [params.command, *params.args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **params.env},
        cwd=params.cwd,
        text=True,
    )
    try:
        process.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
        process.stdin.flush()
        lines = [process.stdout.readline(), process.stdout.readline()]  # the two answers; then stdin closes
        rest, errors = process.communicate(timeout=60)
    finally:
        process.kill()
    answers = [json.loads(line) for line in [*lines, *rest.splitlines()]]  # every line is a JSON-RPC message
    assert [a["id"] for a in answers] == [1, 2] and all(a["jsonrpc"] == "2.0" for a in answers)
    assert answers[1]["result"]["structuredContent"]["query"] == f"refund {MASKED}"
    assert "mcp search" in errors and PAN not in errors + "".join(lines)  # the log went to stderr, masked


# -- in process: arguments and errors ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(library):
    from kb.search import Searcher

    return build_server(Searcher(library), History(library["CONTENT_DIR"]))


@pytest.mark.parametrize(
    "tool, arguments, message",
    [
        ("search_sops", {"query": "refund", "k": 500}, "k: Input should be less than or equal to 50"),
        ("search_sops", {"query": "refund", "k": "many"}, "k: Input should be a valid integer"),
        ("search_sops", {"query": "   "}, "query: must be a non-empty string"),
        ("search_sops", {"query": "x" * 2001}, "query: String should have at most 2000 characters"),
        ("search_sops", {}, "query: Field required"),
        ("search_sops", {"query": "refund", "mode": "fuzzy"}, "mode: Input should be 'hybrid', 'keyword' or"),
        ("search_sops", {"query": "refund", "category": "No Such"}, "category: 'No Such' is not a valid value"),
        ("search_sops", {"query": "refund", "categry": "payments"}, "categry: unknown argument (search_sops takes"),
        ("search_sops", {"query": "a\x00b"}, "query: contains a NUL character (U+0000) at position 1"),
        ("get_sop", {"sop_id": "no-such-sop"}, "sop_id: no SOP with id 'no-such-sop'"),
        ("get_sop", {"sop_id": PAN}, f"sop_id: no SOP with id '{MASKED}'"),
        ("get_sop", {"sop_id": "pay-duplicate-charge", "revision": "HEAD~1~2~3"}, "revision: String should match"),
        ("get_sop", {"sop_id": "pay-duplicate-charge", "revision": "0" * 40}, "revision: all/pay-duplicate-charge"),
        ("list_categories", {"depth": 2}, "depth: unknown argument (list_categories takes no arguments)"),
        ("assist_ticket", {"subject": "", "body": " "}, "body: the ticket has no text: give a subject, a body or both"),
        ("assist_ticket", {"subject": "Refund"}, "body: Field required"),
        ("assist_ticket", {"subject": "x", "body": "y", "k": 0}, "k: Input should be greater than or equal to 1"),
        ("assist_ticket", {"subject": "x", "body": "y", "category": "no/such"}, "category: no category 'no/such'"),
        ("assist_ticket", {"subject": "x", "body": "y", "business_line": "games"}, "business_line: Input should be"),
    ],
)
def test_a_bad_argument_is_a_tool_error_naming_the_field(server, tool, arguments, message):
    async def body():
        async with Client(server) as client:
            answer = await client.call_tool(tool, arguments)
        assert answer.is_error is True and answer.structured_content is None
        assert answer.content[0].text.startswith(message), answer.content[0].text
        assert "Traceback" not in answer.content[0].text and "1111 1111" not in answer.content[0].text

    run(body)


def test_a_schema_error_never_echoes_the_value(server):
    async def body():
        async with Client(server) as client:
            answer = await client.call_tool("search_sops", {"query": f"{PAN} " * 200})
        assert answer.content[0].text == "query: String should have at most 2000 characters"

    run(body)


def test_get_sop_reads_a_given_revision_by_its_short_id(server, library):
    path = library["CONTENT_DIR"] / "all" / "pay-duplicate-charge.md"
    revision = History(library["CONTENT_DIR"]).revisions(path.relative_to(library["CONTENT_DIR"]).as_posix())[-1]

    async def body():
        async with Client(server) as client:
            return await client.call_tool(
                "get_sop", {"sop_id": "pay-duplicate-charge", "revision": revision.commit[:8]}
            )

    answer = run(body)
    assert answer.is_error is False
    document = answer.structured_content
    assert document["revision"] == revision.commit and document["url"].endswith(f"/revisions/{revision.commit}")


# -- streamable HTTP at /mcp ------------------------------------------------------------------------------


@pytest.fixture
def live(authoring):
    """The authoring instance served on loopback: (the /mcp URL, the Authoring)."""
    url, http = serve_in_thread(authoring.app)
    yield f"{url}/mcp", authoring
    http.shutdown()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_every_tool_answers_over_streamable_http(live, mode):
    url, authoring = live

    async def body():
        async with http_client(url, authoring.keys["agnes"], mode) as client:
            await check_tools(client, "pay-duplicate-charge")

    run(body)
    last_used = [k["last_used"] for k in accounts_keys(authoring, "agnes")]
    assert all(last_used), "the key's last use is recorded"


def accounts_keys(authoring, name: str) -> list[dict]:
    db = store.connect(authoring.data)
    try:
        return accounts.list_keys(db, name)
    finally:
        db.close()


def test_each_tool_needs_its_scope(live):
    url, authoring = live
    search_only, read_only = key_for(authoring.data, "agnes", "search"), key_for(authoring.data, "agnes", "read")

    async def body():
        async with http_client(url, search_only) as client:
            refused = await client.call_tool("get_sop", {"sop_id": "pay-duplicate-charge"})
            assert (
                refused.is_error and refused.content[0].text == "this API key lacks the read scope (get_sop needs it)"
            )
            assert not (await client.call_tool("search_sops", {"query": "refund"})).is_error
        async with http_client(url, read_only) as client:
            refused = await client.call_tool("search_sops", {"query": "refund"})
            assert refused.content[0].text == "this API key lacks the search scope (search_sops needs it)"
            refused = await client.call_tool("assist_ticket", {"subject": "Refund", "body": "Where is my refund?"})
            assert refused.content[0].text == "this API key lacks the search scope (assist_ticket needs it)"
            assert not (await client.call_tool("list_categories", {})).is_error

    run(body)


def test_every_tool_names_the_scope_a_key_needs(server):
    async def body():
        async with Client(server) as client:
            return {tool.name for tool in (await client.list_tools()).tools}

    assert run(body) == set(TOOL_SCOPES)


def test_the_sdk_client_is_refused_without_a_key(live):
    url, _ = live

    async def body():
        async with http_client(url, None) as client:
            await client.list_tools()

    with pytest.raises(ExceptionGroup) as caught:
        run(body)
    refused = caught.value.subgroup(MCPError).exceptions  # nested task groups: find the client's error
    while isinstance(refused[0], ExceptionGroup):
        refused = refused[0].exceptions
    assert refused[0].message == "Server returned an error response"


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


def post(authoring, headers: dict, body: object = INITIALIZE, **kwargs):
    return authoring.client.post("/mcp", json=body, headers={**ACCEPT, **headers}, **kwargs)


def test_mcp_needs_a_key_with_the_search_or_read_scope(authoring):
    no_key = post(authoring, {})
    assert no_key.status_code == 401 and no_key.get_json()["error"]["details"] == {"field": "Authorization"}
    assert post(authoring, {"Authorization": "Bearer kb_not-a-key"}).status_code == 401
    writer = key_for(authoring.data, "ann", "write")
    forbidden = post(authoring, {"Authorization": f"Bearer {writer}"})
    assert (
        forbidden.status_code == 403 and "lacks the search and read scopes" in forbidden.get_json()["error"]["message"]
    )
    assert authoring.audit(action="permission_denied")[0]["actor"] == "ann"
    assert post(authoring, authoring.headers("agnes")).status_code == 200


def test_a_revoked_key_is_refused_at_once(authoring):
    key = key_for(authoring.data, "agnes", "search", "read")
    assert post(authoring, {"Authorization": f"Bearer {key}"}).status_code == 200
    db = store.connect(authoring.data)
    try:
        key_id = next(k["id"] for k in accounts.list_keys(db, "agnes") if k["label"] == "mcp tests")
        accounts.revoke_key(db, key_id)
    finally:
        db.close()
    assert post(authoring, {"Authorization": f"Bearer {key}"}).status_code == 401


def test_a_session_cookie_is_not_a_key(authoring):
    client = authoring.client
    with client.session_transaction() as session:
        session.update(user="agnes", seen=2**40, generation=0)
    assert post(authoring, {}).status_code == 401


def test_mcp_is_rate_limited_as_searches(authoring):
    from kb.web import create_app

    client = create_app({**authoring.settings, "TESTING": True, "RATE_LIMIT_SEARCH": "2/minute"}).test_client()
    answers = [client.post("/mcp", json=INITIALIZE, headers={**ACCEPT, **authoring.headers("agnes")}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].get_json()["error"]["code"] == "rate_limited" and answers[2].headers["Retry-After"]


def test_an_oversize_body_is_refused_unread(authoring):
    body = {**INITIALIZE, "padding": "x" * authoring.settings["MAX_REQUEST_BYTES"]}
    answer = post(authoring, authoring.headers("agnes"), body)
    assert answer.status_code == 413 and answer.get_json()["error"]["code"] == "too_large"


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"Host": "attacker.example"}, 421),
        ({"Host": "127.0.0.1:5000", "Origin": "http://attacker.example"}, 403),
        ({"Host": "127.0.0.1:5000", "Origin": "http://127.0.0.1:5000"}, 200),
        ({"Host": "localhost"}, 200),
    ],
)
def test_hosts_and_origins_outside_the_allowed_list_are_refused(authoring, headers, status):
    assert post(authoring, {**authoring.headers("agnes"), **headers}).status_code == status


def test_a_scope_header_sent_by_the_client_is_ignored(authoring):
    key = key_for(authoring.data, "agnes", "search")
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_sop", "arguments": {
        "sop_id": "pay-duplicate-charge"}}}  # fmt: skip
    headers = {"Authorization": f"Bearer {key}", "X-Kb-Key-Scopes": "read search", "MCP-Protocol-Version": "2025-11-25"}
    answer = post(authoring, headers, call).get_json()["result"]
    assert answer["isError"] is True and "lacks the read scope" in answer["content"][0]["text"]


def test_mcp_over_gunicorn(authoring, tmp_path):
    """`kb serve` (gunicorn, a forked worker) runs the transport's event loop in the worker."""
    from kb.loadtest import Server

    env = {**os.environ, "PYTHONPATH": str(ROOT), "KB_CONTENT_DIR": str(authoring.settings["CONTENT_DIR"])}
    env.update(KB_DATA_DIR=str(authoring.data), KB_WATCH_INTERVAL="0", KB_LOG_LEVEL="WARNING")
    with Server(env, 1, tmp_path / "serve.log") as served:
        served.start()

        async def body():
            async with http_client(f"http://127.0.0.1:{served.port}/mcp", authoring.keys["agnes"], "auto") as client:
                await check_tools(client, "pay-duplicate-charge")

        run(body)
