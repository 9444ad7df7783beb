"""Feedback and flags: what agents say about an SOP (helpful or not, and why) and SOPs flagged as outdated.

They live in the instance database's ``feedback`` and ``flags`` tables (kb.store), for the document's owner to
read. The caller (kb/web/api_feedback.py) passes what it knows of the SOPs: the ids that exist and the anchors
of the SOP concerned, so this module needs no index. Every text is checked, then masked with
kb.redaction.redact (which NFKC-normalises first) before it is stored:

- ``sop_id`` must be an SOP that exists (NotFoundError otherwise);
- ``anchor``, when given, must be a section of that SOP (InputError);
- ``reason`` at most MAX_REASON_CHARS characters; ``comment`` 1 to MAX_COMMENT_CHARS; ``query`` at most
  MAX_QUERY_CHARS (the search that led there); none may hold NUL or other control characters (tab and line
  breaks are fine);
- ``actor_kind`` is ``person`` (a logged-in user) or ``bot`` (an API key).

Each write is one transaction (kb.store.transaction) and returns the stored record. An owner resolves a flag with
:func:`resolve_flag` (the dashboard's Resolve button), audited as ``flag_resolved`` in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping

from kb import audit
from kb.database import Connection, Record
from kb.errors import ConflictError, InputError, NotFoundError
from kb.redaction import redact
from kb.store import now, transaction

MAX_REASON_CHARS = 500
MAX_COMMENT_CHARS = 2000
MAX_QUERY_CHARS = 2000
MAX_ANCHOR_CHARS = 200
MAX_LIST = 1000
ACTOR_KINDS = ("person", "bot")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_FEEDBACK_COLUMNS = "id, sop_id, anchor, helpful, reason, query, actor, actor_kind, created"
_FLAG_COLUMNS = "id, sop_id, anchor, comment, actor, actor_kind, created, resolved"


def _text(field: str, value: object, most: int, least: int = 0) -> str | None:
    """A checked, masked text field (None when absent and allowed); InputError naming the field otherwise."""
    if value is None and least == 0:
        return None
    if not isinstance(value, str):
        raise InputError(f"{field}: must be text", {"field": field})
    if _CONTROL.search(value):
        raise InputError(f"{field}: contains a NUL or another control character", {"field": field})
    if len(value) > most:  # the bound is on what the client typed; masking may lengthen it a little
        raise InputError(f"{field}: must be at most {most:,} characters, got {len(value):,}", {"field": field})
    masked = redact(value).strip()
    if len(masked) < least:
        raise InputError(f"{field}: must not be empty", {"field": field})
    return masked or None


def _target(sop_id: object, anchor: object, known_ids: Collection[str], anchors: Iterable[str]) -> str | None:
    """Check the SOP and anchor a record is about; return the anchor (None when not given)."""
    if not isinstance(sop_id, str) or sop_id not in known_ids:
        shown = redact(sop_id)[:80] if isinstance(sop_id, str) else sop_id
        raise NotFoundError(f"sop_id: no SOP with id {shown!r}", {"field": "sop_id"})
    if anchor is None:
        return None
    if not isinstance(anchor, str) or len(anchor) > MAX_ANCHOR_CHARS or anchor not in set(anchors):
        raise InputError(f"anchor: is not a section of {sop_id}", {"field": "anchor"})
    return anchor


def _check_kind(actor_kind: str) -> None:
    if actor_kind not in ACTOR_KINDS:
        raise InputError(f"actor_kind: must be one of {', '.join(ACTOR_KINDS)}", {"field": "actor_kind"})


def record_feedback(
    db: Connection,
    *,
    sop_id: str,
    anchor: str | None,
    helpful: bool,
    reason: str | None = None,
    query: str | None = None,
    actor: str | None,
    actor_kind: str,
    known_ids: Collection[str],
    anchors: Iterable[str] = (),
) -> dict:
    """Store one "was this helpful?" answer and return it as stored.

    Args:
        db: the instance database.
        sop_id, anchor: the SOP and (optionally) its section; checked against known_ids and anchors.
        helpful: yes (True) or no (False).
        reason: why, optional, at most MAX_REASON_CHARS characters (masked).
        query: the search that led there, optional (masked).
        actor, actor_kind: who said it: a user's name, and ``person`` or ``bot`` (an API key).
        known_ids: the ids of the SOPs that exist.
        anchors: the anchors of the SOP's sections.

    Raises:
        NotFoundError: no such SOP.
        InputError: a field is invalid (naming it); nothing is stored.
    """
    anchor = _target(sop_id, anchor, known_ids, anchors)
    if not isinstance(helpful, bool):
        raise InputError("helpful: must be true or false", {"field": "helpful"})
    reason = _text("reason", reason, MAX_REASON_CHARS)
    query = _text("query", query, MAX_QUERY_CHARS)
    _check_kind(actor_kind)
    with transaction(db):
        cursor = db.execute(
            "INSERT INTO feedback (sop_id, anchor, helpful, reason, query, actor, actor_kind, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (sop_id, anchor, int(helpful), reason, query, actor, actor_kind, now()),
        )
        row = db.execute(f"SELECT {_FEEDBACK_COLUMNS} FROM feedback WHERE id = ?", (cursor.lastrowid,)).fetchone()  # noqa: S608
    return _feedback_dict(row)


def record_flag(
    db: Connection,
    *,
    sop_id: str,
    anchor: str | None = None,
    comment: str,
    actor: str | None,
    actor_kind: str,
    known_ids: Collection[str],
    anchors: Iterable[str] = (),
) -> dict:
    """Flag an SOP (or one of its sections) as outdated, with a comment; return the flag as stored.

    Raises:
        NotFoundError: no such SOP.
        InputError: a field is invalid (naming it); nothing is stored.
    """
    anchor = _target(sop_id, anchor, known_ids, anchors)
    comment = _text("comment", comment, MAX_COMMENT_CHARS, least=1)
    _check_kind(actor_kind)
    with transaction(db):
        cursor = db.execute(
            "INSERT INTO flags (sop_id, anchor, comment, actor, actor_kind, created) VALUES (?, ?, ?, ?, ?, ?)",
            (sop_id, anchor, comment, actor, actor_kind, now()),
        )
        row = db.execute(f"SELECT {_FLAG_COLUMNS} FROM flags WHERE id = ?", (cursor.lastrowid,)).fetchone()  # noqa: S608
    return dict(row)


def _feedback_dict(row: Record) -> dict:
    record = dict(row)
    record["helpful"] = bool(record["helpful"])
    return record


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise InputError(f"limit: must be a whole number from 1 to {MAX_LIST}", {"field": "limit"})
    return limit


def list_feedback(db: Connection, sop_ids: Iterable[str], limit: int = 100) -> list[dict]:
    """Feedback about these SOPs, newest first (at most limit rows)."""
    ids = list(dict.fromkeys(sop_ids))
    if not ids:
        return []
    rows = db.execute(
        f"SELECT {_FEEDBACK_COLUMNS} FROM feedback WHERE sop_id IN ({_marks(ids)})"  # noqa: S608
        " ORDER BY created DESC, id DESC LIMIT ?",
        (*ids, _limit(limit)),
    )
    return [_feedback_dict(row) for row in rows]


def list_flags(db: Connection, sop_ids: Iterable[str], include_resolved: bool = False, limit: int = 100) -> list[dict]:
    """Flags on these SOPs, newest first (open ones only unless include_resolved; at most limit rows)."""
    ids = list(dict.fromkeys(sop_ids))
    if not ids:
        return []
    rows = db.execute(
        f"SELECT {_FLAG_COLUMNS} FROM flags WHERE sop_id IN ({_marks(ids)})"  # noqa: S608
        " AND (? = 1 OR resolved IS NULL) ORDER BY created DESC, id DESC LIMIT ?",
        (*ids, int(include_resolved), _limit(limit)),
    )
    return [dict(row) for row in rows]


def owned_by(documents: Mapping[str, Mapping], owner: str) -> list[str]:
    """The ids of the SOPs (id -> metadata with ``owner``) whose owner is owner, sorted: what an owner reads."""
    return sorted(sop_id for sop_id, record in documents.items() if record.get("owner") == owner)


def feedback_for_owner(db: Connection, documents: Mapping[str, Mapping], owner: str, limit: int = 100):
    """Feedback about the SOPs an owner owns, newest first."""
    return list_feedback(db, owned_by(documents, owner), limit)


def flags_for_owner(db: Connection, documents: Mapping[str, Mapping], owner: str, limit: int = 100):
    """Open flags on the SOPs an owner owns, newest first."""
    return list_flags(db, owned_by(documents, owner), limit=limit)


def resolve_flag(db: Connection, flag_id: int, actor: str, client: str | None = None) -> dict:
    """Mark an open flag resolved (now), audited as flag_resolved in the same transaction; return it as stored.

    Raises:
        NotFoundError: no flag with that id.
        ConflictError: the flag was already resolved.
    """
    if isinstance(flag_id, bool) or not isinstance(flag_id, int) or flag_id < 1:
        raise InputError("flag: must be a whole number, 1 or more", {"field": "flag"})
    with transaction(db):
        row = db.execute(f"SELECT {_FLAG_COLUMNS} FROM flags WHERE id = ?", (flag_id,)).fetchone()  # noqa: S608
        if row is None:
            raise NotFoundError(f"flag: no flag with id {flag_id}", {"field": "flag"})
        if row["resolved"] is not None:
            raise ConflictError(f"flag: flag {flag_id} was already resolved on {row['resolved']}", {"field": "flag"})
        db.execute("UPDATE flags SET resolved = ? WHERE id = ?", (now(), flag_id))
        target = f"sop:{row['sop_id']}" + (f"#{row['anchor']}" if row["anchor"] else "")
        audit.record(db, "flag_resolved", actor=actor, target=target, client=client, details={"flag": flag_id})
        row = db.execute(f"SELECT {_FLAG_COLUMNS} FROM flags WHERE id = ?", (flag_id,)).fetchone()  # noqa: S608
    return dict(row)


def _marks(items: list[str]) -> str:
    """One placeholder per item, for ``IN (...)`` (the same SQL on both engines)."""
    return ", ".join("?" * len(items))
