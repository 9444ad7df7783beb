"""Outbound webhooks: who hears about published and retired SOPs, where they may be sent, and how events are signed.

An admin registers a URL for some of :data:`EVENTS` (``kb webhooks add``, /admin/webhooks); kb makes the hook's
secret and shows it once. When an SOP is published or retired (kb.publishing, and kb.watch for commits made outside
kb), :func:`enqueue` adds one delivery per subscribed hook in the publish's own transaction; kb.webhook_delivery
sends them from a background worker, so a slow or failing receiver never slows or fails a publish.

Where events may go (http and https, public addresses only unless KB_WEBHOOK_ALLOW_PRIVATE is on, never a cloud
metadata service; checked at registration and before every attempt) is kb.webhook_urls.

Signing, as Stripe does it: ``X-KB-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` with the
hook's secret as the key; a receiver recomputes it over the raw body, compares in constant time and refuses a
timestamp more than :data:`TOLERANCE_SECONDS` from its clock (see :func:`verify_signature` and the README).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time

from kb import audit
from kb.database import Connection, Record
from kb.errors import InputError, NotFoundError
from kb.store import now, transaction
from kb.webhook_urls import check_url

log = logging.getLogger(__name__)

EVENTS = ("sop.published", "sop.retired")
STATUSES = ("pending", "delivered", "failed", "cancelled")
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SIGNATURE_HEADER = "X-KB-Signature"
TOLERANCE_SECONDS = 300  # how far from its clock a receiver should accept a signature's timestamp
MAX_HOOKS = 100  # live hooks at once: every publish enqueues one delivery per subscribed hook
LOG_LIMIT = 200  # most deliveries one listing returns


# -- registration ----------------------------------------------------------------------------------------------
def check_events(events: object) -> list[str]:
    """The events named, in EVENTS order; at least one, each one of EVENTS.

    Raises:
        InputError: none, or one that is not an event.
    """
    if isinstance(events, str):
        events = events.replace(",", " ").split()
    if not isinstance(events, (list, tuple, set, frozenset)) or not events:
        raise InputError(f"events: name one or more of {', '.join(EVENTS)}", {"field": "events"})
    unknown = [str(e)[:40] for e in events if e not in EVENTS]
    if unknown:
        raise InputError(f"events: {unknown[0]!r} is not one of {', '.join(EVENTS)}", {"field": "events"})
    return [e for e in EVENTS if e in events]


def _hook(row: Record) -> dict:
    """A hook as shown to admins: never its secret."""
    return {
        "id": row["id"],
        "url": row["url"],
        "events": row["events"].split(),
        "created_by": row["created_by"],
        "created": row["created"],
        "removed": row["removed"],
    }


def register(
    db: Connection, url: object, events: object, actor: str, allow_private: bool, client: str | None = None
) -> tuple[dict, str]:
    """Register a hook; return it and its secret (shown to the admin once). Audited, refusals too.

    Raises:
        InputError: a refused URL, unknown events, or MAX_HOOKS live hooks already.
    """
    try:
        url = check_url(url, allow_private)
        names = check_events(events)
        live = db.execute("SELECT COUNT(*) FROM webhooks WHERE removed IS NULL").fetchone()[0]
        if live >= MAX_HOOKS:
            raise InputError(f"url: {MAX_HOOKS} webhooks are registered; remove one first", {"field": "url"})
    except InputError as error:
        details = {"url": str(url)[:200], "error": error.message}
        audit.record(db, "webhook_added", actor=actor, outcome="failed", client=client, details=details)
        raise
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with transaction(db):
        cursor = db.execute(
            "INSERT INTO webhooks (url, events, secret, created_by, created) VALUES (?, ?, ?, ?, ?)",
            (url, " ".join(names), secret, actor, now()),
        )
        hook = _hook(db.execute("SELECT * FROM webhooks WHERE id = ?", (cursor.lastrowid,)).fetchone())
        details = {"url": url, "events": names}
        audit.record(db, "webhook_added", actor=actor, target=f"webhook:{hook['id']}", client=client, details=details)
    return hook, secret


def hooks(db: Connection, include_removed: bool = False) -> list[dict]:
    """The hooks, oldest first (live ones only unless include_removed)."""
    where = "" if include_removed else " WHERE removed IS NULL"
    return [_hook(r) for r in db.execute(f"SELECT * FROM webhooks{where} ORDER BY id")]  # noqa: S608 - fixed text


def remove(db: Connection, hook_id: object, actor: str, client: str | None = None) -> dict:
    """Remove a hook (kept for the log) and cancel its pending deliveries; audited, a refusal too.

    Raises:
        NotFoundError: no live hook with that id.
    """
    is_id = isinstance(hook_id, int) and not isinstance(hook_id, bool) and 0 < hook_id < 2**63
    shown = str(hook_id) if is_id else repr(str(hook_id)[:20])
    hook_id = hook_id if is_id else None  # not an id (or past SQLite's integers): matches no row
    with transaction(db):
        row = db.execute("SELECT * FROM webhooks WHERE id = ? AND removed IS NULL", (hook_id,)).fetchone()
        if row is not None:
            db.execute("UPDATE webhooks SET removed = ? WHERE id = ?", (now(), row["id"]))
            cancelled = db.execute(
                "UPDATE webhook_deliveries SET status = 'cancelled', claimed_until = NULL, claim = NULL "
                "WHERE webhook_id = ? AND status = 'pending'",
                (row["id"],),
            ).rowcount
            details = {"url": row["url"], "cancelled_deliveries": cancelled}
            target = f"webhook:{row['id']}"
            audit.record(db, "webhook_removed", actor=actor, target=target, client=client, details=details)
            return _hook(db.execute("SELECT * FROM webhooks WHERE id = ?", (row["id"],)).fetchone())
    error = NotFoundError(f"no webhook with id {shown}", {"field": "id"})
    target, details = f"webhook:{shown}", {"error": error.message}
    audit.record(db, "webhook_removed", actor=actor, target=target, outcome="failed", client=client, details=details)
    raise error


# -- events ----------------------------------------------------------------------------------------------------
def event_id(event: str, sop_id: str, revision: str) -> str:
    """The id of an event: the same for the same event, SOP and revision, so it is enqueued (and sent) once."""
    digest = hashlib.sha256(f"{event}\n{sop_id}\n{revision}".encode()).hexdigest()
    return "evt_" + digest[:32]


def payload(event: str, sop_id: str, revision: str, base_url: str = "", at: str | None = None) -> dict:
    """The JSON event: {id, type, time, sop_id, revision, url}."""
    return {
        "id": event_id(event, sop_id, revision),
        "type": event,
        "time": at or now(),
        "sop_id": sop_id,
        "revision": revision,
        "url": f"{base_url.rstrip('/')}/sops/{sop_id}",
    }


def enqueue(db: Connection, event: str, sop_id: str, revision: str, base_url: str = "") -> int:
    """Add a pending delivery of the event to every live hook subscribed to it; return how many were added.

    Runs in the caller's transaction when one is open. A hook that already has this event gets no second one.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    body = payload(event, sop_id, revision, base_url)
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    added = 0
    with transaction(db):
        for hook in db.execute("SELECT id, events FROM webhooks WHERE removed IS NULL").fetchall():
            if event in hook["events"].split():
                added += db.execute(
                    "INSERT INTO webhook_deliveries (webhook_id, event_id, event, payload, status, "
                    "next_attempt, created) VALUES (?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT DO NOTHING",
                    (hook["id"], body["id"], event, text, body["time"], body["time"]),
                ).rowcount
    return added


