"""The workflow database: its schema and migrations, on SQLite (default) or PostgreSQL (kb.database).

Users, API keys, the audit log, drafts, labelled tickets, webhooks, feedback, flags and the search log live in
``DATA_DIR/kb.sqlite`` or, with ``KB_DATABASE_URL=postgresql://...``, in one database every replica shares.
:func:`connect` opens it (SQLite: WAL, foreign keys on, a 10 s busy timeout) and brings the schema up to
:data:`SCHEMA_VERSION`, tracked in ``PRAGMA user_version`` on SQLite and in the ``schema_version`` table on
PostgreSQL (one replica migrates while the others wait on an advisory lock). The migrations are written once, in
SQLite's dialect (kb.schema), from which PostgreSQL's DDL is derived.

Writers use ``with transaction(db):``: it commits the block whole or rolls it back, and inside a caller's open
transaction it joins it instead of committing early, so ``audit.record`` called in a caller's ``with db:`` block
after its first write, or in a ``with transaction(db):`` block anywhere, stays atomic. SQLite's ``BEGIN IMMEDIATE``
makes every write transaction exclusive; on PostgreSQL a block where two replicas could race names a lock
(``transaction(db, lock="...")``: a transaction-scoped advisory lock), and :func:`exclusive` holds a named lock
across a longer step (a publish).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from kb import database
from kb.database import DB_NAME, DatabaseUrl, engine
from kb.errors import ConfigError, StorageError
from kb.schema import MIGRATIONS, SCHEMA_VERSION, postgres_ddl, statements

__all__ = [
    "DB_NAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "check",
    "connect",
    "exclusive",
    "fast_commits",
    "now",
    "transaction",
]
log = logging.getLogger(__name__)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> str:
    """Return the current UTC time as ISO-8601 with seconds, e.g. ``2026-12-01T09:15:02Z``."""
    return datetime.now(UTC).strftime(TIME_FORMAT)


@contextmanager
def transaction(db, lock: str | None = None) -> Iterator:
    """Commit the block's writes (rollback on error), or join the caller's open transaction.

    lock names an advisory lock PostgreSQL holds until the block ends, so two replicas run the block one after the
    other (SQLite's BEGIN IMMEDIATE already lets one writer in at a time). It is taken first: the block's reads then
    see what the other replica committed.
    """
    postgres = engine(db) == "postgresql"
    if db.in_transaction:
        if postgres and lock:
            db.execute("SELECT pg_advisory_xact_lock(?)", (database.lock_key(lock),))
        yield db  # the caller's ``with db:`` commits or rolls back everything
        return
    if postgres:
        db.begin()
    else:
        # IMMEDIATE takes the write lock now: nested calls see the transaction, and no read-to-write upgrade can fail.
        db.execute("BEGIN IMMEDIATE")
    try:
        if postgres and lock:
            db.execute("SELECT pg_advisory_xact_lock(?)", (database.lock_key(lock),))
        yield db
    except BaseException:
        db.rollback()
        raise
    db.commit()


def fast_commits(db) -> None:
    """Let this connection's commits skip the wait for the disk (SQLite: synchronous=NORMAL under WAL; PostgreSQL:
    synchronous_commit off): a crash may lose the last few rows, never corrupt the database. For rows written on
    every search."""
    if engine(db) == "postgresql":
        db.execute("SET synchronous_commit TO OFF")
    else:
        db.execute("PRAGMA synchronous=NORMAL")


@contextmanager
def exclusive(db, name: str) -> Iterator[None]:
    """Hold the named lock across replicas for the block: a PostgreSQL session advisory lock; on SQLite nothing
    (one machine, where callers hold a file lock)."""
    if engine(db) != "postgresql":
        yield
        return
    key = database.lock_key(name)
    db.execute("SELECT pg_advisory_lock(?)", (key,))
    try:
        yield
    finally:
        db.execute("SELECT pg_advisory_unlock(?)", (key,))


def connect(data_dir: Path, where: DatabaseUrl | None = None):
    """Open the instance folder's database (where, else the one kb.config bound to it, else ``data_dir/kb.sqlite``)
    with the schema at the current version.

    Raises:
        ConfigError: the database was made by a newer kb (its schema version is higher).
        StorageError: a PostgreSQL server that cannot be reached (the message names KB_DATABASE_URL, masked).
    """
    data_dir = Path(data_dir)
    where = where or database.bound(data_dir)
    if where.engine == "postgresql":
        return _connect_postgres(where)
    path = where.path or data_dir / DB_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        _migrate(db, path)
    except BaseException:
        db.close()
        raise
    return db


def check(data_dir: Path) -> None:
    """At start-up: reach the instance folder's PostgreSQL database and migrate it, or stop.

    Raises:
        ConfigError: the server cannot be reached (naming KB_DATABASE_URL, the password masked), or its schema is
            newer than this kb.
    """
    if database.bound(data_dir).engine != "postgresql":
        return  # SQLite: the file is made and migrated at its first use, as before
    try:
        connect(data_dir).close()
    except StorageError as error:
        raise ConfigError(error.message) from None


_MIGRATED: set[str] = set()  # the PostgreSQL URLs this process has already brought up to SCHEMA_VERSION


def _connect_postgres(where: DatabaseUrl):
    try:
        db = database.PgConnection(where)
    except database.DatabaseError as error:
        raise StorageError(
            f"{database.SETTING}: cannot reach the database {where.shown}: {masked_error(error, where)}",
            {"field": database.SETTING},
        ) from None
    try:
        if where.url not in _MIGRATED:
            _migrate_postgres(db, where)
            _MIGRATED.add(where.url)
    except BaseException:
        db.close()
        raise
    return db


def masked_error(error: BaseException, where: DatabaseUrl) -> str:
    """A driver's message (its first line) with the URL's password taken out, should it ever quote it."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    password = urlsplit(where.url).password if where.url else None
    return text.replace(unquote(password), "***") if password else text


def _migrate_postgres(db, where: DatabaseUrl) -> None:
    """Apply the migrations the database lacks, each in one transaction, while holding the migration lock."""
    with exclusive(db, "kb.store.migrate"):  # replicas starting together: one migrates, the others then find it done
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"database {where.shown} has schema version {version}; this kb knows only up to {SCHEMA_VERSION}"
            )
        first = version
        while version < SCHEMA_VERSION:
            with db:
                for statement in statements(postgres_ddl(MIGRATIONS[version])):
                    db.execute(statement)
                version += 1
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?) RETURNING version", (version,))
        if version != first:
            log.info("database %s: schema migrated from version %d to %d", where.shown, first, version)


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
                for statement in statements(MIGRATIONS[version]):
                    db.execute(statement)
                version += 1
                db.execute(f"PRAGMA user_version={version:d}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
