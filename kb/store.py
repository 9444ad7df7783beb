"""The workflow database: one SQLite file in the instance folder, its schema and migrations.

Users, API keys, the audit log, drafts, labelled tickets, webhooks, feedback, flags and the search log live in ``DATA_DIR/kb.sqlite``.
:func:`connect` opens it (WAL, foreign keys on, a 10 s busy timeout) and brings
the schema up to :data:`SCHEMA_VERSION`, tracked in ``PRAGMA user_version``.
Writers use ``with transaction(db):``: it commits the block whole or rolls it
back, and inside a caller's open transaction it joins it instead of committing
early, so ``audit.record`` called in a caller's ``with db:`` block after its
first write, or in a ``with transaction(db):`` block anywhere, stays atomic.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from kb.errors import ConfigError

DB_NAME = "kb.sqlite"
SCHEMA_VERSION = 8
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# MIGRATIONS[n] takes the schema from version n to n + 1.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS api_keys (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        label TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created TEXT NOT NULL,
        last_used TEXT,
        revoked TEXT
    );
    CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys(user_id);
    CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT,
        action TEXT NOT NULL,
        target TEXT,
        outcome TEXT NOT NULL,
        client TEXT,
        details TEXT
    );
    CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
    CREATE INDEX IF NOT EXISTS audit_actor ON audit(actor);
    CREATE INDEX IF NOT EXISTS audit_target ON audit(target);
    CREATE TABLE IF NOT EXISTS drafts (
        id INTEGER PRIMARY KEY,
        sop_id TEXT NOT NULL,
        base_revision TEXT,
        markdown TEXT NOT NULL,
        summary TEXT NOT NULL,
        author TEXT NOT NULL,
        status TEXT NOT NULL,
        reviewer TEXT,
        comment TEXT,
        revision TEXT,
        restored_from TEXT,
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS drafts_sop ON drafts(sop_id);
    CREATE INDEX IF NOT EXISTS drafts_status ON drafts(status);
    """,
    # 2: a per-user session generation. Log-out, a password, role or disabled change bump it, and a session
    # cookie carrying an older generation is refused on its next request, in every worker.
    """
    ALTER TABLE users ADD COLUMN session_generation INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: API key scopes (space-separated). Keys made before scopes keep every scope; their user's role still
    # bounds them.
    """
    ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'search read write review admin';
    """,
    # 4: labelled tickets (customer text, masked, with the category an agent gave it) that train the
    # category classifier beside the taxonomy's phrasings; one row per distinct (text, category).
    """
    CREATE TABLE IF NOT EXISTS tickets (
        id INTEGER PRIMARY KEY,
        text TEXT NOT NULL,
        category TEXT NOT NULL,
        source TEXT NOT NULL,
        imported_by TEXT,
        imported TEXT NOT NULL,
        UNIQUE (text, category)
    );
    CREATE INDEX IF NOT EXISTS tickets_category ON tickets(category);
    """,
    # 5: outbound webhooks (sop.published, sop.retired) and their deliveries, claimed and retried by a worker
    # (kb.webhooks, kb.webhook_delivery). A worker claims a delivery by setting claimed_until (its lease) and claim
    # (its token); one row per hook and event, so an event enqueued twice (by every process's watcher) is sent once.
    """
    CREATE TABLE IF NOT EXISTS webhooks (
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        secret TEXT NOT NULL,
        created_by TEXT,
        created TEXT NOT NULL,
        removed TEXT
    );
    CREATE TABLE IF NOT EXISTS webhook_deliveries (
        id INTEGER PRIMARY KEY,
        webhook_id INTEGER NOT NULL REFERENCES webhooks(id),
        event_id TEXT NOT NULL,
        event TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt TEXT NOT NULL,
        claimed_until TEXT,
        claim TEXT,
        last_attempt TEXT,
        last_status INTEGER,
        last_error TEXT,
        created TEXT NOT NULL,
        delivered TEXT,
        UNIQUE (webhook_id, event_id)
    );
    CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries(status, next_attempt);
    CREATE INDEX IF NOT EXISTS webhook_deliveries_hook ON webhook_deliveries(webhook_id, claimed_until);
    """,
    # 6: what agents say about SOPs (kb.feedback: helpful or not, flags as outdated) and every search answered
    # (kb.search_log), for the owners' dashboard. Every text is masked before it is stored; the search log is
    # pruned after KB_SEARCH_LOG_DAYS.
    """
    CREATE TABLE IF NOT EXISTS feedback (
        id INTEGER PRIMARY KEY,
        sop_id TEXT NOT NULL,
        anchor TEXT,
        helpful INTEGER NOT NULL CHECK (helpful IN (0, 1)),
        reason TEXT,
        query TEXT,
        actor TEXT,
        actor_kind TEXT NOT NULL CHECK (actor_kind IN ('person', 'bot')),
        created TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS feedback_sop ON feedback(sop_id, created);
    CREATE TABLE IF NOT EXISTS flags (
        id INTEGER PRIMARY KEY,
        sop_id TEXT NOT NULL,
        anchor TEXT,
        comment TEXT NOT NULL,
        actor TEXT,
        actor_kind TEXT NOT NULL CHECK (actor_kind IN ('person', 'bot')),
        created TEXT NOT NULL,
        resolved TEXT
    );
    CREATE INDEX IF NOT EXISTS flags_sop ON flags(sop_id, created);
    CREATE TABLE IF NOT EXISTS search_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        query TEXT NOT NULL,
        actor_kind TEXT NOT NULL CHECK (actor_kind IN ('person', 'bot', 'anonymous')),
        results INTEGER NOT NULL,
        top_sop_id TEXT,
        mode TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS search_log_at ON search_log(at);
    """,
    # 7: which SOP a search led to (the first result opened from it), for the dashboard's no-click queries.
    """
    ALTER TABLE search_log ADD COLUMN clicked TEXT;
    """,
    # 8: where a search came from (kb.search_log.CHANNELS: the API, the search page, Dify's /retrieval, /assist,
    # the MCP tools); NULL for searches logged before.
    """
    ALTER TABLE search_log ADD COLUMN channel TEXT;
    """,
)
assert len(MIGRATIONS) == SCHEMA_VERSION


def now() -> str:
    """Return the current UTC time as ISO-8601 with seconds, e.g. ``2026-12-01T09:15:02Z``."""
    return datetime.now(UTC).strftime(TIME_FORMAT)


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Commit the block's writes (rollback on error), or join the caller's open transaction."""
    if db.in_transaction:
        yield db  # the caller's ``with db:`` commits or rolls back everything
        return
    # IMMEDIATE takes the write lock now: nested calls see the transaction, and no read-to-write upgrade can fail.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    db.commit()


def connect(data_dir: Path) -> sqlite3.Connection:
    """Open (creating if needed) ``data_dir/kb.sqlite`` with the schema at the current version.

    Raises:
        ConfigError: the database was made by a newer kb (its schema version is higher).
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(data_dir / DB_NAME)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        _migrate(db, data_dir / DB_NAME)
    except BaseException:
        db.close()
        raise
    return db


def _version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations the database lacks, each in one exclusive transaction."""
    version = _version(db)
    if version > SCHEMA_VERSION:
        raise ConfigError(f"database {path} has schema version {version}; this kb knows only up to {SCHEMA_VERSION}")
    while version < SCHEMA_VERSION:
        # BEGIN IMMEDIATE takes the write lock, so two processes starting together migrate once.
        db.execute("BEGIN IMMEDIATE")
        try:
            version = _version(db)
            if version < SCHEMA_VERSION:
                for statement in _statements(MIGRATIONS[version]):
                    db.execute(statement)
                version += 1
                db.execute(f"PRAGMA user_version={version:d}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split a migration script (no semicolons inside literals) into statements."""
    return [s.strip() for s in script.split(";") if s.strip()]
