"""The audit log: who did what to which object, when, from where, and how it ended.

Targets name objects as ``kind:id`` (``user:alice``, ``key:3``,
``sop:pay-duplicate-charge``, ``draft:12``, ``webhook:3``), optionally followed by ``/...`` or
``#...`` for a part of it; a target filter matches the object and its parts.
Card numbers are masked (kb.redaction.redact) in the actor, target, client and
every string of the details before anything is stored.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time

from kb.database import Connection, Record
from kb.errors import QueryError
from kb.redaction import redact, redact_data
from kb.store import TIME_FORMAT, now, transaction

ACTIONS = (
    "login",
    "login_failed",
    "logout",
    "session_expired",
    "user_added",
    "role_changed",
    "password_changed",
    "user_disabled",
    "user_enabled",
    "key_created",
    "key_revoked",
    "draft_created",
    "draft_edited",
    "draft_submitted",
    "draft_returned",
    "draft_approved",
    "published",
    "publish_failed",
    "restored",
    "permission_denied",
    "unauthenticated_write",
    "external_change",
    "webhook_added",
    "webhook_removed",
    "tickets_imported",
    "tickets_removed",
    "flag_resolved",
)
OUTCOMES = ("ok", "denied", "failed")
MAX_LIMIT = 1000
MAX_OFFSET = 2**62  # SQLite integers are 64-bit


def record(
    db: Connection,
    action: str,
    *,
    actor: str | None = None,
    target: str | None = None,
    outcome: str = "ok",
    client: str | None = None,
    details: dict | None = None,
) -> int:
    """Append one audit row (card numbers masked in actor, target, client and details) and return its id."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    # Numbers holding a card number become masked strings, so the text stays JSON.
    text = None if details is None else json.dumps(redact_data(details), ensure_ascii=False, sort_keys=True)
    row = [None if value is None else redact(str(value)) for value in (actor, target, client)]
    with transaction(db):
        cursor = db.execute(
            "INSERT INTO audit (at, actor, action, target, outcome, client, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (now(), row[0], action, row[1], outcome, row[2], text),
        )
    return cursor.lastrowid


def parse_moment(field: str, value: object, end_of_day: bool) -> str:
    """Turn a date or datetime (text or object) into the stored time format, in UTC."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value) if len(value.strip()) == 10 else datetime.fromisoformat(value)
        except ValueError:
            raise QueryError(
                f"{field}: must be a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM:SSZ), got {value!r}",
                {"field": field},
            ) from None
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    elif isinstance(value, date):
        moment = datetime.combine(value, time.max if end_of_day else time.min, UTC)
    else:
        raise QueryError(f"{field}: must be a date or a date and time", {"field": field})
    return moment.strftime(TIME_FORMAT)


def _count(field: str, value: object, low: int, high: int | None) -> int:
    try:
        if isinstance(value, bool) or isinstance(value, float):
            raise ValueError
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise QueryError(f"{field}: must be a whole number, got {value!r}", {"field": field}) from None
    if number < low or (high is not None and number > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise QueryError(f"{field}: must be {bounds}, got {number}", {"field": field})
    return number


def query(
    db: Connection,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    outcome: str | None = None,
    since: str | date | None = None,
    until: str | date | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict]:
    """Return audit rows matching every filter given, newest first, with details parsed."""
    where, params = [], []
    if action is not None:
        if action not in ACTIONS:
            raise QueryError(f"action: must be one of {', '.join(ACTIONS)}, got {action!r}", {"field": "action"})
        where.append("action = ?")
        params.append(action)
    if outcome is not None:
        if outcome not in OUTCOMES:
            raise QueryError(f"outcome: must be one of {', '.join(OUTCOMES)}, got {outcome!r}", {"field": "outcome"})
        where.append("outcome = ?")
        params.append(outcome)
    if actor is not None:
        where.append("actor = ?")
        params.append(redact(str(actor)))  # stored redacted: the name as typed finds its rows
    if target is not None:
        target = redact(str(target))
        where.append("(target = ? OR substr(target, 1, ?) IN (?, ?))")
        params += [target, len(target) + 1, target + "/", target + "#"]
    start = None if since is None else parse_moment("since", since, end_of_day=False)
    end = None if until is None else parse_moment("until", until, end_of_day=True)
    if start is not None and end is not None and end < start:
        raise QueryError("until: must not be before since", {"field": "until"})
    if start is not None:
        where.append("at >= ?")
        params.append(start)
    if end is not None:
        where.append("at <= ?")
        params.append(end)
    limit = _count("limit", limit, 1, MAX_LIMIT)
    offset = _count("offset", offset, 0, MAX_OFFSET)
    # Only the fixed fragments above are joined into the SQL; every value is a parameter.
    sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")  # noqa: S608
    rows = db.execute(sql + " ORDER BY at DESC, id DESC LIMIT ? OFFSET ?", [*params, limit, offset])
    return [_entry(row) for row in rows]


def _entry(row: Record) -> dict:
    entry = dict(row)
    entry["details"] = None if row["details"] is None else json.loads(row["details"])
    return entry
