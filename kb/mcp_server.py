"""kb's tools for LLM clients over the Model Context Protocol, built with the official `mcp` SDK (MCPServer).

Read-only tools, each with an input schema (its typed parameters) and an output schema (the models in
kb/mcp_models.py), so clients receive structured content:

    search_sops      query, k?, mode?, business_line?, category?, type?  -> ranked SOPs, each cited
    get_sop          sop_id, revision?                                   -> metadata, sections, Markdown, revision
    list_categories                                                      -> the ticket taxonomy with its SOPs
    assist_ticket    subject, body, business_line?, category?, k?        -> POST /api/v1/assist's answer (kb.assist)

A bad argument (the input schema, or kb's own checks), an unknown SOP or a missing index is a tool error
(isError, text "field: problem"); card numbers are masked in every message, and an argument's value is never
echoed by a schema error. Anything else is the SDK's generic "Error executing tool ...", its traceback in the
server's log only. The transports are edges of their own: kb/cli_mcp.py (stdio, `kb mcp`) and kb/web/mcp.py
(streamable HTTP at /mcp, behind API keys).
"""

# No `from __future__ import annotations` here: the SDK reads the tools' annotations at run time to build
# their schemas, and those annotations name settings (MAX_K, MAX_QUERY_CHARS) held in build_server's scope.

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

from kb import __version__
from kb.assist import DEFAULT_RESULTS, Assistant
from kb.documents import BUSINESS_LINES, TYPES
from kb.errors import KbError, NotFoundError
from kb.history import History
from kb.mcp_models import SearchAnswer, Sop, Taxonomy
from kb.redaction import redact, redact_data
from kb.results import MODES
from kb.search import Searcher
from kb.web.api_assist import AssistAnswer
from kb.web.validation import check_text

log = logging.getLogger(__name__)

