"""Signed webhooks: registration and its URL rules, events from publishing and outside commits, the signature a
receiver checks, delivery with back-off from a worker that never slows a publish, leases, the admin page, the CLI.

Receivers are real HTTP servers on 127.0.0.1 (http.server in a thread), so these instances set
KB_WEBHOOK_ALLOW_PRIVATE=on; the URL rules are tested with it off.
"""

from __future__ import annotations

import getpass
import json
import random
import re
import ssl
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from kb import store, webhook_delivery, webhooks
from kb.audit import query
from kb.cli import main
from kb.config import load_settings
from kb.errors import InputError, NotFoundError
from kb.indexing.builder import build_index
from kb.watch import Watcher
from kb.webhook_urls import check_url
from tests.conftest import Authoring, commit_all, full_sop, git

PUBLIC = "https://93.184.215.14/kb-events"  # a public address: no DNS needed
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
NEW_TEXT = full_sop("pay-duplicate-charge", "Duplicate charges", "A customer sees two charges for one purchase.")
RETIRED_TEXT = full_sop(
    "pay-card-declined",
    "Declined card payments",
    "The bank declined a card payment at checkout.",
    status="retired",
    categories="[payments/card-declined]",
)


# -- a real receiver -------------------------------------------------------------------------------------------
class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers from a script (default 200).

    Script items: a status code, "hang" (hold the request until .release is set, then 200) or "trickle" (send
    a byte every 0.1 s until .release is set).
    """

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.requests: list[dict] = []
        self.script: list[object] = []
        self.release = threading.Event()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                answer = receiver.script.pop(0) if receiver.script else 200
                if answer == "hang":
                    receiver.arrived.set()
                    receiver.release.wait(60)
                    answer = 200
                if answer == "trickle":  # a status line, then a header one byte at a time, never finished
                    try:
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                        while not receiver.release.wait(0.1):
                            self.wfile.write(b"z")
                            self.wfile.flush()
                    except OSError:
                        pass
                    return
                reason = receiver.reasons.get(answer)
                try:
                    self.send_response(answer, reason)
                    if 300 <= answer < 400:
                        self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up (timed out) already

            def log_message(self, *args):
                pass

        self.reasons: dict[int, str] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


# -- a kb instance whose hooks may reach loopback --------------------------------------------------------------
def instance_settings(sops, data, **overrides) -> dict:
    values = {
        "CONTENT_DIR": sops,
        "DATA_DIR": data,
        "WEBHOOK_ALLOW_PRIVATE": "on",
        "WEBHOOK_TIMEOUT": 0.5,
        "WEBHOOK_RETRY_SECONDS": 10,
        "WEBHOOK_MAX_ATTEMPTS": 3,
        "PUBLIC_URL": "https://kb.example.com",
        **overrides,
    }
    return load_settings(values, environ={})


@pytest.fixture
def kb(sop_repo, data_dir) -> Authoring:
    """The tiny library, indexed, served by an app with a user and key per role; webhooks may reach 127.0.0.1."""
    sops = sop_repo / "sops"
    build_index(sops, data_dir)
    return Authoring(sop_repo, data_dir, instance_settings(sops, data_dir))


def db_of(kb):
    return store.connect(kb.data)


def add_hook(kb, url: str, events=webhooks.EVENTS, allow_private: bool = True) -> tuple[dict, str]:
    db = db_of(kb)
    try:
        return webhooks.register(db, url, list(events), "ada", allow_private)
    finally:
        db.close()


def rows(kb, sql: str = "SELECT * FROM webhook_deliveries ORDER BY id", args=()) -> list[dict]:
    db = db_of(kb)
    try:
        return [dict(r) for r in db.execute(sql, args)]
    finally:
        db.close()


def publish(kb, markdown: str = NEW_TEXT, sop_id: str = "pay-duplicate-charge"):
    """Publish through the API (ann writes, bob approves); return the approve response."""
    body = {"sop_id": sop_id, "markdown": markdown, "base_revision": kb.revision(sop_id), "summary": "Edit"}
    draft = kb.call("POST", "/api/v1/drafts", "ann", json=body).get_json()
    assert kb.call("POST", f"/api/v1/drafts/{draft['id']}/submit", "ann").status_code == 200
    return kb.call("POST", f"/api/v1/drafts/{draft['id']}/approve", "bob")


def later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def stamp(moment: datetime) -> str:
    return moment.strftime(store.TIME_FORMAT)


# -- the event and its signature -------------------------------------------------------------------------------
def test_a_publish_sends_a_signed_event_the_receiver_verifies(kb, receiver):
    hook, secret = add_hook(kb, receiver.url)
    assert secret.startswith("whsec_") and len(secret) > 40
    response = publish(kb)
    assert response.status_code == 200
    revision = response.get_json()["revision"]
    assert [r["status"] for r in rows(kb)] == ["pending"]  # enqueued with the publish, sent by the worker

    assert webhook_delivery.deliver_due(kb.settings)["delivered"] == 1
    [request] = receiver.requests
    body, headers = request["body"], request["headers"]
    assert webhooks.verify_signature(secret, headers["X-KB-Signature"], body)
    event = json.loads(body)
    assert event == {
        "id": event["id"],
        "type": "sop.published",
        "time": event["time"],
        "sop_id": "pay-duplicate-charge",
        "revision": revision,
        "url": "https://kb.example.com/sops/pay-duplicate-charge",
    }
    assert event["id"].startswith("evt_") and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert headers["X-KB-Event"] == "sop.published" and headers["X-KB-Event-Id"] == event["id"]
    assert headers["X-KB-Attempt"] == "1" and headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("kb-webhooks/") and request["path"] == "/hook"
    [row] = rows(kb)
    assert (row["status"], row["attempts"], row["last_status"], row["last_error"]) == ("delivered", 1, 200, None)
    assert row["delivered"] and row["claim"] is None and row["webhook_id"] == hook["id"]


def test_a_signature_fails_for_another_body_secret_or_an_old_timestamp():
    body = b'{"id":"evt_1"}'
    header = webhooks.signature("whsec_a", 1_700_000_000, body)
    assert re.fullmatch(r"t=1700000000,v1=[0-9a-f]{64}", header)
    assert webhooks.verify_signature("whsec_a", header, body, at=1_700_000_000 + 299)
    assert not webhooks.verify_signature("whsec_a", header, body + b" ", at=1_700_000_000)
    assert not webhooks.verify_signature("whsec_b", header, body, at=1_700_000_000)
    assert not webhooks.verify_signature("whsec_a", header, body, at=1_700_000_000 + 301)  # a replay, too late
    assert not webhooks.verify_signature("whsec_a", "v1=" + header.split("v1=")[1], body)  # no timestamp
    assert not webhooks.verify_signature("whsec_a", "", body)


def test_retiring_an_sop_sends_sop_retired_to_the_hooks_that_asked(kb, receiver):
    published_only, _ = add_hook(kb, receiver.url, ["sop.published"])
    retired_only, _ = add_hook(kb, receiver.url + "?retired", ["sop.retired"])
    assert publish(kb).status_code == 200
    response = publish(kb, RETIRED_TEXT, "pay-card-declined")
    assert response.status_code == 200
    found = {(r["webhook_id"], r["event"], json.loads(r["payload"])["sop_id"]) for r in rows(kb)}
    assert found == {
        (published_only["id"], "sop.published", "pay-duplicate-charge"),
        (retired_only["id"], "sop.retired", "pay-card-declined"),
    }
    assert webhook_delivery.deliver_due(kb.settings)["delivered"] == 2
    retired = next(json.loads(r["body"]) for r in receiver.requests if r["path"] == "/hook?retired")
    assert retired["type"] == "sop.retired" and retired["revision"] == response.get_json()["revision"]


def test_a_publish_goes_on_when_enqueueing_its_event_fails(kb, receiver):
    add_hook(kb, receiver.url)
    db = db_of(kb)
    with db:  # a real SQLite failure inside the publish's transaction
        db.execute(
            "CREATE TRIGGER broken BEFORE INSERT ON webhook_deliveries BEGIN SELECT RAISE(ABORT, 'disk I/O'); END"
        )
    db.close()
    response = publish(kb)
    assert response.status_code == 200
    assert kb.revision("pay-duplicate-charge") == response.get_json()["revision"]
    assert kb.audit(action="published")[0]["target"] == "sop:pay-duplicate-charge"
    assert rows(kb) == []


# -- delivery: a hanging or failing receiver -------------------------------------------------------------------
def test_a_hanging_receiver_never_slows_a_publish(kb, receiver):
    settings = {**kb.settings, "WEBHOOK_TIMEOUT": 30.0}  # the worker would wait a long time for this receiver
    add_hook(kb, receiver.url)
    receiver.script = ["hang"]
    worker = webhook_delivery.DeliveryWorker(settings, interval=0.05)
    worker.start()
    try:
        response = publish(kb)
        assert response.status_code == 200
        # The publish has answered while its event is still undelivered: nothing waited for the receiver.
        assert not receiver.release.is_set()
        [row] = rows(kb)
        assert row["status"] == "pending" and row["last_status"] is None and row["last_error"] is None
        assert receiver.arrived.wait(30)  # and the worker is holding the request open meanwhile
        receiver.release.set()
        for _ in range(600):
            if rows(kb)[0]["status"] == "delivered":
                break
            time.sleep(0.05)
        assert rows(kb)[0]["status"] == "delivered"
    finally:
        worker.stop()
        receiver.release.set()
        worker.join(60)


def test_a_hanging_receiver_holds_one_sender_and_other_hooks_are_served(kb, receiver):
    healthy = Receiver()
    try:
        settings = {**kb.settings, "WEBHOOK_TIMEOUT": 30.0}
        add_hook(kb, receiver.url)
        add_hook(kb, healthy.url)
        receiver.script = ["hang"]
        db = db_of(kb)
        try:
            for n in range(5):
                webhooks.enqueue(db, "sop.published", f"sop-{n}", f"{n:040x}")
        finally:
            db.close()
        worker = webhook_delivery.DeliveryWorker(settings, interval=0.05, senders=2)
        worker.start()
        try:
            assert receiver.arrived.wait(30)
            for _ in range(600):
                if len(healthy.requests) == 5:
                    break
                time.sleep(0.05)
            assert len(healthy.requests) == 5  # all delivered while the other hook's first request hangs
            assert len(receiver.requests) == 1  # one attempt in flight per hook, not five
        finally:
            worker.stop()
            receiver.release.set()
            worker.join(60)
    finally:
        healthy.close()


def test_a_receiver_that_hangs_times_out_and_is_retried_with_backoff(kb, receiver):
    add_hook(kb, receiver.url)
    receiver.script = ["hang"]
    assert publish(kb).status_code == 200
    start = datetime.now(UTC)
    counts = webhook_delivery.deliver_due(kb.settings, at=start)
    assert counts == {"delivered": 0, "retrying": 1, "failed": 0, "lost": 0}
    [row] = rows(kb)
    assert row["status"] == "pending" and row["attempts"] == 1 and row["last_status"] is None
    assert "timed out after 0.5 s" in row["last_error"]
    # Back-off: WEBHOOK_RETRY_SECONDS (10) with jitter in its upper half.
    assert stamp(start + timedelta(seconds=5)) <= row["next_attempt"] <= stamp(start + timedelta(seconds=11))
    assert webhook_delivery.deliver_due(kb.settings, at=start)["retrying"] == 0  # not due yet
    assert len(receiver.requests) == 1

    receiver.release.set()
    assert webhook_delivery.deliver_due(kb.settings, at=start + timedelta(seconds=12))["delivered"] == 1
    first, second = receiver.requests
    assert second["headers"]["X-KB-Attempt"] == "2"
    assert first["headers"]["X-KB-Event-Id"] == second["headers"]["X-KB-Event-Id"]
    assert first["body"] == second["body"]
    [row] = rows(kb)
    assert (row["status"], row["attempts"], row["last_status"], row["last_error"]) == ("delivered", 2, 200, None)


def test_a_receiver_trickling_bytes_is_cut_off_at_the_deadline(kb, receiver):
    add_hook(kb, receiver.url)
    receiver.script = ["trickle"]  # every read gets a byte well within WEBHOOK_TIMEOUT (0.5 s)
    publish(kb)
    assert webhook_delivery.deliver_due(kb.settings)["retrying"] == 1
    assert rows(kb)[0]["last_error"] == "cut off after 1.5 s without a whole answer"


def test_a_receiver_that_does_not_answer_holds_back_its_other_deliveries(kb, receiver):
    add_hook(kb, receiver.url)
    receiver.script = ["hang"]
    db = db_of(kb)
    try:
        for n in range(4):
            webhooks.enqueue(db, "sop.published", f"sop-{n}", f"{n:040x}")
    finally:
        db.close()
    start = datetime.now(UTC)
    assert webhook_delivery.deliver_due(kb.settings, at=start)["retrying"] == 1  # one attempt, not four
    first, *others = rows(kb)
    assert first["attempts"] == 1 and {(r["attempts"], r["next_attempt"]) for r in others} == {
        (0, first["next_attempt"])
    }
    receiver.release.set()
    assert webhook_delivery.deliver_due(kb.settings, at=start + timedelta(seconds=12))["delivered"] == 4


def test_a_500_is_retried_and_the_200_after_it_delivers(kb, receiver):
    add_hook(kb, receiver.url)
    receiver.script = [500]
    publish(kb)
    start = datetime.now(UTC)
    assert webhook_delivery.deliver_due(kb.settings, at=start)["retrying"] == 1
    [row] = rows(kb)
    assert (row["last_status"], row["last_error"]) == (500, "HTTP 500 Internal Server Error")
    assert webhook_delivery.deliver_due(kb.settings, at=start + timedelta(seconds=11))["delivered"] == 1
    assert rows(kb)[0]["status"] == "delivered" and len(receiver.requests) == 2


def test_a_delivery_fails_for_good_after_the_last_attempt(kb, receiver):
    add_hook(kb, receiver.url)
    receiver.script = [503, 503, 503, 200]
    publish(kb)
    moment = datetime.now(UTC)
    outcomes = []
    for _ in range(4):
        counts = webhook_delivery.deliver_due(kb.settings, at=moment)
        outcomes.append(next((k for k, v in counts.items() if v), None))
        moment += timedelta(hours=2)
    assert outcomes == ["retrying", "retrying", "failed", None]  # WEBHOOK_MAX_ATTEMPTS is 3
    [row] = rows(kb)
    assert (row["status"], row["attempts"], row["last_status"]) == ("failed", 3, 503)
    assert len(receiver.requests) == 3


def test_redirects_are_not_followed(kb, receiver):
    add_hook(kb, receiver.url)
    receiver.script = [302]
    publish(kb)
    assert webhook_delivery.deliver_due(kb.settings)["retrying"] == 1
    assert [r["path"] for r in receiver.requests] == ["/hook"]
    assert rows(kb)[0]["last_error"] == "HTTP 302: redirects are not followed (Location: /elsewhere)"


@pytest.fixture
def tls_receiver(tmp_path):
    """A receiver over HTTPS with a self-signed certificate for localhost; yields (receiver, certificate path)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Receiver(tls=context)
    yield server, cert
    server.close()


