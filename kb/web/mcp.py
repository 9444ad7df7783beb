"""POST /mcp: kb's MCP tools (kb/mcp_server.py) over the SDK's streamable HTTP transport, inside the Flask app.

The SDK's transport is an ASGI application; kb is WSGI (gunicorn's sync workers, the Flask test client). It
runs here in its stateless JSON mode (``stateless_http=True, json_response=True``): every JSON-RPC message is
one POST answered by one JSON response, with no session to keep and no stream left open, so it fits a WSGI
request exactly. The /mcp view is an ordinary Flask view, so the app's hooks have run before the MCP server
sees anything:

    kb/web/limits.py      each POST counts as a search (RATE_LIMIT_SEARCH, per address and per key)
    kb/web/validation.py  MAX_REQUEST_BYTES, JSON depth and characters
    kb/web/auth.py        the API key (Authorization: Bearer, never the session cookie; last use recorded)
    before_request here   no key 401, a key with neither the search nor the read scope 403 (audited)

and only then hands the request (its body already read) to the transport through a2wsgi, whose event loop
thread also holds the session manager's run() task group, started on the first request of each process.
Per tool, a key needs TOOL_SCOPES[tool] (search_sops, assist_ticket: search; get_sop, list_categories:
read); without it
the call is a tool error naming the scope. The SDK's DNS-rebinding protection checks the Host header against
KB_MCP_ALLOWED_HOSTS and the Origin header (browsers only) against those hosts' http(s) origins. search_sops and
assist_ticket go into the search log as a bot's (kb/web/searches.py recorder), channels mcp_search and mcp_assist.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading

from a2wsgi import ASGIMiddleware
from flask import Blueprint, Flask, Response, current_app, g, request
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent

from kb.errors import AuthRequiredError, ForbiddenError, StorageError
from kb.mcp_server import KbMCP, build_server
from kb.redaction import redact
from kb.web import auth
from kb.web.extensions import assistant, history, searcher
from kb.web.searches import recorder

log = logging.getLogger(__name__)
bp = Blueprint("mcp", __name__)
PATH = "/mcp"
# The scope an API key needs for each tool; a tool missing here refuses every key.
TOOL_SCOPES = {"search_sops": "search", "assist_ticket": "search", "get_sop": "read", "list_categories": "read"}
ENDPOINT_SCOPES = frozenset(TOOL_SCOPES.values())  # a key needs at least one of these to reach /mcp at all
SCOPES_HEADER = "X-Kb-Key-Scopes"  # set by the view from the key (a client's own is dropped), read per tool call
_SCOPES_ENVIRON = "HTTP_" + SCOPES_HEADER.upper().replace("-", "_")
START_TIMEOUT = 30.0  # seconds for the session manager to start in a new process


class Bridge:
    """The MCP server's streamable HTTP transport, run on an asyncio loop thread of this process (a2wsgi)."""

    def __init__(self, server: KbMCP, settings: dict):
        server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            json_response=True,
            max_request_body_size=settings["MAX_REQUEST_BYTES"],
            transport_security=transport_security(settings["MCP_ALLOWED_HOSTS"]),
        )
        self.manager = server.session_manager
        self._wsgi: ASGIMiddleware | None = None
        self._lock = threading.Lock()

    def wsgi(self) -> ASGIMiddleware:
        """The transport as a WSGI application, its session manager running (started on first use).

        Raises:
            StorageError: the session manager did not start.
        """
        with self._lock:
            if self._wsgi is None:
                wsgi = ASGIMiddleware(self._asgi)  # its own event loop, on a daemon thread
                started = threading.Event()
                running = asyncio.run_coroutine_threadsafe(self._run(started), wsgi.loop)
                if not started.wait(START_TIMEOUT):
                    reason = running.exception(0) if running.done() else "timed out"
                    raise StorageError(f"the MCP transport did not start ({reason})")
                self._wsgi = wsgi
            return self._wsgi

    async def _run(self, started: threading.Event) -> None:
        """Hold the session manager's task group open for the life of the process."""
        async with self.manager.run():
            started.set()
            await asyncio.Event().wait()

    async def _asgi(self, scope, receive, send) -> None:
        try:
            await self.manager.handle_request(scope, receive, send)
        except Exception:
            log.exception("the MCP transport failed on %s %s", scope.get("method"), scope.get("path"))
            raise


def transport_security(hosts: tuple[str, ...]) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding protection for these Host patterns (``host:*`` for any port); none: off."""
    if not hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    allowed = list(dict.fromkeys([*hosts, *(h.removesuffix(":*") for h in hosts if h.endswith(":*"))]))
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=allowed,
        allowed_origins=[f"{scheme}://{host}" for host in allowed for scheme in ("http", "https")],
    )


async def require_tool_scope(ctx, call_next):
    """Server middleware: a tools/call over HTTP needs the tool's scope in the key's (a tool error if not)."""
    http = ctx.request
    if ctx.method != "tools/call" or http is None:
        return await call_next(ctx)
    name = str((ctx.params or {}).get("name"))
    needed = TOOL_SCOPES.get(name)
    if needed is not None and needed in http.headers.get(SCOPES_HEADER, "").split():
        return await call_next(ctx)
    # Every tool kb serves names its scope in TOOL_SCOPES (a test checks): any other name is refused here.
    message = f"this API key lacks the {needed} scope ({name} needs it)" if needed else f"Unknown tool: {name}"
    log.warning("mcp tool call refused: %s", redact(message))
    return CallToolResult(content=[TextContent(type="text", text=redact(message))], is_error=True)


@bp.before_request
def require_key() -> None:
    """/mcp takes API keys only: none is 401, one with neither the search nor the read scope 403."""
    if not g.get("via_key") or auth.current_user() is None:
        raise AuthRequiredError(
            "Authorization: send 'Bearer <API key>' with the search or read scope", {"field": "Authorization"}
        )
    if not g.key_scopes & ENDPOINT_SCOPES:
        raise ForbiddenError(
            "this API key lacks the search and read scopes; /mcp needs one of them", {"field": "scope"}
        )


@bp.post(PATH)
def endpoint():
    """One JSON-RPC message to kb's MCP server (streamable HTTP, stateless, JSON answers)."""
    body = request.get_data(cache=True)  # read once (and bounded) by the request checks; read again here
    environ = dict(request.environ)
    environ.pop("HTTP_TRANSFER_ENCODING", None)  # the body handed on is whole, its length known
    environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
    environ[_SCOPES_ENVIRON] = " ".join(sorted(g.key_scopes))  # replaces any the client sent
    return Response.from_app(current_app.extensions["kb"]["mcp_bridge"].wsgi(), environ, buffered=True)


def init_app(app: Flask) -> None:
    """Build this app's MCP server over its Searcher and History, and serve it at /mcp (no CSRF: keys only)."""
    with app.app_context():
        server = build_server(searcher(), history(), assistant(), log_search=recorder(app, "bot"))  # keys only
    server.middleware.append(require_tool_scope)
    app.extensions["kb"]["mcp"] = server
    app.extensions["kb"]["mcp_bridge"] = Bridge(server, app.config["KB"])
    auth.csrf.exempt(bp)
    app.register_blueprint(bp)