def enqueue_quietly(db: Connection, events: list[tuple[str, str, str]], base_url: str = "") -> int:
    """enqueue() each (event, sop_id, revision) in a savepoint of the caller's transaction, never raising.

    For publishing: a failure here is logged and undone, and the publish goes on (its change is not lost; the
    event is). Returns how many deliveries were added.
    """
    added = 0
    try:
        with transaction(db):  # the caller's, or one of its own (PostgreSQL has no savepoint outside one)
            db.execute("SAVEPOINT webhook_events")
            try:
                for event, sop_id, revision in events:
                    added += enqueue(db, event, sop_id, revision, base_url)
            except Exception:
                db.execute("ROLLBACK TO webhook_events")
                added = 0
                raise
            finally:
                db.execute("RELEASE webhook_events")
    except Exception:  # noqa: BLE001 - a webhook must never fail a publish
        log.exception("enqueueing webhook events %s failed; the publish goes on without them", events)
        return 0
    return added


def deliveries(db: Connection, hook_id: int | None = None, status: str | None = None, limit: int = 50) -> list[dict]:
    """The delivery log, newest first: each delivery with its hook, event, SOP, status and last attempt."""
    if status is not None and status not in STATUSES:
        raise InputError(f"status: must be one of {', '.join(STATUSES)}, got {status[:20]!r}", {"field": "status"})
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LOG_LIMIT:
        raise InputError(f"limit: must be a whole number from 1 to {LOG_LIMIT}", {"field": "limit"})
    sql, args = "SELECT d.*, w.url FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE 1 = 1", []
    if hook_id is not None:
        sql, args = sql + " AND d.webhook_id = ?", [*args, hook_id]
    if status is not None:
        sql, args = sql + " AND d.status = ?", [*args, status]
    rows = db.execute(sql + " ORDER BY d.id DESC LIMIT ?", [*args, limit]).fetchall()
    entries = []
    for row in rows:
        body = json.loads(row["payload"])
        entries.append(
            {
                "id": row["id"],
                "webhook_id": row["webhook_id"],
                "url": row["url"],
                "event_id": row["event_id"],
                "event": row["event"],
                "sop_id": body.get("sop_id"),
                "revision": body.get("revision"),
                "status": row["status"],
                "attempts": row["attempts"],
                "next_attempt": row["next_attempt"] if row["status"] == "pending" else None,
                "last_attempt": row["last_attempt"],
                "last_status": row["last_status"],
                "last_error": row["last_error"],
                "created": row["created"],
                "delivered": row["delivered"],
            }
        )
    return entries


# -- signatures ------------------------------------------------------------------------------------------------
def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-KB-Signature header value: ``t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``."""
    mac = hmac.new(secret.encode("utf-8"), str(int(timestamp)).encode("ascii") + b"." + body, hashlib.sha256)
    return f"t={int(timestamp)},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, header: str, body: bytes, tolerance: int = TOLERANCE_SECONDS, at: float | None = None
) -> bool:
    """What a receiver does: True if header signs body with secret and its timestamp is within tolerance of now."""
    fields: dict[str, list[str]] = {}
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if at is None else at) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
