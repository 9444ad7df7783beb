"""Labelled tickets: customer messages with the category an agent gave them, training the category classifier.

They live in the instance database's ``tickets`` table (kb.store), one row per distinct (text, category),
every text masked with kb.redaction.redact before it is stored. ``kb tickets import FILE.csv`` adds them,
``kb tickets list`` shows them, ``kb tickets remove ID...`` deletes them (kb/cli_tickets.py, audited); the
next index build (``kb index``, a publish, the watcher) trains the classifier on them beside the taxonomy's
phrasings (:func:`training_examples` hands them to kb.indexing.builder as data).

A CSV file is checked whole before anything is stored, and every problem is reported at once, each naming
its row (the header is row 1, as a spreadsheet numbers it); one problem and nothing is imported:

- at most MAX_FILE_BYTES bytes, UTF-8 (a byte-order mark is allowed), at most MAX_ROWS rows;
- a header of exactly the columns ``text`` and ``category`` (any order, any case);
- each row: both fields, a text of 1 to MAX_TEXT_CHARS characters without NUL or other control characters
  (tab and line breaks are fine), and a category of the taxonomy that is not a group (a group's tickets
  belong to one of its categories);
- at most MAX_TICKETS tickets stored in all, which bounds the classifier's training time at index time.

Rows already stored, or repeated in the file, are skipped and counted, so importing a file twice adds nothing.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kb.database import Connection
from kb.errors import InputError, NotFoundError, Problem
from kb.redaction import redact
from kb.store import now, transaction
from kb.taxonomy import Category

COLUMNS = ("text", "category")
MAX_FILE_BYTES = 20_000_000
MAX_ROWS = 50_000
MAX_TEXT_CHARS = 5_000
MAX_TICKETS = 10_000  # index-time training grows with them: one fit on 20,000 examples took 4 minutes (busy 2 cores)
MAX_LIST = 1_000
PROBLEMS_SHOWN = 20  # problems spelled out in the message; details hold them all
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class ImportReport:
    """What an import did."""

    file: str
    rows: int  # data rows read
    added: int
    duplicates: int  # already stored, or repeated in the file

    def to_dict(self) -> dict:
        """Return the report as plain data."""
        return {"file": self.file, "rows": self.rows, "added": self.added, "duplicates": self.duplicates}


def read_csv(data: bytes, categories: dict[str, Category], name: str, size: int | None = None) -> list[tuple[str, str]]:
    """Check a CSV file of labelled tickets and return its rows as (masked text, category), in file order.

    Args:
        data: the file's bytes (a caller may read only MAX_FILE_BYTES + 1 of a larger file).
        categories: the taxonomy, by id.
        name: the file's name, for messages.
        size: the file's size on disk, when data may be only its start.

    Raises:
        InputError: naming every problem with its row (details["problems"]); nothing is returned.
    """
    size = max(len(data), size or 0)
    if size > MAX_FILE_BYTES:
        raise _refused(name, [Problem(name, 0, f"is {size:,} bytes, at most {MAX_FILE_BYTES:,}", "file")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        message = f"is not UTF-8 text (byte {error.start:,}): save it as CSV UTF-8"
        raise _refused(name, [Problem(name, 0, message, "file")]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(itertools.islice(reader, MAX_ROWS + 2))  # the header, MAX_ROWS rows, and one too many
    except csv.Error as error:
        raise _refused(name, [Problem(name, reader.line_num, f"is not valid CSV: {error}", "file")]) from None
    if not rows:
        raise _refused(
            name, [Problem(name, 1, "is empty: the first row must name the columns text and category", "file")]
        )
    if len(rows) > MAX_ROWS + 1:
        raise _refused(name, [Problem(name, 0, f"has more than {MAX_ROWS:,} rows; split it", "file")])
    header = [cell.strip().lower() for cell in rows[0]]
    problems = _header_problems(header, name)
    if problems:
        raise _refused(name, problems)
    where = {column: header.index(column) for column in COLUMNS}
    found: list[tuple[str, str]] = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        if len(row) != len(header):
            problems.append(Problem(name, number, f"has {len(row)} fields, the header {len(header)}", "row"))
            continue
        ticket, category = row[where["text"]], row[where["category"]].strip()
        problems += _row_problems(ticket, category, categories, name, number)
        found.append((redact(ticket).strip(), category))
    if problems:
        raise _refused(name, problems)
    return found


def _header_problems(header: list[str], name: str) -> list[Problem]:
    problems = [Problem(name, 1, f"has no {column!r} column", "header") for column in COLUMNS if column not in header]
    unknown = [cell for cell in header if cell not in COLUMNS]
    if unknown:
        shown = ", ".join(repr(redact(c)[:40]) for c in unknown[:5])
        problems.append(Problem(name, 1, f"unknown column {shown}: the file has exactly text and category", "header"))
    if len(set(header)) != len(header) and not unknown:
        problems.append(Problem(name, 1, "names a column twice", "header"))
    return problems


def _row_problems(text: str, category: str, categories: dict[str, Category], name: str, row: int) -> list[Problem]:
    problems = []
    if not text.strip():
        problems.append(Problem(name, row, "text is empty", "text"))
    elif len(text) > MAX_TEXT_CHARS:
        problems.append(Problem(name, row, f"text is {len(text):,} characters, at most {MAX_TEXT_CHARS:,}", "text"))
    elif _CONTROL.search(text):
        problems.append(Problem(name, row, "text contains a NUL or another control character", "text"))
    known = categories.get(category)
    if not category:
        problems.append(Problem(name, row, "category is empty", "category"))
    elif known is None:
        shown = redact(category)[:80]
        problems.append(Problem(name, row, f"category {shown!r} is not in the taxonomy", "category"))
    elif known.parent is None:
        problems.append(Problem(name, row, f"category {category!r} is a group: name one of its categories", "category"))
    return problems


def _refused(name: str, problems: list[Problem]) -> InputError:
    lines = [f"row {p.line}: {p.field}: {p.message}" if p.line else f"{p.field}: {p.message}" for p in problems]
    shown = lines[:PROBLEMS_SHOWN] + (
        [f"... and {len(lines) - PROBLEMS_SHOWN} more"] if len(lines) > PROBLEMS_SHOWN else []
    )
    message = f"{name}: nothing imported, {len(problems)} problem(s):\n  " + "\n  ".join(shown)
    return InputError(message, {"field": "file", "problems": [p.to_dict() for p in problems]})


def import_tickets(
    db: Connection,
    data: bytes,
    categories: dict[str, Category],
    name: str,
    actor: str | None = None,
    size: int | None = None,
) -> ImportReport:
    """Check a CSV file whole (:func:`read_csv`), then store its new rows in one transaction.

    Args:
        db: the instance database.
        data: the file's bytes.
        categories: the taxonomy (kb.taxonomy), by id.
        name: the file's name, recorded as each ticket's source (masked).
        actor: who imports (recorded as imported_by).
        size: the file's size on disk, when data is only its start (see read_csv).

    Raises:
        InputError: a problem in the file, or too many tickets in all; nothing is stored.
    """
    name = redact(Path(name).name)
    rows = read_csv(data, categories, name, size)
    stamp = now()
    with transaction(db):
        stored = db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0]
        added = 0
        for text, category in dict.fromkeys(rows):
            cursor = db.execute(
                "INSERT INTO tickets (text, category, source, imported_by, imported) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (text, category, name, actor, stamp),
            )
            added += cursor.rowcount
        if stored + added > MAX_TICKETS:
            raise InputError(
                f"{name}: nothing imported: {stored:,} tickets are stored and the file adds {added:,}, "
                f"more than the {MAX_TICKETS:,} the classifier trains on; remove some first (kb tickets remove)",
                {"field": "file"},
            )
    return ImportReport(name, len(rows), added, len(rows) - added)


def list_tickets(
    db: Connection, category: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[dict], int]:
    """Stored tickets, oldest first, optionally of one category (or group): (rows, how many match in all)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise InputError(f"limit: must be a whole number from 1 to {MAX_LIST}", {"field": "limit"})
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InputError("offset: must be a whole number, 0 or more", {"field": "offset"})
    category = category or None
    where = " FROM tickets WHERE CAST(? AS TEXT) IS NULL OR category = ? OR substr(category, 1, ?) = ?"
    params = [category, category, len(category or "") + 1, (category or "") + "/"]
    total = db.execute("SELECT COUNT(*)" + where, params).fetchone()[0]
    columns = "SELECT id, text, category, source, imported_by, imported"
    rows = db.execute(columns + where + " ORDER BY id LIMIT ? OFFSET ?", [*params, limit, offset])
    return [dict(row) for row in rows], total