def test_https_is_verified_against_the_host_name_while_connecting_to_the_checked_address(kb, tls_receiver, monkeypatch):
    receiver, cert = tls_receiver
    port = receiver.server.server_address[1]
    add_hook(kb, f"https://localhost:{port}/hook")
    publish(kb)
    start = datetime.now(UTC)
    assert webhook_delivery.deliver_due(kb.settings, at=start)["retrying"] == 1  # a certificate nobody vouches for
    assert rows(kb)[0]["last_error"] == "could not connect to localhost: TLS failed: CERTIFICATE_VERIFY_FAILED"
    assert receiver.requests == []
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now trusted, as a CA the machine knows would be
    assert webhook_delivery.deliver_due(kb.settings, at=start + timedelta(seconds=11))["delivered"] == 1
    assert receiver.requests[0]["headers"]["Host"] == f"localhost:{port}"


@pytest.mark.parametrize(
    "attempt, low, high",
    [(1, 15, 30), (2, 30, 60), (3, 60, 120), (8, 1800, 3600), (30, 1800, 3600)],
)
def test_backoff_doubles_with_jitter_up_to_an_hour(attempt, low, high):
    rng = random.Random(7)
    waits = [webhook_delivery.backoff(attempt, 30, rng) for _ in range(200)]
    assert low <= min(waits) and max(waits) <= high and len(set(waits)) > 1


