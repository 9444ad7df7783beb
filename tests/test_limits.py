"""Rate limits (kb.web.limits): search, log-in, failed API keys and writes, per address and per credential.

Each test builds an app over the `authoring` instance with small limits, so it owns its counts.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kb.cli import main
from kb.config import load_settings
from kb.errors import ConfigError
from tests.conftest import free_port

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


@pytest.fixture
def limited(authoring):
    """Make an app over the authoring instance with these settings (rate limits) and return a client factory."""

    def make(**settings):
        from kb.web import create_app

        app = create_app({**authoring.settings, "TESTING": True, "COOKIE_SECURE": "off", **settings})

        def client(address: str = A):
            made = app.test_client()
            made.environ_base["REMOTE_ADDR"] = address
            return made

        return client

    return make


def login(client, name: str, password: str | None = None):
    form = client.get("/login").get_data(as_text=True)
    data = {"name": name, "password": password or f"{name.strip()}-password-123", "csrf_token": TOKEN.search(form)[1]}
    return client.post("/login", data=data)


def assert_limited_json(response, field: str) -> dict:
    """A 429 in the one error shape with a Retry-After in whole seconds; returns the error."""
    assert response.status_code == 429
    error = response.get_json()["error"]
    assert error["code"] == "rate_limited" and error["details"]["field"] == field
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 3600 and error["details"]["retry_after"] == retry_after
    return error


SEARCHES = {
    "api-get": lambda c: c.get("/api/v1/search?q=refund"),
    "api-post": lambda c: c.post("/api/v1/search", json={"query": "refund"}),
    "page": lambda c: c.get("/?q=refund"),
}


@pytest.mark.parametrize("endpoint", list(SEARCHES))
def test_a_search_limit_answers_429_with_retry_after_and_other_addresses_go_on(limited, endpoint):
    client = limited(RATE_LIMIT_SEARCH="3/minute")
    search = SEARCHES[endpoint]
    first = client(A)
    assert [search(first).status_code for _ in range(3)] == [200, 200, 200]
    refused = search(first)
    if endpoint == "page":
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "too many searches" in refused.get_data(as_text=True)
    else:
        assert "too many searches" in assert_limited_json(refused, "client")["message"]
    assert search(client(B)).status_code == 200


def test_the_three_search_endpoints_share_one_limit(limited):
    client = limited(RATE_LIMIT_SEARCH="3/minute")(A)
    assert [SEARCHES[name](client).status_code for name in SEARCHES] == [200, 200, 200]
    assert [SEARCHES[name](client).status_code for name in SEARCHES] == [429, 429, 429]
    assert client.get("/sops/pay-duplicate-charge").status_code == 200  # reading is not searching


def test_search_is_limited_per_api_key_across_addresses(authoring, limited):
    make = limited(RATE_LIMIT_SEARCH="3/minute")
    key = authoring.headers("ann")
    at_a, at_b = make(A), make(B)
    assert [at_a.get("/api/v1/search?q=refund", headers=key).status_code for _ in range(2)] == [200, 200]
    assert at_b.get("/api/v1/search?q=refund", headers=key).status_code == 200
    assert_limited_json(at_b.get("/api/v1/search?q=refund", headers=key), "client")  # the key's fourth
    assert at_b.get("/api/v1/search?q=refund").status_code == 200  # B's own third, anonymous
    assert at_b.get("/api/v1/search?q=refund").status_code == 429


def test_log_in_attempts_are_limited_per_address(limited):
    make = limited(RATE_LIMIT_LOGIN="3/minute")
    at_a = make(A)
    assert [login(at_a, "ann", "wrong-password-1").status_code for _ in range(3)] == [401, 401, 401]
    refused = login(at_a, "ann")  # the right password, but over the limit
    page = refused.get_data(as_text=True)
    assert refused.status_code == 429 and "Too many log-in attempts from this address" in page
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and '<form class="panel form"' in page
    assert at_a.get("/login").status_code == 200  # showing the form is not an attempt
    assert login(make(B), "ann").status_code == 303


@pytest.mark.parametrize("typed", ["ann", "  ann ", "\uff41\uff4e\uff4e"], ids=["same", "spaces", "full-width"])
def test_failed_log_ins_lock_a_name_only_from_the_address_they_came_from(authoring, limited, typed):
    make = limited(RATE_LIMIT_LOGIN="100/minute")
    stranger, owner = make(A), make(B)
    assert [login(stranger, "ann", "guess-guess-guess").status_code for _ in range(5)] == [401] * 5
    locked = login(stranger, typed, "ann-password-123")  # even the right password, from A, however the name is typed
    assert locked.status_code == 429 and "Too many failed log-ins for this name" in locked.get_data(as_text=True)
    assert 14 * 60 <= int(locked.headers["Retry-After"]) <= 15 * 60
    assert authoring.audit(action="login_failed")[0]["details"] == {"locked": True}
    assert authoring.audit(action="login_failed")[0]["client"] == A
    assert login(owner, "ann").status_code == 303  # the owner, from elsewhere, is not locked out
    assert login(stranger, "bob").status_code == 303  # other names from A are not either
    assert authoring.audit(action="login")[0]["client"] == A and authoring.audit(action="login")[1]["client"] == B


def test_failed_api_key_authentications_are_limited_per_address(authoring, limited):
    make = limited(RATE_LIMIT_LOGIN="2/minute")
    at_a = make(A)
    bad = {"Authorization": "Bearer kb_not-a-real-key"}
    assert [at_a.get("/api/v1/drafts", headers=bad).status_code for _ in range(2)] == [401, 401]
    assert_limited_json(at_a.get("/api/v1/drafts", headers=bad), "Authorization")
    assert_limited_json(at_a.get("/api/v1/drafts", headers=authoring.headers("ann")), "Authorization")
    assert len(authoring.audit(action="login_failed")) == 2  # refused unread: the flood stores nothing more
    assert at_a.get("/api/v1/search?q=refund").status_code == 200  # without a key, A is served
    assert make(B).get("/api/v1/drafts", headers=authoring.headers("ann")).status_code == 200
    assert make(B).get("/api/v1/drafts", headers={"Authorization": "Basic x"}).status_code == 401


def test_writes_are_limited_per_address_and_per_key(authoring, limited):
    make = limited(RATE_LIMIT_WRITE="2/minute")
    at_a, at_b = make(A), make(B)
    submit = "/api/v1/drafts/999/submit"
    assert [at_a.post(submit, headers=authoring.headers("ann")).status_code for _ in range(2)] == [404, 404]
    assert_limited_json(at_a.post(submit, headers=authoring.headers("bob")), "client")  # A is over
    assert_limited_json(at_b.post(submit, headers=authoring.headers("ann")), "client")  # ann's key is over
    assert at_b.post(submit, headers=authoring.headers("bob")).status_code == 404
    assert at_b.get("/api/v1/drafts", headers=authoring.headers("ann")).status_code == 200  # reads are not writes


def test_form_writes_are_limited_with_an_error_page(limited):
    browser = limited(RATE_LIMIT_WRITE="2/minute", RATE_LIMIT_LOGIN="100/minute")(C)
    login(browser, "ann")  # the log-in POST has its own limit
    page = browser.get("/sops/new").get_data(as_text=True)
    form = {"csrf_token": TOKEN.search(page)[1], "id": "x", "body": "## Purpose\n\nx\n"}
    assert browser.post("/drafts/preview", data=form).status_code == 200
    assert browser.post("/drafts/preview", data=form).status_code == 200
    refused = browser.post("/drafts/preview", data=form)
    assert refused.status_code == 429 and "too many changes" in refused.get_data(as_text=True)
    assert "Retry-After" in refused.headers


UNAUTHENTICATED_WRITES = [
    ("api-create", "POST", "/api/v1/drafts", {"json": {"sop_id": "x", "markdown": "x", "summary": "x"}}, 401),
    ("api-update", "PUT", "/api/v1/drafts/1", {"json": {"summary": "x"}}, 401),
    ("api-submit", "POST", "/api/v1/drafts/1/submit", {}, 401),
    ("api-approve", "POST", "/api/v1/drafts/1/approve", {}, 401),
    ("api-return", "POST", "/api/v1/drafts/1/return", {"json": {"comment": "x"}}, 401),
    ("api-restore", "POST", "/api/v1/sops/pay-duplicate-charge/restore", {"json": {"revision": "x"}}, 401),
    ("form-save", "POST", "/drafts/save", {"data": {"id": "x", "summary": "x"}}, 400),  # no session, no CSRF token
    ("form-preview", "POST", "/drafts/preview", {"data": {"body": "x"}}, 400),
    ("form-approve", "POST", "/drafts/1/approve", {"data": {}}, 400),
    ("form-restore", "POST", "/sops/pay-duplicate-charge/restore", {"data": {"revision": "x"}}, 400),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [row[1:] for row in UNAUTHENTICATED_WRITES],
    ids=[row[0] for row in UNAUTHENTICATED_WRITES],
)
def test_unauthenticated_write_attempts_are_refused_and_audited(authoring, limited, method, path, kwargs, status):
    client = limited()(A)
    drafts_before = authoring.audit(action="draft_created")
    assert client.open(path, method=method, **kwargs).status_code == status
    rows = authoring.audit(action="unauthenticated_write")
    assert len(rows) == 1
    assert rows[0]["outcome"] == "denied" and rows[0]["actor"] is None and rows[0]["client"] == A
    assert rows[0]["details"] == {"reason": "no credentials", "method": method, "path": path}
    assert authoring.audit(action="draft_created") == drafts_before


def test_unauthenticated_write_audit_rows_are_capped_per_address_and_the_rest_counted(authoring, limited):
    make = limited(RATE_LIMIT_AUDIT="3/2 seconds", RATE_LIMIT_WRITE="1000/minute")
    flood = make(A)
    assert {flood.post("/api/v1/drafts/1/submit").status_code for _ in range(10)} == {401}
    assert len(authoring.audit(action="unauthenticated_write")) == 3
    assert make(B).post("/api/v1/drafts/1/submit").status_code == 401  # another address has its own cap
    assert [row["client"] for row in authoring.audit(action="unauthenticated_write")] == [B, A, A, A]
    time.sleep(2.1)
    assert flood.post("/api/v1/drafts/1/submit").status_code == 401
    newest = authoring.audit(action="unauthenticated_write")[0]
    assert newest["client"] == A and newest["details"]["not_stored"] == 7


def test_an_unreachable_redis_falls_back_to_per_process_limits_without_errors(limited, caplog):
    caplog.set_level(logging.WARNING)
    client = limited(RATE_LIMIT_SEARCH="2/minute", RATE_LIMIT_STORAGE=f"redis://127.0.0.1:{free_port()}/0")(A)
    started = time.monotonic()
    assert [client.get("/api/v1/search?q=refund").status_code for _ in range(3)] == [200, 200, 429]
    assert time.monotonic() - started < 5  # refused connections, no waits per request
    assert "falling back to in-memory storage" in caplog.text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATE_LIMIT_SEARCH", "lots"),
        ("RATE_LIMIT_SEARCH", "120"),
        ("RATE_LIMIT_LOGIN", "0/minute"),
        ("RATE_LIMIT_WRITE", "10/fortnight"),
        ("RATE_LIMIT_AUDIT", ""),
        ("RATE_LIMIT_STORAGE", "redis://"),
        ("RATE_LIMIT_STORAGE", "http://cache:6379"),
        ("RATE_LIMIT_STORAGE", "memcached://cache:11211"),
    ],
)
def test_bad_rate_limit_settings_stop_start_up_naming_the_setting(name, value):
    with pytest.raises(ConfigError, match=f"setting {name}: "):
        load_settings(environ={f"KB_{name}": value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATE_LIMIT_SEARCH", "10 per second; 100 per hour"),
        ("RATE_LIMIT_LOGIN", "5/minute"),
        ("RATE_LIMIT_STORAGE", "redis://cache.internal:6379/2"),
        ("RATE_LIMIT_STORAGE", "rediss://user:pw@cache.internal:6380/0"),
    ],
)
def test_good_rate_limit_settings_are_kept_as_given(name, value):
    assert load_settings(environ={f"KB_{name}": value})[name] == value


# -- two server processes: one limit when they share Redis, one each in memory ---------------------------


def _serve(authoring, port: int, storage: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "KB_CONTENT_DIR": str(authoring.settings["CONTENT_DIR"]),
        "KB_DATA_DIR": str(authoring.settings["DATA_DIR"]),
        "KB_WORKERS": "1",
        "KB_WATCH_INTERVAL": "0",
        "KB_RATE_LIMIT_SEARCH": "10/hour",
        "KB_RATE_LIMIT_STORAGE": storage,
    }
    kb = Path(sys.executable).parent / "kb"
    handle = log.open("w")
    return subprocess.Popen([str(kb), "serve", "--port", str(port)], env=env, stdout=handle, stderr=handle)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def _wait_until_serving(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"kb serve exited: {log.read_text()[-2000:]}")
        try:
            if _get(base + "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"kb serve did not answer within 60 s: {log.read_text()[-2000:]}")


@pytest.mark.parametrize(("storage", "allowed"), [("redis", 10), ("memory", 20)])
def test_two_server_processes_share_one_limit_through_redis(authoring, redis_server, tmp_path, storage, allowed):
    uri = redis_server if storage == "redis" else "memory://"
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"serve-{port}.log" for port in ports]
    servers = [_serve(authoring, port, uri, log) for port, log in zip(ports, logs, strict=True)]
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base, server, log in zip(bases, servers, logs, strict=True):
            _wait_until_serving(base, server, log)
        answers = [_get(bases[i % 2] + "/api/v1/search?q=refund") for i in range(24)]  # split across both
        statuses = [status for status, _ in answers]
        assert statuses.count(200) == allowed and statuses.count(429) == 24 - allowed
        assert all(1 <= int(headers["Retry-After"]) <= 3600 for status, headers in answers if status == 429)
        if storage == "redis":
            assert statuses == [200] * 10 + [429] * 14  # the 11th request, whichever process gets it, is refused
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)


def test_anonymous_reads_are_limited_per_address_but_health_checks_and_static_files_never(limited):
    client = limited(RATE_LIMIT_READ="3/minute")
    first, second = client(A), client(B)
    paths = ["/api/v1/sops", "/sops/pay-duplicate-charge", "/api/v1/sops/pay-duplicate-charge/revisions"]
    assert [first.get(path).status_code for path in paths] == [200, 200, 200]
    refused = first.get("/api/v1/categories")
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert first.get("/sops").status_code == 429  # pages too
    assert {first.get("/healthz").status_code for _ in range(5)} == {200}
    assert {first.get("/static/kb.css").status_code for _ in range(5)} == {200}
    assert second.get("/api/v1/sops").status_code == 200  # another address has its own count


# -- behind a load balancer: KB_PROXY_HOPS trusts its X-Forwarded-For (issue 14) ------------------------------


def _searches_until_refused(client, forwarded: str | None, most: int = 5) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    for count in range(most):
        if client.get("/api/v1/search?q=refund", headers=headers).status_code == 429:
            return count
    return most


def test_behind_one_proxy_each_forwarded_client_has_its_own_limit(limited):
    make = limited(RATE_LIMIT_SEARCH="2/minute", PROXY_HOPS=1)
    balancer = make(A)  # every request arrives from the load balancer's address
    assert _searches_until_refused(balancer, "203.0.113.7") == 2
    assert _searches_until_refused(balancer, "203.0.113.8") == 2  # another agent behind it: their own count
    assert _searches_until_refused(balancer, "198.51.100.1, 203.0.113.7") == 0  # the hop kb trusts is the last


def test_without_a_trusted_proxy_a_forged_x_forwarded_for_escapes_no_limit(limited):
    client = limited(RATE_LIMIT_SEARCH="2/minute")(A)
    assert _searches_until_refused(client, "203.0.113.7") == 2
    assert _searches_until_refused(client, "203.0.113.9") == 0  # the header is ignored: still address A


def test_behind_a_proxy_the_audit_log_records_the_forwarded_client(limited, authoring):
    client = limited(PROXY_HOPS=1)(A)
    client.post("/api/v1/drafts", json={}, headers={"X-Forwarded-For": "203.0.113.44"})
    assert authoring.audit(action="unauthenticated_write")[0]["client"] == "203.0.113.44"


def test_kb_serve_stops_at_start_when_the_redis_of_the_limits_cannot_be_reached(runner, redis_server):
    """Start-up never serves with half its state: an unreachable KB_RATE_LIMIT_STORAGE stops `kb serve`, named,
    without its password; a reachable one passes the check (once serving, an outage falls back to memory)."""
    from kb.web.limits import check_storage

    check_storage(load_settings(environ={"KB_RATE_LIMIT_STORAGE": redis_server}))  # answers PING: no error
    uri = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    result = runner.invoke(main, ["serve", "--port", str(free_port())], env={"KB_RATE_LIMIT_STORAGE": uri})
    assert result.exit_code == 1
    assert "KB_RATE_LIMIT_STORAGE: cannot reach redis://***@127.0.0.1" in result.output
    assert "hunter2" not in result.output and "Listening" not in result.output


@pytest.mark.parametrize("forwarded", ["<script>alert(1)</script>", "4111 1111 1111 1111", "x" * 5000, ""])
def test_behind_a_proxy_a_forwarded_client_that_is_no_address_counts_as_the_proxy(limited, authoring, forwarded):
    client = limited(PROXY_HOPS=1)(A)
    client.post("/api/v1/drafts", json={}, headers={"X-Forwarded-For": forwarded})
    assert authoring.audit(action="unauthenticated_write")[0]["client"] == A