NAME = "kb"
INSTRUCTIONS = (
    "kb holds the standard operating procedures (SOPs) and policies of payment customer support. "
    "Find the SOP for a customer's problem with search_sops, read it whole with get_sop, and cite the "
    "sop_id, section anchor and revision you relied on. For a whole ticket, assist_ticket gives its likely "
    "categories, the sections to cite and a customer macro, and says when kb cannot answer: then do not guess. "
    "list_categories shows the ticket taxonomy. "
    "Never send card numbers: kb masks them."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
MAX_ID_CHARS = 200  # an SOP id is at most this long (ids are [a-z0-9-]); a longer one is refused unread
# kb's own field names (in a KbError's details) as the tools call them.
FIELD_NAMES = {"id": "sop_id", **{f"filters.{name}": name for name in ("business_line", "category", "type")}}


class KbMCP(MCPServer):
    """MCPServer whose tool errors are kb's: "field: problem", card numbers masked, unknown arguments refused."""

    arguments: dict[str, frozenset[str]]  # the arguments each tool takes

    async def call_tool(self, name: str, arguments: dict[str, Any], context=None):
        """Call a tool; its anticipated failures become a ToolError with kb's message."""
        try:
            check_text(arguments, "")  # NUL, control characters and lone surrogates, as at the web edge
            unknown = sorted(set(arguments) - self.arguments.get(name, set(arguments)))
            if unknown:
                takes = ", ".join(sorted(self.arguments[name])) or "no arguments"
                raise ToolError(redact(f"{unknown[0]}: unknown argument ({name} takes {takes})"))
            return await super().call_tool(name, arguments, context)
        except KbError as error:
            raise ToolError(kb_message(error)) from error
        except ToolError as error:
            cause = error.__cause__
            if isinstance(cause, KbError):
                raise ToolError(kb_message(cause)) from cause
            if isinstance(cause, ValidationError) and not isinstance(error, UnexpectedToolError):
                raise ToolError(schema_message(cause)) from cause
            if isinstance(error, UnexpectedToolError):
                raise
            raise ToolError(redact(str(error))) from cause


def kb_message(error: KbError) -> str:
    """A KbError as a tool error's text: "field: problem" with the tools' field names, card numbers masked."""
    details = error.details if isinstance(error.details, dict) else {}
    field = details.get("field")
    text = error.message
    if isinstance(field, str) and field:
        text = text.removeprefix(f"{field}: ")
        field = FIELD_NAMES.get(field, field)
        text = f"{field}: {text}"
    return redact(text)


def schema_message(error: ValidationError) -> str:
    """Every problem pydantic found in a tool's arguments, as "field: problem"; the values themselves left out."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "arguments"
        problems.append(f"{field}: {item['msg']}")
    return redact("; ".join(problems))


async def redact_protocol_errors(ctx, call_next):
    """Server middleware: a protocol error (an unknown method, bad parameters) never echoes a card number."""
    try:
        return await call_next(ctx)
    except MCPError as error:
        raise MCPError(error.code, redact(error.message), redact_data(error.data)) from None


SearchLogger = Callable[[str, int, str | None, str, str], None]  # (query, results, top SOP id, mode, channel)


def _logged(log_search: SearchLogger | None, query: str, results: int, top: str | None, mode: str, channel: str):
    """Hand one answer to the search log; a logger that fails is logged, never fails the tool."""
    if log_search is None:
        return
    try:
        log_search(query, results, top, mode, channel)
    except Exception:  # noqa: BLE001 - the answer matters more than its log row
        log.warning("search log: could not record an MCP search", exc_info=True)


def build_server(
    searcher: Searcher,
    history: History,
    assistant: Assistant | None = None,
    lifespan: Callable[[MCPServer], AbstractAsyncContextManager[Any]] | None = None,
    log_search: SearchLogger | None = None,
) -> KbMCP:
    """The MCP server with kb's tools over one Searcher (the served index), the content's History and an
    Assistant (one over the Searcher when none is given); search_sops and assist_ticket hand each answer to
    log_search (the search log: kb/web/searches.py recorder over HTTP, kb.search_log over stdio)."""
    settings = searcher.settings
    assistant = assistant or Assistant(searcher)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    server = KbMCP(NAME, title="kb", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan)
    root.handlers[:], root.level = handlers, level  # MCPServer() calls logging.basicConfig; kb sets up its own
    server.middleware.append(redact_protocol_errors)

    @server.tool(title="Search SOPs", annotations=READ_ONLY, structured_output=True)
    def search_sops(
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=settings["MAX_QUERY_CHARS"],
                description="What to look for: a customer's words, a ticket's text or keywords. "
                "Card numbers are masked before anything else.",
            ),
        ],
        k: Annotated[
            int | None,
            Field(ge=1, le=settings["MAX_K"], description=f"How many SOPs (default {settings['DEFAULT_K']})."),
        ] = None,
        mode: Annotated[
            Literal[MODES],
            Field(description="hybrid (keywords and meaning, best), keyword (exact words) or semantic (meaning)."),
        ] = "hybrid",
        business_line: Annotated[
            Literal[BUSINESS_LINES] | None, Field(description="Only SOPs of this business line (or 'all').")
        ] = None,
        category: Annotated[
            str | None,
            Field(
                max_length=MAX_ID_CHARS,
                description="Only SOPs serving this category or group, an id from list_categories "
                "(e.g. payments/duplicate-charge or payments).",
            ),
        ] = None,
        type: Annotated[Literal[TYPES] | None, Field(description="Only SOPs (sop) or only policies (policy).")] = None,
    ) -> SearchAnswer:
        """Search kb's SOPs and policies for a customer's problem: the best SOPs, best first, each cited by
        its best section (sop_id, anchor, revision, url) with a snippet of that section. Read a whole SOP
        with get_sop."""
        filters = {"business_line": business_line, "category": category, "type": type}
        results = searcher.search(query, k, mode, {key: v for key, v in filters.items() if v} or None)
        log.info("mcp search mode=%s results=%d query=%r", results.mode, len(results.hits), results.query)
        top = results.hits[0].sop_id if results.hits else None
        _logged(log_search, results.query, len(results.hits), top, results.mode, "mcp_search")
        return SearchAnswer.from_results(results)

    @server.tool(title="Read an SOP", annotations=READ_ONLY, structured_output=True)
    def get_sop(
        sop_id: Annotated[
            str,
            Field(
                min_length=1,
                max_length=MAX_ID_CHARS,
                description="The SOP's id, as search_sops gives it (e.g. pay-duplicate-charge).",
            ),
        ],
        revision: Annotated[
            str | None,
            Field(
                min_length=7,
                max_length=40,
                pattern=r"^[0-9a-f]+$",
                description="A git commit id (7 to 40 hex digits), as a search result's revision gives it, to "
                "read that published revision; omitted: the one in force now.",
            ),
        ] = None,
    ) -> Sop:
        """Read one SOP or policy whole: its metadata (owner, effective and review dates, categories), its
        sections with their anchors, its Markdown and the revision (git commit) it is."""
        if revision is None:
            return Sop.from_document(searcher.document(sop_id))
        record = searcher.generation.documents.get(sop_id)
        if record is None:
            raise NotFoundError(f"no SOP with id {sop_id!r}", {"field": "id"})
        return Sop.from_document(history.document(sop_id, record["path"], revision), revision=True)

    @server.tool(title="List the ticket categories", annotations=READ_ONLY, structured_output=True)
    def list_categories() -> Taxonomy:
        """The ticket taxonomy: groups of issue categories, each category with the SOPs that serve it, and
        the categories no SOP serves yet. A category id narrows search_sops."""
        return Taxonomy.from_taxonomy(searcher.taxonomy())

    @server.tool(title="Answer a support ticket", annotations=READ_ONLY, structured_output=True)
    def assist_ticket(
        subject: Annotated[
            str, Field(max_length=settings["MAX_REQUEST_BYTES"], description="The ticket's subject; '' if none.")
        ],
        body: Annotated[
            str,
            Field(
                max_length=settings["MAX_REQUEST_BYTES"],
                description="The ticket's text (either it or the subject may be empty, not both). Card numbers "
                "are masked before anything reads it.",
            ),
        ],
        business_line: Annotated[
            Literal[BUSINESS_LINES] | None, Field(description="Only SOPs of this business line (and of 'all').")
        ] = None,
        category: Annotated[
            str | None,
            Field(
                max_length=MAX_ID_CHARS,
                description="Only SOPs serving this category or group, an id from list_categories (a filter).",
            ),
        ] = None,
        k: Annotated[
            int | None, Field(ge=1, le=settings["MAX_K"], description=f"How many SOPs (default {DEFAULT_RESULTS}).")
        ] = None,
    ) -> AssistAnswer:
        """Answer a whole customer ticket as POST /api/v1/assist does: its three likeliest categories with
        calibrated confidences, the SOP sections to cite (each with its plain text and citation: sop_id,
        anchor, revision, url; stale when past its review date), the customer macro to send, and whether kb
        can answer. When answerable is false, reason says why: do not make an answer up then."""
        assessment = assistant.assess(subject, body, business_line, category, k)
        answer = assessment.to_dict()
        log.info("mcp assist results=%d answerable=%s", len(answer["results"]), answer["answerable"])
        top = answer["results"][0]["sop_id"] if answer["results"] else None
        _logged(log_search, assessment.query, len(answer["results"]), top, "hybrid", "mcp_assist")
        return AssistAnswer.model_validate(answer)

    tools = (search_sops, get_sop, list_categories, assist_ticket)
    server.arguments = {tool.__name__: frozenset(tool.__annotations__) - {"return"} for tool in tools}
    return server