# -- where events may go ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://127.0.0.1:8000/hook", "loopback address"),
        ("http://localhost/hook", "loopback address"),
        ("http://[::1]/hook", "loopback address"),
        ("http://2130706433/hook", "loopback address"),  # 127.0.0.1 written as one number
        ("http://0x7f.1/hook", "loopback address"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback address"),
        ("http://10.1.2.3/hook", "private address"),
        ("http://192.168.0.10/hook", "private address"),
        ("http://[fe80::1]/hook", "link-local address"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata host"),
        ("http://100.100.100.200/latest/meta-data/", "cloud metadata address"),
        ("http://0.0.0.0/hook", "not a unicast address"),
        ("ftp://93.184.215.14/hook", "must start with http:// or https://"),
        ("file:///etc/passwd", "must start with http:// or https://"),
        ("javascript:alert(1)", "must start with http:// or https://"),
        ("gopher://93.184.215.14:70/_hello", "must start with http:// or https://"),
        ("https://user:secret@93.184.215.14/hook", "must not carry a user name or password"),
        ("https://93.184.215.14@127.0.0.1/hook", "must not carry a user name or password"),
        ("https://93.184.215.14/hook#part", "must not have a #fragment"),
        ("https://93.184.215.14/<script>", "only the characters a URL allows"),
        ("https://93.184.215.14/hook\nX-Injected: 1", "only the characters a URL allows"),
        ("https://93.184.215.14/pay/4111111111111111", "holds a card number"),
        ("https://93.184.215.14:99999/hook", "not a valid address"),
        ("https://93.184.215.14:0/hook", "port 0"),
        ("https://93.184.215.14/100%", "a % must start an escape"),
        ("https:///hook", "names no host"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
        ("", "required"),
        ("https://93.184.215.14/" + "a" * 2000, "longer than 2000 characters"),
        (None, "required"),
    ],
)
def test_webhook_urls_are_refused(url, problem):
    with pytest.raises(InputError) as refused:
        check_url(url, allow_private=False)
    assert problem in refused.value.message and refused.value.message.startswith("url: ")
    assert refused.value.details == {"field": "url"}


@pytest.mark.parametrize(
    "url, allowed_with_the_setting",
    [
        ("http://127.0.0.1:8000/hook", True),
        ("http://localhost/hook", True),
        ("http://10.1.2.3/hook", True),
        ("http://[fe80::1]/hook", True),
        ("http://169.254.169.254/latest/meta-data/", False),
        ("http://[fd00:ec2::254]/", False),
        ("http://metadata.google.internal/", False),
        ("https://user:secret@127.0.0.1/hook", False),
    ],
)
def test_the_setting_allows_private_addresses_never_metadata(url, allowed_with_the_setting):
    if allowed_with_the_setting:
        assert check_url(url, allow_private=True) == url
    else:
        with pytest.raises(InputError):
            check_url(url, allow_private=True)


def test_public_addresses_are_accepted():
    assert check_url(f"  {PUBLIC}?q=1&b='x'  ", allow_private=False) == f"{PUBLIC}?q=1&b='x'"
    assert check_url("http://[2606:4700::1111]:8443/hook", allow_private=False)


def test_addresses_are_checked_again_before_every_attempt(kb, receiver):
    """A hook registered while loopback was allowed is not contacted once it is refused (as after a DNS change)."""
    add_hook(kb, receiver.url)
    publish(kb)
    strict = {**kb.settings, "WEBHOOK_ALLOW_PRIVATE": "off"}
    assert webhook_delivery.deliver_due(strict)["retrying"] == 1
    assert receiver.requests == []
    assert rows(kb)[0]["last_error"].startswith("127.0.0.1 is a loopback address")


# -- registration, removal, audit ------------------------------------------------------------------------------
def test_hooks_are_registered_listed_and_removed_with_audit(kb, receiver):
    hook, secret = add_hook(kb, PUBLIC, ["sop.retired"], allow_private=False)
    assert hook["events"] == ["sop.retired"] and hook["created_by"] == "ada"
    db = db_of(kb)
    try:
        listed = webhooks.hooks(db)
        assert listed == [hook] and "secret" not in listed[0] and secret not in json.dumps(listed)
        webhooks.enqueue(db, "sop.retired", "pay-card-declined", "a" * 40)
        removed = webhooks.remove(db, hook["id"], "ada")
        assert removed["removed"] and webhooks.hooks(db) == []
        assert webhooks.hooks(db, include_removed=True)[0]["id"] == hook["id"]
        assert [r["status"] for r in webhooks.deliveries(db)] == ["cancelled"]
        with pytest.raises(NotFoundError):
            webhooks.remove(db, hook["id"], "ada")
        with pytest.raises(InputError, match="events: 'sop.deleted' is not one of"):
            webhooks.register(db, PUBLIC, ["sop.deleted"], "ada", False)
    finally:
        db.close()
    audit = [
        (r["action"], r["outcome"], r["target"]) for r in reversed(kb.audit(actor="ada")) if "webhook" in r["action"]
    ]
    target = f"webhook:{hook['id']}"
    assert audit == [
        ("webhook_added", "ok", target),
        ("webhook_removed", "ok", target),
        ("webhook_removed", "failed", target),
        ("webhook_added", "failed", None),
    ]
    assert secret not in json.dumps(kb.audit())


def test_an_event_enqueued_twice_is_delivered_once(kb, receiver):
    add_hook(kb, receiver.url)
    db = db_of(kb)
    try:
        assert webhooks.enqueue(db, "sop.published", "pay-duplicate-charge", "b" * 40) == 1
        assert webhooks.enqueue(db, "sop.published", "pay-duplicate-charge", "b" * 40) == 0
    finally:
        db.close()
    webhook_delivery.deliver_due(kb.settings)
    assert len(receiver.requests) == 1


# -- two workers -----------------------------------------------------------------------------------------------
def test_two_workers_never_deliver_the_same_attempt(kb, receiver):
    add_hook(kb, receiver.url)
    add_hook(kb, receiver.url + "?second")
    db = db_of(kb)
    try:
        for n in range(15):
            webhooks.enqueue(db, "sop.published", f"sop-{n}", f"{n:040x}")
    finally:
        db.close()
    start = threading.Barrier(2)
    results = []

    def work():
        start.wait()
        results.append(webhook_delivery.deliver_due(kb.settings))

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    sent = [(r["headers"]["X-KB-Delivery"], r["headers"]["X-KB-Attempt"]) for r in receiver.requests]
    assert len(sent) == 30 and len(set(sent)) == 30
    assert sum(r["delivered"] for r in results) == 30
    assert {(r["status"], r["attempts"]) for r in rows(kb)} == {("delivered", 1)}


def test_a_lease_keeps_a_claim_until_it_expires_and_a_late_answer_is_dropped(kb, receiver):
    add_hook(kb, receiver.url)
    publish(kb)
    first, second = db_of(kb), db_of(kb)
    try:
        start = datetime.now(UTC)
        claimed = webhook_delivery.claim(first, start, 60, 3)
        assert claimed is not None and claimed["attempts"] == 1
        assert webhook_delivery.claim(second, start + timedelta(seconds=59), 60, 3) is None
        again = webhook_delivery.claim(second, start + timedelta(seconds=61), 60, 3)  # the first worker died
        assert again["id"] == claimed["id"] and again["attempts"] == 2 and again["claim"] != claimed["claim"]
        rng = random.Random(1)
        ok = webhook_delivery.Answer(200)
        assert webhook_delivery.record(first, claimed, ok, start, kb.settings, rng) == "lost"
        assert rows(kb)[0]["status"] == "pending"
        assert webhook_delivery.record(second, again, ok, start, kb.settings, rng) == "delivered"
        assert rows(kb)[0]["status"] == "delivered"
    finally:
        first.close()
        second.close()


# -- outside commits -------------------------------------------------------------------------------------------
def test_outside_commits_fire_events_once_across_processes(kb, receiver):
    add_hook(kb, receiver.url)
    workflow = kb.app.extensions["kb"]["workflow"]
    watchers = [Watcher(kb.settings, workflow, 60), Watcher(kb.settings, workflow, 60)]  # two server processes
    for watcher in watchers:
        watcher.tick()  # each learns HEAD
    sops = kb.repo / "sops"
    edited = sops / "all" / "pay-duplicate-charge.md"
    edited.write_text(edited.read_text() + "\n## Notes\nCheck the settlement date first.\n")
    (sops / "all" / "pay-card-declined.md").write_text(RETIRED_TEXT)
    git(kb.repo, "rm", "-q", "sops/creator-payouts/payout-delayed.md")
    head = commit_all(kb.repo, "edits merged from a pull request")
    for watcher in watchers:
        watcher.tick()
    found = sorted(
        (r["event"], json.loads(r["payload"])["sop_id"], json.loads(r["payload"])["revision"]) for r in rows(kb)
    )
    assert found == [
        ("sop.published", "pay-duplicate-charge", head),
        ("sop.retired", "pay-card-declined", head),
        ("sop.retired", "payout-delayed", head),
    ]
    assert webhook_delivery.deliver_due(kb.settings)["delivered"] == 3


def test_kb_own_publishes_are_not_announced_twice_by_the_watcher(kb, receiver):
    add_hook(kb, receiver.url)
    watcher = Watcher(kb.settings, kb.app.extensions["kb"]["workflow"], 60)
    watcher.tick()
    publish(kb)
    watcher.tick()
    assert len(rows(kb)) == 1


# -- the admin page --------------------------------------------------------------------------------------------
def login(client, name: str):
    form = client.get("/login").get_data(as_text=True)
    data = {"name": name, "password": f"{name}-password-123", "csrf_token": TOKEN.search(form).group(1)}
    assert client.post("/login", data=data).status_code == 303


def admin_page(kb):
    login(kb.client, "ada")
    page = kb.client.get("/admin/webhooks")
    assert page.status_code == 200
    return page.get_data(as_text=True)


@pytest.mark.parametrize("name", ["agnes", "ann", "bob"])
def test_the_admin_page_is_for_admins_only(kb, name):
    login(kb.client, name)
    assert kb.client.get("/admin/webhooks").status_code == 403
    form = kb.client.get("/drafts" if name != "agnes" else "/").get_data(as_text=True)
    token = TOKEN.search(form).group(1)
    response = kb.client.post("/admin/webhooks", data={"url": PUBLIC, "events": "sop.published", "csrf_token": token})
    assert response.status_code == 403
    assert rows(kb, "SELECT * FROM webhooks") == []
    assert kb.audit(action="permission_denied")[0]["actor"] == name


def test_the_admin_page_sends_anonymous_visitors_to_log_in_and_refuses_forms_without_csrf(kb):
    assert kb.client.get("/admin/webhooks").headers["Location"].startswith("/login")
    assert kb.client.post("/admin/webhooks", data={"url": PUBLIC}).status_code == 400
    assert kb.audit(action="unauthenticated_write")[0]["details"]["path"] == "/admin/webhooks"
    admin_page(kb)
    assert kb.client.post("/admin/webhooks", data={"url": PUBLIC, "events": "sop.published"}).status_code == 400
    assert kb.client.post("/admin/webhooks/1/remove").status_code == 400
    assert rows(kb, "SELECT * FROM webhooks") == []


def test_an_admin_adds_a_hook_sees_its_secret_once_and_removes_it(kb):
    page = admin_page(kb)
    token = TOKEN.search(page).group(1)
    data = {"url": PUBLIC, "events": ["sop.published", "sop.retired"], "csrf_token": token}
    added = kb.client.post("/admin/webhooks", data=data)
    assert added.status_code == 201
    html = added.get_data(as_text=True)
    secret = re.search(r"whsec_[A-Za-z0-9_-]+", html).group(0)
    assert "shown only this once" in html and added.headers["Cache-Control"] == "no-store"
    [hook] = rows(kb, "SELECT * FROM webhooks")
    assert hook["secret"] == secret and hook["events"] == "sop.published sop.retired"
    listing = kb.client.get("/admin/webhooks").get_data(as_text=True)
    assert PUBLIC in listing and "whsec_" not in listing
    removed = kb.client.post(f"/admin/webhooks/{hook['id']}/remove", data={"csrf_token": token})
    assert removed.status_code == 303 and removed.headers["Location"] == "/admin/webhooks"
    assert rows(kb, "SELECT removed FROM webhooks")[0]["removed"]
    assert [r["action"] for r in kb.audit(target=f"webhook:{hook['id']}")] == ["webhook_removed", "webhook_added"]
    assert kb.audit(action="webhook_added")[0]["client"] == "127.0.0.1"


def test_the_admin_page_escapes_hostile_urls_and_answers(kb, receiver):
    page = admin_page(kb)
    token = TOKEN.search(page).group(1)
    hostile = PUBLIC + "?q='onmouseover='alert(1)"
    added = kb.client.post("/admin/webhooks", data={"url": hostile, "events": "sop.published", "csrf_token": token})
    assert added.status_code == 201
    refused = kb.client.post(
        "/admin/webhooks", data={"url": PUBLIC + '"><script>alert(1)</script>', "csrf_token": token}
    )
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text
    assert "only the characters a URL allows" in text
    add_hook(kb, receiver.url)
    receiver.script = [500]
    receiver.reasons[500] = "<img src=x onerror=alert(2)>"
    publish(kb)
    webhook_delivery.deliver_due(kb.settings)
    listing = kb.client.get("/admin/webhooks").get_data(as_text=True)
    assert "'onmouseover='" not in listing and "&#39;onmouseover=&#39;alert(1)" in listing
    assert "<img src=x" not in listing and "&lt;img src=x onerror=alert(2)&gt;" in listing
    assert "HTTP 500" in listing and "sop.published" in listing


HOSTILE = [
    "",
    " ",
    "a" * 5000,
    "\u202ehttps://93.184.215.14/",
    "https://💥.example/",
    "https://" + "a" * 70 + ".example/hook",
    "http://[::1",
    "http://93.184.215.14:/",
    "http://93.184.215.14:0/",
    "http://%00/",
    "https://93.184.215.14/%ZZ",
    "4111 1111 1111 1111",
    "<script>alert(1)</script>",
    "sop.published",
    "' OR 1=1 --",
    "ｈｔｔｐｓ://93.184.215.14/",
]


@pytest.mark.parametrize("field", ["url", "events"])
def test_hostile_form_values_never_answer_5xx(kb, field):
    token = TOKEN.search(admin_page(kb)).group(1)
    for value in HOSTILE:
        data = {"url": PUBLIC, "events": "sop.published", "csrf_token": token, field: value}
        response = kb.client.post("/admin/webhooks", data=data)
        assert response.status_code < 500, (value[:40], response.status_code)
    for hook_id in ("0", "-1", "99999999999999999999999", "abc"):
        assert kb.client.post(f"/admin/webhooks/{hook_id}/remove", data={"csrf_token": token}).status_code == 404
    assert {r["url"] for r in rows(kb, "SELECT url FROM webhooks")} <= {PUBLIC, "http://93.184.215.14:/"}


def test_a_card_number_in_a_url_is_refused_and_never_echoed_or_stored(kb):
    page = admin_page(kb)
    token = TOKEN.search(page).group(1)
    url = PUBLIC + "?card=4111111111111111"
    refused = kb.client.post("/admin/webhooks", data={"url": url, "events": "sop.published", "csrf_token": token})
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "4111111111111111" not in text and "[card ending 1111]" in text and "holds a card number" in text
    assert "4111111111111111" not in json.dumps(kb.audit()) and rows(kb, "SELECT * FROM webhooks") == []


# -- the CLI ---------------------------------------------------------------------------------------------------
def cli(kb, *args: str, **env):
    environ = {"KB_CONTENT_DIR": str(kb.settings["CONTENT_DIR"]), "KB_DATA_DIR": str(kb.data)}
    environ |= {"KB_WEBHOOK_ALLOW_PRIVATE": "on", "KB_WEBHOOK_TIMEOUT": "0.5", **env}
    return CliRunner().invoke(main, list(args), env=environ)


def test_the_cli_adds_lists_delivers_and_removes_hooks(kb, receiver):
    added = cli(kb, "webhooks", "add", receiver.url, "--event", "sop.published")
    assert added.exit_code == 0, added.output
    secret = added.output.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and "shown only once" in added.output
    listed = cli(kb, "webhooks", "list")
    assert receiver.url in listed.output and "sop.published" in listed.output and secret not in listed.output
    [hook] = json.loads(cli(kb, "webhooks", "list", "--json").output)
    publish(kb)
    assert json.loads(cli(kb, "webhooks", "deliver", "--json").output)["delivered"] == 1
    assert webhooks.verify_signature(
        secret, receiver.requests[0]["headers"]["X-KB-Signature"], receiver.requests[0]["body"]
    )
    log = cli(kb, "webhooks", "deliveries", "--hook", str(hook["id"]))
    assert "sop.published" in log.output and "pay-duplicate-charge" in log.output and "delivered" in log.output
    assert json.loads(cli(kb, "webhooks", "deliveries", "--json").output)[0]["last_status"] == 200
    assert cli(kb, "webhooks", "remove", str(hook["id"])).exit_code == 0
    again = cli(kb, "webhooks", "remove", str(hook["id"]))
    assert again.exit_code == 1 and f"no webhook with id {hook['id']}" in again.output
    actor = "cli:" + getpass.getuser()
    db = db_of(kb)
    try:
        actions = [(r["action"], r["outcome"]) for r in query(db, actor=actor)]
    finally:
        db.close()
    assert actions == [("webhook_removed", "failed"), ("webhook_removed", "ok"), ("webhook_added", "ok")]


def test_the_cli_refuses_a_loopback_url_without_the_setting(kb):
    refused = cli(kb, "webhooks", "add", "http://127.0.0.1:9/hook", KB_WEBHOOK_ALLOW_PRIVATE="off")
    assert refused.exit_code == 1
    assert "url: 127.0.0.1 is a loopback address (KB_WEBHOOK_ALLOW_PRIVATE=on allows it)" in refused.output
    assert rows(kb, "SELECT * FROM webhooks") == []
    assert cli(kb, "webhooks", "add", PUBLIC, "--event", "sop.deleted").exit_code == 2


def test_events_of_fetched_commits_are_enqueued_outside_a_transaction_on_either_engine(database_url, tmp_path):
    """The watcher enqueues the events of commits another replica pushed with no transaction open: PostgreSQL
    refuses a SAVEPOINT outside one, so enqueue_quietly opens its own (it lost every such event there)."""
    from tests.conftest import bind_database

    db = store.connect(bind_database(tmp_path, database_url))
    try:
        webhooks.register(db, "http://127.0.0.1:9/kb", ["sop.published"], "ada", True)  # loopback: allowed here
        assert not db.in_transaction
        events = [("sop.published", "pay-duplicate-charge", "a" * 40)]
        assert webhooks.enqueue_quietly(db, events) == 1
        assert webhooks.enqueue_quietly(db, events) == 0  # the same event id again: each hook gets it once
        assert [d["sop_id"] for d in webhooks.deliveries(db)] == ["pay-duplicate-charge"]
    finally:
        db.close()