def remove_tickets(db: Connection, ids: Sequence[int]) -> list[dict]:
    """Delete tickets by id, all or none; return the rows removed.

    Raises:
        NotFoundError: an id is not stored (naming every such id); nothing is removed.
    """
    wanted = list(dict.fromkeys(ids))
    with transaction(db):
        rows = {
            row["id"]: dict(row)
            for chunk in _chunks(wanted, 500)
            for row in db.execute(
                f"SELECT id, text, category FROM tickets WHERE id IN ({','.join('?' * len(chunk))})",  # noqa: S608
                chunk,
            )
        }
        missing = [i for i in wanted if i not in rows]
        if missing:
            shown = ", ".join(map(str, missing[:20])) + (", ..." if len(missing) > 20 else "")
            raise NotFoundError(f"no ticket with id {shown}; nothing removed", {"field": "id", "ids": missing})
        for chunk in _chunks(wanted, 500):
            db.execute(f"DELETE FROM tickets WHERE id IN ({','.join('?' * len(chunk))})", chunk)  # noqa: S608
    return [rows[i] for i in wanted]


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def training_examples(db: Connection) -> list[tuple[str, str]]:
    """Every stored ticket as (text, category), oldest first: what kb.indexing.builder.build_index trains on."""
    return [(row["text"], row["category"]) for row in db.execute("SELECT text, category FROM tickets ORDER BY id")]
