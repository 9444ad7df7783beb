"""`kb mcp`: kb's MCP tools (kb/mcp_server.py) served over stdio to a local LLM client such as Claude Desktop.

The client starts this command and speaks JSON-RPC on its stdin and stdout. Nothing but the protocol goes to
stdout: the SDK's stdio transport points file descriptor 1 at stderr while it serves, and kb logs to stderr.
No API key is asked for: whoever can run the command can read the instance folder anyway. search_sops and
assist_ticket go into the instance's search log as an anonymous asker's (channels mcp_search, mcp_assist).
"""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager

import click


@click.command("mcp")
@click.pass_context
def mcp_command(ctx: click.Context) -> None:
    """Serve kb's tools to an MCP client over stdio (search_sops, get_sop, list_categories, assist_ticket).

    Point the client at this command with KB_CONTENT_DIR and KB_DATA_DIR set as for `kb serve`; run
    `kb index` first. Logs go to stderr; stdout carries only the protocol.
    """
    from kb import search_log
    from kb.assist import Assistant
    from kb.history import History
    from kb.mcp_server import build_server
    from kb.search import Searcher

    settings = ctx.obj["settings"]
    searcher = Searcher(settings)

    @asynccontextmanager
    async def warm_up(_server):
        # Once serving (stdout already claimed), load the index and the query encoder beside the handshake.
        threading.Thread(target=searcher.warm_up, name="kb-warm-up", daemon=True).start()
        yield {}

    def log_search(query: str, results: int, top: str | None, mode: str, channel: str) -> None:
        # No key over stdio: the searches are an anonymous asker's. The server (kb serve) prunes the log.
        search_log.record_quietly(settings["DATA_DIR"], query, "anonymous", results, top, mode, channel)

    server = build_server(
        searcher, History(settings["CONTENT_DIR"]), Assistant(searcher), lifespan=warm_up, log_search=log_search
    )
    server.run("stdio")
