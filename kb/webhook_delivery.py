"""Delivering webhook events: claim a due delivery under a lease, POST it signed, record the answer, back off.

    pending --2xx--> delivered
    pending --any other answer, a redirect, a timeout, a refused address--> pending, due again after
            WEBHOOK_RETRY_SECONDS x 2^(attempt - 1) (at most BACKOFF_CAP_SECONDS), half of it random jitter;
            when no answer came at all, the hook's other pending deliveries wait as long
    pending --WEBHOOK_MAX_ATTEMPTS attempts spent--> failed
    pending --its hook removed (kb.webhooks.remove)--> cancelled

Claims: every server process runs a :class:`DeliveryWorker` thread with SENDERS senders (``kb webhooks deliver``
runs the same :func:`deliver_due` once). A sender claims one delivery at a time in a ``BEGIN IMMEDIATE``
transaction: it sets ``claimed_until`` (its lease) and ``claim`` (its token) and counts the attempt, so two
senders, in one process or many, never send the same attempt; the answer is recorded only while the token is
still the delivery's. A hook with an attempt in flight gets no second one, so a receiver that hangs holds one
sender and its later events wait. The lease outlasts an attempt (cut off after DEADLINE_FACTOR x WEBHOOK_TIMEOUT);
a worker that died mid-attempt leaves a lease that runs out, and then the next attempt is claimed. No database
transaction is open while a request is on the wire, and publishing only inserts rows: a receiver that hangs never
slows a publish.

HTTP: :mod:`http.client` from the standard library. Each attempt resolves the host again, checks every address
(kb.webhook_urls.resolve, against DNS rebinding) and connects to a checked address itself, with TLS verified against
the URL's host name; no proxy, no redirect followed. Doing the same with requests (not one of kb's own
dependencies; dev tools bring it) or httpx2 (present only as huggingface_hub's dependency) would mean reaching into
their connection pools' internals, for one POST per attempt.
"""

from __future__ import annotations

import http.client
import logging
import math
import random
import secrets
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from kb import __version__, store, webhook_urls, webhooks
from kb.database import Connection, Record
from kb.errors import InputError
from kb.redaction import redact

log = logging.getLogger(__name__)

DEADLINE_FACTOR = 3  # a whole attempt (connect, send, status line and headers) is cut off at 3 x WEBHOOK_TIMEOUT
LEASE_FACTOR = 4  # a claim's lease: 4 x the attempt's deadline (at least MIN_LEASE_SECONDS)
MIN_LEASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
MAX_ADDRESSES = 3  # addresses of one host tried in one attempt (each within the deadline; all within the lease)
BATCH = 100  # most attempts one run of deliver_due makes
SENDERS = 4  # attempts one server process makes at once (each sender claims on its own)
MAX_ERROR_CHARS = 300
USER_AGENT = f"kb-webhooks/{__version__}"


@dataclass(frozen=True)
class Answer:
    """How one attempt ended: the receiver's status code (None if none came) and what went wrong (None if 2xx)."""

    status: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """A 2xx answer."""
        return self.error is None and self.status is not None and 200 <= self.status < 300


# -- one attempt -----------------------------------------------------------------------------------------------
class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to one checked address, whatever the host name resolves to by now."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to one checked address; the certificate is verified against the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def _cut(connection: http.client.HTTPConnection, flag: threading.Event) -> None:
    """Past the deadline: shut the socket, so a receiver trickling bytes cannot hold the worker."""
    flag.set()
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def post(url: str, body: bytes, headers: dict[str, str], timeout: float, allow_private: bool) -> Answer:
    """POST body to url once: resolve and check the host, connect to a checked address, read the status."""
    scheme, host, port = webhook_urls.split_url(url)
    try:
        addresses = webhook_urls.resolve(host, port, allow_private)
    except InputError as error:
        return Answer(None, error.message.removeprefix("url: "))
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kind = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
    failure: Exception | None = None
    for address in addresses[:MAX_ADDRESSES]:
        connection = kind(host, port, address, timeout)
        cut = threading.Event()
        timer = threading.Timer(timeout * DEADLINE_FACTOR, _cut, (connection, cut))
        timer.daemon = True
        timer.start()
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            if not cut.is_set():  # (a cut can end the headers early, as if they were whole)
                return _judge(response)
        except (OSError, http.client.HTTPException) as error:
            failure = error
            if not cut.is_set() and connection.sock is not None:  # the receiver got the request: no other address
                return Answer(None, _describe(error, timeout))
        finally:
            timer.cancel()
            connection.close()
        if cut.is_set():
            return Answer(None, f"cut off after {timeout * DEADLINE_FACTOR:g} s without a whole answer")
    return Answer(None, f"could not connect to {host}: {_describe(failure, timeout)}")


