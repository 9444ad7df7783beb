"""One interface over the two database engines: SQLite (one machine) and PostgreSQL (several replicas).

``KB_DATABASE_URL`` chooses the engine: empty for the SQLite file ``DATA_DIR/kb.sqlite``, ``sqlite:///path`` for
another SQLite file, ``postgresql://user:password@host:port/name`` for a shared PostgreSQL. kb.config checks it at
start-up (:func:`parse_url`) and binds the instance folder to it (:func:`bind`); kb.store opens what is bound.

Callers write SQL once, in the dialect both engines share, with ``?`` (or ``:name``) placeholders, and use the
connection the way Python's sqlite3 module is used:

- ``db.execute(sql, params)`` returns a cursor (``fetchone``, ``fetchall``, iteration, ``rowcount``,
  ``lastrowid``: an INSERT returns its row's ``id`` on both engines; on PostgreSQL through ``RETURNING id``);
- rows are read by position or by name and turn into dicts with ``dict(row)``;
- ``with db:`` commits the block or rolls it back (kb.store.transaction adds locks);
- failures are :data:`DatabaseError` (a tuple of both drivers' base classes, for ``except``), duplicates
  :data:`IntegrityError`; :data:`UNAVAILABLE` is a server that cannot be reached.

SQLite connections are Python's own ``sqlite3.Connection``; PostgreSQL ones are :class:`PgConnection`, a thin layer
over psycopg 3 in autocommit mode that opens a transaction only where a caller asks for one, as sqlite3 does.
Passwords never leave this module unmasked: :func:`mask` is the one place that hides them.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
import psycopg.types.string
from psycopg.rows import RowMaker

from kb.errors import ConfigError

SETTING = "KB_DATABASE_URL"
DB_NAME = "kb.sqlite"
CONNECT_TIMEOUT = 5  # seconds to reach a PostgreSQL server before a request gives up (503)
STATEMENT_TIMEOUT_MS = 30_000  # no statement (or wait for a row lock) holds a request longer
DatabaseError: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)
IntegrityError: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)
UNAVAILABLE: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.errors.AdminShutdown)


@dataclass(frozen=True)
class DatabaseUrl:
    """Where the workflow database is: an SQLite file, or a PostgreSQL server (its conninfo URL)."""

    engine: str  # "sqlite" | "postgresql"
    path: Path | None = None
    url: str = ""

    @property
    def shown(self) -> str:
        """The location as logs and errors may show it (password masked)."""
        return str(self.path) if self.engine == "sqlite" else mask(self.url)


def mask(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``, for logs, errors and the CLI."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url)


def parse_url(text: object, data_dir: Path | None = None) -> DatabaseUrl:
    """Check a KB_DATABASE_URL value: empty (the SQLite file in data_dir), sqlite:///path or postgresql://...

    Raises:
        ConfigError: a value that is none of those; the message names the setting and the reason, never a password.
    """
    text = "" if text is None else str(text).strip()
    if not text:
        return DatabaseUrl("sqlite", (Path(data_dir) / DB_NAME) if data_dir is not None else None)
    shown = mask(text)

    def bad(reason: str) -> ConfigError:
        return ConfigError(
            f"setting {SETTING}: {shown!r} {reason} (expected sqlite:///path/kb.sqlite or "
            "postgresql://user:password@host:port/database; empty for the SQLite file in the instance folder)"
        )

    if any(c.isspace() or not c.isprintable() for c in text) or len(text) > 2000:
        raise bad("holds spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        raise bad(f"is not a URL: {mask(str(error))}") from None
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path or parts.path == "/":
            raise bad("is no SQLite file: write sqlite:/// and an absolute path")
        return DatabaseUrl("sqlite", Path(unquote(parts.path)).expanduser().resolve())
    if parts.scheme not in ("postgresql", "postgres"):
        raise bad(f"has the scheme {parts.scheme or 'none'!r}, not sqlite or postgresql")
    if not parts.hostname:
        raise bad("names no host")
    if port == 0:
        raise bad("has port 0")
    name = parts.path.lstrip("/")
    if not name or "/" in name:
        raise bad("names no database")
    if parts.fragment:
        raise bad("has a fragment (#...)")
    return DatabaseUrl("postgresql", url=text)


# -- binding an instance folder to its database --------------------------------------------------------------------

_BOUND: dict[Path, DatabaseUrl] = {}


def bind(data_dir: Path, where: DatabaseUrl) -> None:
    """Record that the instance folder data_dir keeps its workflow state in where (kb.config does, at start-up)."""
    _BOUND[Path(data_dir).resolve()] = where


def bound(data_dir: Path) -> DatabaseUrl:
    """The database bound to the instance folder: what kb.config bound, else the SQLite file in it."""
    data_dir = Path(data_dir).resolve()
    where = _BOUND.get(data_dir)
    if where is None or (where.engine == "sqlite" and where.path is None):
        return DatabaseUrl("sqlite", data_dir / DB_NAME)
    return where


def engine(db: object) -> str:
    """'sqlite' or 'postgresql': the engine behind a connection."""
    return "postgresql" if isinstance(db, PgConnection) else "sqlite"


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a named PostgreSQL advisory lock."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


# -- PostgreSQL ---------------------------------------------------------------------------------------------------

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|\?|:[A-Za-z_][A-Za-z0-9_]*|%|::")


def translate(sql: str) -> str:
    """sqlite3's placeholders (``?``, ``:name``) as psycopg's (``%s``, ``%(name)s``); every ``%`` doubled.

    Inside quoted literals and identifiers only ``%`` is doubled: a ``?`` there is text.
    """

    def replace(match: re.Match) -> str:
        part = match.group(0)
        if part == "?":
            return "%s"
        if part == "%":
            return "%%"
        if part.startswith(":") and part != "::":
            return f"%({part[1:]})s"
        return part.replace("%", "%%")  # psycopg reads % inside literals too; ? and :name there stay text

    return _TOKENS.sub(replace, sql)


_INSERT = re.compile(r"^\s*INSERT\s", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)


class Row(tuple):
    """A row read by position or by column name, like sqlite3.Row; ``dict(row)`` gives {column: value}."""

    _names: tuple[str, ...] = ()

    def keys(self) -> list[str]:
        """The column names, in order."""
        return list(self._names)

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._names.index(key))
            except ValueError:
                raise IndexError(f"no column named {key!r}") from None
        return tuple.__getitem__(self, key)


def _row_factory(cursor: psycopg.Cursor) -> RowMaker[Row]:
    names = tuple(column.name for column in cursor.description or ())
    kind = type("Row", (Row,), {"_names": names, "__slots__": ()})
    return kind


class PgCursor:
    """The answer to one statement: rows, rowcount, and the id an INSERT made (lastrowid)."""

    def __init__(self, cursor: psycopg.Cursor, returning_id: bool):
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid = None
        self._first: list[Row] = []
        if returning_id:
            row = cursor.fetchone()
            self.lastrowid = row[0] if row is not None else None

    def fetchone(self) -> Row | None:
        """The next row, or None."""
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Row]:
        """The rows left."""
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class PgConnection:
    """A PostgreSQL connection used like sqlite3's: execute with ``?``, ``with db:`` for a transaction."""

    def __init__(self, where: DatabaseUrl):
        self.where = where
        self._conn = psycopg.connect(
            where.url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            row_factory=_row_factory,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        )
        # Text parameters as text, not "unknown": PostgreSQL then types `? = ?` and `? || ?` as SQLite reads them
        # (a None has no type: write CAST(? AS TEXT) IS NULL).
        self._conn.adapters.register_dumper(str, psycopg.types.string.StrDumper)
        self._depth = 0

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (as sqlite3.Connection.in_transaction)."""
        return self._depth > 0

    def execute(self, sql: str, params: Sequence | Mapping = ()) -> PgCursor:
        """Run one statement; an INSERT without RETURNING reports its new row's id as lastrowid."""
        returning_id = bool(_INSERT.match(sql)) and not _RETURNING.search(sql)
        text = (translate(sql) if params else sql) + (" RETURNING id" if returning_id else "")
        cursor = self._conn.cursor()
        cursor.execute(text, params if params else None)  # no params: psycopg reads no placeholders
        return PgCursor(cursor, returning_id)

    def begin(self) -> None:
        """Open a transaction (kb.store.transaction calls this)."""
        self._conn.execute("BEGIN")
        self._depth = 1

    def commit(self) -> None:
        """Commit the open transaction, if any."""
        if self._depth:
            self._depth = 0
            self._conn.execute("COMMIT")

    def rollback(self) -> None:
        """Roll the open transaction back, if any (a lost connection has nothing left to roll back)."""
        if self._depth:
            self._depth = 0
            if not self._conn.closed:
                self._conn.execute("ROLLBACK")

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back)."""
        self._conn.close()

    def __enter__(self) -> PgConnection:
        if self._depth:
            self._depth += 1
        else:
            self.begin()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if self._depth > 1:
            self._depth -= 1
            return
        if kind is None:
            self.commit()
        else:
            self.rollback()


Connection = sqlite3.Connection | PgConnection  # what kb.store.connect returns
Record = sqlite3.Row | Row  # a row of either engine
