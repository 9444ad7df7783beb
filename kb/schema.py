"""The workflow database's schema: its migrations, written once in SQLite's dialect, and PostgreSQL's form of them.

kb.store applies them at start-up on either engine (see there). A migration is a script of statements with no
semicolons inside literals; :func:`postgres_ddl` derives PostgreSQL's DDL where SQLite's differs (an
``INTEGER PRIMARY KEY`` becomes an identity column; the ids that refer to one become BIGINT).
"""

from __future__ import annotations

import re

SCHEMA_VERSION = 8

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


def postgres_ddl(script: str) -> str:
    """A migration in SQLite's dialect as PostgreSQL's: identity ids, BIGINT for the ids that refer to them, and a
    ticket's uniqueness on the hash of its text (a B-tree entry holds at most about 2.7 kB; a ticket holds 5,000
    characters)."""
    script = re.sub(r"\bid INTEGER PRIMARY KEY\b", "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", script)
    script = re.sub(r"\bINTEGER NOT NULL REFERENCES\b", "BIGINT NOT NULL REFERENCES", script)
    return re.sub(
        r",\s*UNIQUE \(text, category\)\s*\);",
        ");\n    CREATE UNIQUE INDEX IF NOT EXISTS tickets_unique ON tickets (md5(text), category);",
        script,
    )


def statements(script: str) -> list[str]:
    """Split a migration script (no semicolons inside literals) into statements."""
    return [s.strip() for s in script.split(";") if s.strip()]