def _judge(response: http.client.HTTPResponse) -> Answer:
    status = response.status
    if 200 <= status < 300:
        return Answer(status)
    if 300 <= status < 400:
        location = (response.getheader("Location") or "")[:200]
        return Answer(status, f"HTTP {status}: redirects are not followed (Location: {location})")
    return Answer(status, f"HTTP {status} {(response.reason or '')[:100]}".strip())


def _describe(error: Exception | None, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed: {error.reason or error}"
    return f"{type(error).__name__}: {error}" if error is not None else "no address"


def signed_headers(row: Record, body: bytes, at: float | None = None) -> dict[str, str]:
    """The request headers of one attempt, signed now."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-KB-Event": row["event"],
        "X-KB-Event-Id": row["event_id"],
        "X-KB-Delivery": str(row["id"]),
        "X-KB-Attempt": str(row["attempts"]),
        webhooks.SIGNATURE_HEADER: webhooks.signature(row["secret"], int(time.time() if at is None else at), body),
    }


# -- claims, answers, back-off ---------------------------------------------------------------------------------
def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(store.TIME_FORMAT)


def lease_seconds(timeout: float) -> int:
    """How long a claim holds a delivery: well past the longest an attempt can take."""
    return max(MIN_LEASE_SECONDS, math.ceil(timeout * DEADLINE_FACTOR * LEASE_FACTOR))


def backoff(attempt: int, base: float, rng: random.Random) -> int:
    """Seconds before the attempt after attempt number `attempt`: base x 2^(attempt-1), capped, half of it jitter."""
    delay = min(BACKOFF_CAP_SECONDS, base * 2 ** min(max(attempt - 1, 0), 30))
    return max(1, math.ceil(delay / 2 + rng.uniform(0, delay / 2)))


# Due: pending, its time come, not claimed (or its lease run out), its hook live and with no attempt in flight
# (one attempt per hook at a time, so a hook that hangs holds one sender, not all of them).
_DUE = (
    "SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
    "WHERE d.status = 'pending' AND d.next_attempt <= :now AND (d.claimed_until IS NULL OR d.claimed_until <= :now) "
    "AND w.removed IS NULL AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o WHERE o.webhook_id = d.webhook_id "
    "AND o.status = 'pending' AND o.claimed_until > :now) ORDER BY d.next_attempt, d.id LIMIT 1"
)


def claim(db: Connection, at: datetime, lease: int, max_attempts: int) -> Record | None:
    """Claim the delivery due first (counting its attempt) under a lease; None when nothing is due."""
    now = _stamp(at)
    if db.execute(_DUE, {"now": now}).fetchone() is None:
        return None  # nothing due: no write lock taken (every process polls)
    token = secrets.token_hex(12)
    # SQLite's BEGIN IMMEDIATE lets one claimer in at a time; on PostgreSQL the named lock does, so the due delivery
    # this claimer picks is never one another replica picked a moment before.
    with store.transaction(db, lock="kb.webhook_delivery.claim"):
        # A worker that died during its last allowed attempt leaves the delivery pending with its lease expired.
        db.execute(
            "UPDATE webhook_deliveries SET status = 'failed', claim = NULL, claimed_until = NULL, "
            "last_error = COALESCE(last_error, 'the worker stopped during the last attempt') "
            "WHERE status = 'pending' AND attempts >= ? AND claimed_until <= ?",
            (max_attempts, now),
        )
        claimed = db.execute(
            f"UPDATE webhook_deliveries SET claimed_until = :until, claim = :token, attempts = attempts + 1, "  # noqa: S608 - fixed text
            f"last_attempt = :now WHERE id = ({_DUE}) RETURNING id",
            {"until": _stamp(at + timedelta(seconds=lease)), "token": token, "now": now},
        ).fetchall()
        if not claimed:
            return None
        return db.execute(
            "SELECT d.*, w.url, w.secret FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
            "WHERE d.id = ?",
            (claimed[0]["id"],),
        ).fetchone()


def record(db: Connection, row: Record, answer: Answer, at: datetime, settings: dict, rng: random.Random) -> str:
    """Record an attempt's answer if the claim is still ours; return delivered, retrying, failed or lost."""
    error = None if answer.delivered else redact(answer.error or "no answer")[:MAX_ERROR_CHARS]
    next_attempt, delivered = row["next_attempt"], None
    if answer.delivered:
        outcome, delivered = "delivered", _stamp(at)
    elif row["attempts"] >= settings["WEBHOOK_MAX_ATTEMPTS"]:
        outcome = "failed"
    else:
        outcome = "retrying"
        wait = backoff(row["attempts"], settings["WEBHOOK_RETRY_SECONDS"], rng)
        next_attempt = _stamp(at + timedelta(seconds=wait))
    status = {"delivered": "delivered", "failed": "failed", "retrying": "pending"}[outcome]
    with store.transaction(db):
        changed = db.execute(
            "UPDATE webhook_deliveries SET status = ?, next_attempt = ?, claimed_until = NULL, claim = NULL, "
            "last_status = ?, last_error = ?, delivered = ? WHERE id = ? AND claim = ?",
            (status, next_attempt, answer.status, error, delivered, row["id"], row["claim"]),
        ).rowcount
        if changed and outcome == "retrying" and answer.status is None:
            # No answer at all (a timeout, a refused connection or address): the hook's other deliveries wait too,
            # so a receiver that is down costs one attempt per back-off, not one per event.
            db.execute(
                "UPDATE webhook_deliveries SET next_attempt = ? WHERE webhook_id = ? AND status = 'pending' "
                "AND next_attempt < ? AND claim IS NULL",
                (next_attempt, row["webhook_id"], next_attempt),
            )
    if not changed:
        return "lost"  # the hook was removed meanwhile (or the lease ran out and another worker claimed it)
    if outcome == "failed":
        log.warning("webhook delivery %s to hook %s failed for good: %s", row["id"], row["webhook_id"], error)
    return outcome


def deliver_due(
    settings: dict, at: datetime | None = None, rng: random.Random | None = None, limit: int = BATCH
) -> dict[str, int]:
    """Make every attempt due now (at most limit), one claim at a time; return {delivered, retrying, failed, lost}.

    at stands for the clock (tests pass a later time to reach a retry); signatures always use the real time.
    """
    rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
    counts = dict.fromkeys(("delivered", "retrying", "failed", "lost"), 0)
    timeout = settings["WEBHOOK_TIMEOUT"]
    allow_private = settings["WEBHOOK_ALLOW_PRIVATE"] == "on"
    with closing(store.connect(settings["DATA_DIR"])) as db:
        for _ in range(limit):
            row = claim(db, at or datetime.now(UTC), lease_seconds(timeout), settings["WEBHOOK_MAX_ATTEMPTS"])
            if row is None:
                break
            body = row["payload"].encode("utf-8")
            answer = post(row["url"], body, signed_headers(row, body), timeout, allow_private)
            counts[record(db, row, answer, at or datetime.now(UTC), settings, rng)] += 1
    return counts


class DeliveryWorker(threading.Thread):
    """Sends due webhook deliveries every WEBHOOK_INTERVAL seconds (one per server process), SENDERS at once."""

    def __init__(self, settings: dict, interval: float, senders: int = SENDERS):
        super().__init__(name="kb-webhooks", daemon=True)
        self.settings = settings
        self.interval = interval
        self.senders = senders
        self._stopping = threading.Event()

    def run(self) -> None:
        with ThreadPoolExecutor(self.senders, thread_name_prefix="kb-webhooks-send") as pool:
            while not self._stopping.wait(self.interval):
                for sender in [pool.submit(deliver_due, self.settings) for _ in range(self.senders)]:
                    try:
                        sender.result()
                    except Exception:  # noqa: BLE001 - the worker must outlive a bad tick (a locked or full database)
                        log.exception("delivering webhooks failed; retrying next tick")

    def stop(self) -> None:
        """Ask the thread to end after its current tick."""
        self._stopping.set()
