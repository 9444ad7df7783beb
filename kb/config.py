"""Settings as data: each setting with its default and one line of help.

Every setting can be given in the environment as ``KB_<NAME>`` (for example
``KB_CONTENT_DIR``) or in a mapping passed to :func:`load_settings`. An unknown
``KB_*`` name or a value of the wrong kind fails at start-up with a message
that names it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kb import database
from kb.errors import ConfigError
from kb.setting_kinds import Setting, coerce

ENV_PREFIX = "KB_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_root(folder: str) -> Path:
    """The repository's folder if kb runs from a checkout, else one in the working directory."""
    here = PROJECT_ROOT / folder
    return here if (PROJECT_ROOT / "setup.cfg").exists() else Path.cwd() / folder


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "CONTENT_DIR",
        None,
        "Folder of SOP Markdown files (in a git repository). Default: the repository's sops/.",
        "path",
    ),
    Setting(
        "DATA_DIR",
        None,
        "Instance folder for indexes, model cache and state. Default: the repository's instance/.",
        "path",
    ),
    Setting(
        "DATABASE_URL",
        "",
        "Where users, keys, drafts, the audit log, feedback and the search log live: empty for the SQLite file "
        "kb.sqlite in DATA_DIR (one machine), sqlite:///path for another file, or "
        "postgresql://user:password@host:port/database shared by several replicas (the password is never shown).",
        "database",
    ),
    Setting(
        "EMBEDDING_MODEL",
        "",
        "Sentence-transformers model: a local path or hub name. Empty: the packaged all-MiniLM-L6-v2.",
    ),
    Setting(
        "QUERY_ENCODER",
        "onnx-int8",
        "How queries are embedded: onnx (exported once, cached), onnx-int8 (the same, weights quantized to "
        "8 bits) or torch.",
        "choice",
        ("onnx", "onnx-int8", "torch"),
    ),
    Setting(
        "KEYWORD_ENGINE",
        "tantivy",
        "The keyword (BM25) engine: tantivy (Rust, compiled) or whoosh (pure Python). An index built by one "
        "is rebuilt by `kb index` when the other is chosen.",
        "choice",
        ("tantivy", "whoosh"),
    ),
    Setting(
        "QUERY_CACHE_SIZE",
        4096,
        "Query vectors each worker keeps, keyed by the normalised query text (least recently used go first).",
        "int",
    ),
    Setting("RRF_K", 10, "Reciprocal rank fusion constant k: larger flattens the weight of top ranks.", "int"),
    Setting("WEIGHT_KEYWORD", 1.0, "Weight of the keyword (BM25) ranking in hybrid fusion.", "float"),
    Setting("WEIGHT_SEMANTIC", 1.0, "Weight of the embedding ranking of sections in hybrid fusion.", "float"),
    Setting(
        "WEIGHT_TAXONOMY",
        1.5,
        "Weight, in hybrid fusion, of ranking SOPs by their categories' example phrasings (0 turns it off).",
        "float",
    ),
    Setting(
        "TAXONOMY_FULL_SIMILARITY",
        0.6,
        "Best phrasing cosine from which the taxonomy ranking gets its full weight; below it the weight shrinks "
        "in proportion (0 turns the scaling off).",
        "float",
    ),
    Setting("CANDIDATES", 100, "Sections each retriever returns before fusion.", "int"),
    Setting(
        "ASSIST_MIN_CONFIDENCE",
        0.9,
        "POST /api/v1/assist: calibrated category confidence from which the classifier alone makes a ticket "
        "answerable (its top category must also be served by a result).",
        "float",
    ),
    Setting(
        "ASSIST_MIN_SIMILARITY",
        0.42,
        "POST /api/v1/assist: cosine between the ticket and its closest SOP section or category phrasing from "
        "which search alone makes a ticket answerable.",
        "float",
    ),
    Setting(
        "MAX_REQUEST_BYTES",
        2_000_000,
        "Largest request body accepted, in bytes (a whole document as JSON fits); larger ones get 413 unread.",
        "int",
    ),
    Setting("MAX_QUERY_CHARS", 2000, "Longest query accepted, in characters.", "int"),
    Setting("DEFAULT_K", 10, "Results returned when a request does not say how many.", "int"),
    Setting("MAX_K", 50, "Most results one request may ask for.", "int"),
    Setting("HOST", "127.0.0.1", "Address `kb serve` listens on."),
    Setting("PORT", 8000, "Port `kb serve` listens on.", "int"),
    Setting("WORKERS", 2, "Worker processes `kb serve` starts.", "int"),
    Setting(
        "PROXY_HOPS",
        0,
        "Reverse proxies (load balancers) in front of kb whose X-Forwarded-For and X-Forwarded-Proto are trusted: "
        "the client address of rate limits and the audit log is the one the last of them saw. 0: clients connect "
        "directly and the headers are ignored (a client could forge them).",
        "hops",
    ),
    Setting("LOG_LEVEL", "INFO", "Logging level.", "choice", ("DEBUG", "INFO", "WARNING", "ERROR")),
    Setting(
        "WATCH_INTERVAL",
        2.0,
        "Seconds between checks of the content repository for commits made outside kb, and fetches from "
        "KB_CONTENT_REMOTE (0 turns watching off).",
        "float",
    ),
    Setting(
        "CONTENT_REMOTE",
        "",
        "The shared git repository replicas publish to and fetch from: an absolute path of a bare repository, "
        "file://, ssh://, https:// or user@host:path. Empty: the content folder is the only copy.",
        "remote",
    ),
    Setting("SESSION_IDLE_MINUTES", 30, "A browser session ends after this many minutes without a request.", "int"),
    Setting(
        "COOKIE_SECURE",
        "on",
        "Send the session cookie only over HTTPS (browsers also allow it on http://127.0.0.1 and localhost).",
        "choice",
        ("on", "off"),
    ),
    # Rate limits (kb/web/limits.py): "N per second|minute|hour|day" or "N/minute", several joined by ";".
    Setting(
        "RATE_LIMIT_SEARCH",
        "120/minute",
        "Searches (API and search page) per client address, and per API key or logged-in user.",
        "rate",
    ),
    Setting(
        "RATE_LIMIT_LOGIN",
        "10/minute",
        "Log-in attempts per client address; also failed API-key authentications per address.",
        "rate",
    ),
    Setting(
        "RATE_LIMIT_READ",
        "600/minute",
        "Other requests (pages, SOPs, history, diffs; not static files or /healthz) per client address.",
        "rate",
    ),
    Setting(
        "RATE_LIMIT_WRITE",
        "120/minute",
        "Writes (POST, PUT, DELETE of the API and of forms) per client address, and per API key or user.",
        "rate",
    ),
    Setting(
        "RATE_LIMIT_FEEDBACK",
        "30/minute",
        "Feedback and flags on SOPs (POST /api/v1/feedback, POST /api/v1/sops/<id>/flags) per client address, and "
        "per API key or user.",
        "rate",
    ),
    Setting(
        "RATE_LIMIT_AUDIT",
        "20/minute",
        "Audit rows per client address for unauthenticated write attempts; the rest are counted, not stored.",
        "rate",
    ),
    Setting(
        "SEARCH_LOG_DAYS",
        90,
        "Days the search log (masked queries, for the owners' dashboard) keeps a search before it is deleted.",
        "int",
    ),
    Setting(
        "RECENT_DAYS",
        14,
        "Days after a document's effective date during which search results mark it 'recently updated'.",
        "int",
    ),
    Setting(
        "CORS_ORIGINS",
        "",
        "Browser origins allowed to call /api/ from their pages (comma-separated scheme://host[:port]); "
        "empty: none (no CORS headers).",
        "origins",
    ),
    Setting(
        "PUBLIC_URL",
        "",
        "This kb's address as its users reach it (scheme://host[:port][/path]), for links kb sends out (webhook "
        "events); empty: those links are paths such as /sops/<id>.",
        "url",
    ),
    # Outbound webhooks (kb/webhooks.py, kb/webhook_delivery.py).
    Setting(
        "WEBHOOK_ALLOW_PRIVATE",
        "off",
        "Let webhooks reach loopback, private and link-local addresses (on) or refuse them (off); cloud metadata "
        "addresses are refused either way.",
        "choice",
        ("on", "off"),
    ),
    Setting(
        "WEBHOOK_TIMEOUT",
        5.0,
        "Seconds a webhook delivery may take to connect, and to wait for each read; a whole attempt is cut off "
        "after three times this.",
        "float",
    ),
    Setting("WEBHOOK_MAX_ATTEMPTS", 10, "Attempts at one webhook delivery before it is marked failed.", "int"),
    Setting(
        "WEBHOOK_RETRY_SECONDS",
        30.0,
        "Delay before the first retry of a webhook delivery; each later one doubles it (up to an hour), with jitter.",
        "float",
    ),
    Setting(
        "WEBHOOK_INTERVAL",
        2.0,
        "Seconds between each server process's checks for webhook deliveries due (0 turns the worker off; "
        "`kb webhooks deliver` still sends them).",
        "float",
    ),
    Setting(
        "MCP_ALLOWED_HOSTS",
        "127.0.0.1:*,localhost:*,[::1]:*",
        "Host headers /mcp answers (comma-separated host or host:port, host:* for any port), and their http(s) "
        "origins for browsers; others get 421 (DNS-rebinding protection). Empty: no Host or Origin check.",
        "hosts",
    ),
    Setting(
        "RATE_LIMIT_STORAGE",
        "memory://",
        "Where rate-limit counts live: memory:// (each process its own) or redis://host:port/db (shared).",
        "storage",
    ),
)
BY_NAME = {s.name: s for s in SETTINGS}
# Flask's own keys that may also come through the KB_ prefix.
FLASK_KEYS = frozenset({"SECRET_KEY", "TESTING", "DEBUG"})


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return every setting: defaults, then ``KB_*`` environment, then overrides.

    Raises:
        ConfigError: an unknown name or a value of the wrong kind.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :]
        if name in FLASK_KEYS:
            continue
        if name not in BY_NAME:
            known = ", ".join(ENV_PREFIX + s.name for s in SETTINGS)
            raise ConfigError(f"unknown setting {key} in the environment (known: {known})")
        values[name] = raw
    for name, raw in (overrides or {}).items():
        if name in BY_NAME:
            values[name] = raw
    settings = {name: coerce(BY_NAME[name], value) for name, value in values.items()}
    if not settings["WEBHOOK_TIMEOUT"] > 0:
        raise ConfigError("setting WEBHOOK_TIMEOUT: must be more than 0 seconds")
    if settings["CONTENT_DIR"] is None:
        settings["CONTENT_DIR"] = _default_root("sops")
    if settings["DATA_DIR"] is None:
        settings["DATA_DIR"] = _default_root("instance")
    # kb.store opens the database bound to the instance folder, wherever a caller holds only the folder.
    database.bind(settings["DATA_DIR"], database.parse_url(settings["DATABASE_URL"], settings["DATA_DIR"]))
    return settings
