"""The machine API's paths: where kb takes API keys (never the session cookie) and answers errors in JSON.

Everything under /api/, the MCP server at /mcp, and Dify's External Knowledge API at /retrieval (kb/web/api_retrieval.py): Dify
appends /retrieval to the endpoint a user registers, so that route cannot live under /api/v1. On these paths
kb/web/auth.py reads ``Authorization: Bearer <key>``, kb/web/api.py checks the key's scope
(ROUTE_SCOPES), kb/web/limits.py counts per key and failed keys, and kb/web/errors.py answers JSON.
"""

from __future__ import annotations

API_PREFIX = "/api/"
MCP_PATH = "/mcp"  # the MCP server (kb/web/mcp.py): it checks each tool's scope itself
KEY_PATHS = frozenset({"/retrieval", MCP_PATH})  # machine routes outside /api/


def takes_key(path: str) -> bool:
    """Whether a request path belongs to the machine API (API keys, key scopes, JSON errors)."""
    return path.startswith(API_PREFIX) or path in KEY_PATHS
