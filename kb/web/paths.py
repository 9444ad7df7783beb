"""The machine API's paths: where kb takes API keys (never the session cookie) and answers errors in JSON.

Everything under /api/, the MCP server at /mcp, and Dify's External Knowledge API at /retrieval (kb/web/api_retrieval.py): Dify
appends /retrieval to the endpoint a user registers, so that route cannot live under /api/v1. On these paths
kb/web/auth.py reads ``Authorization: Bearer <key>``, kb/web/api.py checks the key's scope
(ROUTE_SCOPES), kb/web/limits.py counts per key and failed keys, and kb/web/errors.py answers JSON.

One exception: the search page's own searches (kb/web/static/search.js), GET /api/v1/search with the header
``X-KB-Page: search`` and no key (:func:`is_page_search`), read the session cookie, so that the person searching is
logged as one and their typing stays one search log row (kb/web/searches.py). Another site cannot make a browser
send that header without a CORS preflight, which kb answers for KB_CORS_ORIGINS only and never with credentials;
and the request is a GET that changes nothing but the log.
"""

from __future__ import annotations

API_PREFIX = "/api/"
MCP_PATH = "/mcp"  # the MCP server (kb/web/mcp.py): it checks each tool's scope itself
KEY_PATHS = frozenset({"/retrieval", MCP_PATH})  # machine routes outside /api/
PAGE_HEADER = "X-KB-Page"  # with the value PAGE_SEARCH: sent by the search page's script on its searches
PAGE_SEARCH = "search"
PAGE_SEARCH_PATH = "/api/v1/search"


def takes_key(path: str) -> bool:
    """Whether a request path belongs to the machine API (API keys, key scopes, JSON errors)."""
    return path.startswith(API_PREFIX) or path in KEY_PATHS


def is_page_search(request) -> bool:
    """Whether a request is the search page's own search (see above): GET or HEAD /api/v1/search, ``X-KB-Page:
    search``, no Authorization header. Only it, of every machine API request, reads the session cookie."""
    return (
        request.method in ("GET", "HEAD")
        and request.path == PAGE_SEARCH_PATH
        and request.headers.get(PAGE_HEADER) == PAGE_SEARCH
        and not request.headers.get("Authorization")
    )
