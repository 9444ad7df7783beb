"""Two kb replicas on this machine (issue 14, item 4): real `kb serve` processes with their own instance folders
and clones, on two ports, sharing a real PostgreSQL (Debian's, tests/conftest.py running_postgres), a real
redis-server and a bare git repository as the content remote.

The test acts as the load balancer: every request names its client in X-Forwarded-For (KB_PROXY_HOPS=1), a fresh
address unless a check needs one client. The replicas share one module-scoped cluster; each test uses its own
words, keys and drafts. The last test kills and restarts replica a.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from kb import accounts, published_drafts, store
from kb.indexing.builder import build_index
from kb.publishing import CRASH_AT_ENV
from tests.conftest import (
    NO_LIMITS,
    TINY_DOCS,
    bind_database,
    free_port,
    full_sop,
    git,
    init_repo,
    running_redis,
    seed_data,
)

SOP = "pay-duplicate-charge"
USERS = {"ada": "admin", "ann": "author", "aldo": "author", "bob": "approver", "bea": "approver", "agnes": "agent"}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
SHOWN_ONCE = re.compile(r'id="shown-once">([^<]+)<')
SERVE_WITHIN = 2.0  # seconds from a publish's answer until both replicas serve it (the bound)
_addresses = (f"10.{n // 62500 % 250}.{n // 250 % 250}.{n % 250 + 1}" for n in itertools.count(1))


class Replica:
    """One `kb serve` process group: its port, instance folder and clone, and its log."""

    def __init__(self, name: str, folder: Path, env: dict[str, str]):
        self.name, self.port, self.env = name, free_port(), env
        self.log = folder / f"serve-{name}.log"
        self.process: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, **extra: str) -> None:
        kb = Path(sys.executable).parent / "kb"
        with self.log.open("a") as handle:
            self.process = subprocess.Popen(
                [str(kb), "serve", "--port", str(self.port)],
                env={**self.env, **extra},
                stdout=handle,
                stderr=handle,
                start_new_session=True,  # its own process group: kill() takes the workers with the master
            )

    def wait_serving(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"replica {self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                if requests.get(self.url("/healthz"), timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        pytest.fail(f"replica {self.name} did not answer within {timeout:g} s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole replica, as a machine that dies."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def call(self, method: str, path: str, key: str | None = None, client: str | None = None, **kwargs):
        headers = {"X-Forwarded-For": client or next(_addresses), **kwargs.pop("headers", {})}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return requests.request(method, self.url(path), headers=headers, timeout=60, **kwargs)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, model_data, postgres_server):
    """PostgreSQL, Redis, a bare content remote and replicas a and b serving, with users and keys in the database."""
    folder = tmp_path_factory.mktemp("replicas")
    init_repo(folder / "source", TINY_DOCS)
    remote = folder / "content.git"
    git(folder, "clone", "-q", "--bare", str(folder / "source"), str(remote))
    database_url = postgres_server()
    with running_redis(tmp_path_factory.mktemp("redis")) as redis_url:
        base = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
        base.update({f"KB_{name}": value for name, value in NO_LIMITS.items()})
        base.update(
            KB_DATABASE_URL=database_url,
            KB_CONTENT_REMOTE=str(remote),
            KB_RATE_LIMIT_STORAGE=redis_url,
            KB_RATE_LIMIT_FEEDBACK="4/minute",  # small, to see one limit across both replicas
            KB_SECRET_KEY="replica-test-secret-" + "x" * 40,  # one for all replicas, as docs/deploy.md says
            KB_PROXY_HOPS="1",
            KB_WORKERS="1",
            KB_WATCH_INTERVAL="0.5",
            KB_COOKIE_SECURE="off",
            KB_LOG_LEVEL="INFO",
        )
        replicas = {}
        for name in ("a", "b"):
            clone = folder / f"{name}-content"
            git(folder, "clone", "-q", str(remote), str(clone))
            data = seed_data(model_data, folder / f"{name}-data")
            bind_database(data, database_url)
            build_index(clone / "sops", data)
            env = {**base, "KB_CONTENT_DIR": str(clone / "sops"), "KB_DATA_DIR": str(data)}
            replicas[name] = Replica(name, folder, env)
            replicas[name].clone, replicas[name].data = clone, data
        keys = {}
        with closing(store.connect(replicas["a"].data)) as db, db:
            for name, role in USERS.items():
                accounts.add_user(db, name, role, f"{name}-password-123")
                keys[name] = accounts.create_key(db, name, "replica tests", accounts.role_scopes(role))[0]
        try:
            for replica in replicas.values():  # both at once: their start-up migrations meet on one database
                replica.start()
            for replica in replicas.values():
                replica.wait_serving()
            yield SimpleNamespace(remote=remote, keys=keys, database_url=database_url, **replicas)
        finally:
            for replica in replicas.values():
                replica.stop()


# -- helpers ----------------------------------------------------------------------------------------------------


def remote_log(remote: Path) -> list[str]:
    return git(remote, "log", "--format=%H", "main").split()


def text(word: str) -> str:
    return full_sop(SOP, "Duplicate charges", f"{word.capitalize()} settlements are refunded in five days.")


def revision(replica: Replica) -> str:
    return replica.call("GET", f"/api/v1/sops/{SOP}").json()["revision"]


def in_review(replica: Replica, keys: dict, word: str, author: str = "ann") -> int:
    body = {"sop_id": SOP, "markdown": text(word), "base_revision": revision(replica), "summary": f"Say {word}"}
    created = replica.call("POST", "/api/v1/drafts", keys[author], json=body)
    assert created.status_code == 201, created.text
    draft = created.json()["id"]
    assert replica.call("POST", f"/api/v1/drafts/{draft}/submit", keys[author]).status_code == 200
    return draft


def serves(replica: Replica, word: str, wanted: str) -> bool:
    """Whether the replica answers with revision wanted for the SOP and finds word in it."""
    if revision(replica) != wanted:
        return False
    found = replica.call("GET", f"/api/v1/search?q={word}&mode=keyword&k=3").json()["results"]
    return [r["sop_id"] for r in found] == [SOP]


def until_served(replicas: list[Replica], word: str, wanted: str, timeout: float = 30) -> dict[str, float]:
    """Seconds until each replica serves revision wanted (polled every 20 ms), from now."""
    started, took = time.monotonic(), {}
    while len(took) < len(replicas) and time.monotonic() - started < timeout:
        for replica in replicas:
            if replica.name not in took and serves(replica, word, wanted):
                took[replica.name] = time.monotonic() - started
        time.sleep(0.02)
    assert len(took) == len(replicas), f"only {sorted(took)} served {wanted[:12]} within {timeout:g} s"
    return took


def log_in(session: requests.Session, replica: Replica, name: str, client: str) -> None:
    form = session.get(replica.url("/login"), headers={"X-Forwarded-For": client}, timeout=30).text
    data = {"name": name, "password": f"{name}-password-123", "csrf_token": TOKEN.search(form)[1]}
    answer = session.post(replica.url("/login"), data=data, headers={"X-Forwarded-For": client}, timeout=30)
    assert answer.status_code == 200 and "kb_session" in session.cookies, answer.text[-500:]


def audit_rows(replica: Replica, keys: dict, **filters) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in {"limit": 1000, **filters}.items())
    answer = replica.call("GET", f"/api/v1/audit?{query}", keys["ada"])
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]


# -- the checks -------------------------------------------------------------------------------------------------


def test_a_key_made_on_one_replica_works_on_the_other_and_its_revocation_is_seen_at_the_next_request(cluster):
    a, b = cluster.a, cluster.b
    admin, browser = requests.Session(), next(_addresses)  # one browser; the balancer sends it to either replica
    log_in(admin, a, "ada", browser)
    form = admin.get(a.url("/admin/keys"), headers={"X-Forwarded-For": browser}, timeout=30).text
    fields = {"csrf_token": TOKEN.search(form)[1], "user": "agnes", "label": "replica bot", "scopes": ["search"]}
    made = admin.post(a.url("/admin/keys"), data=fields, headers={"X-Forwarded-For": browser}, timeout=30)
    assert made.status_code == 201, made.text[-500:]
    key = SHOWN_ONCE.search(made.text)[1]

    assert b.call("GET", "/api/v1/search?q=refund", key).status_code == 200  # made on a, known to b
    assert b.call("GET", "/api/v1/sops", key).status_code == 403  # and with its scopes: search only

    page = admin.get(b.url("/admin/keys"), headers={"X-Forwarded-For": browser}, timeout=30)
    assert page.status_code == 200 and "replica bot" in page.text  # the session made on a is good on b
    with closing(store.connect(cluster.a.data)) as db:
        [key_id] = [k["id"] for k in accounts.list_keys(db) if k["label"] == "replica bot"]
    confirm = {"csrf_token": TOKEN.search(page.text)[1], "confirm": "yes"}
    revoked = admin.post(
        b.url(f"/admin/keys/{key_id}/revoke"),
        data=confirm,
        headers={"X-Forwarded-For": browser},
        timeout=30,
        allow_redirects=False,
    )
    assert revoked.status_code == 303

    refused = a.call("GET", "/api/v1/search?q=refund", key)  # a's very next request with it
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"


def test_a_draft_made_on_one_is_published_on_the_other_and_both_serve_it_within_two_seconds(cluster):
    a, b, keys = cluster.a, cluster.b, cluster.keys
    draft = in_review(a, keys, "quokkaflux")
    assert b.call("GET", f"/api/v1/drafts/{draft}", keys["bob"]).json()["status"] == "in_review"
    approved = b.call("POST", f"/api/v1/drafts/{draft}/approve", keys["bob"])
    assert approved.status_code == 200, approved.text
    new = approved.json()["revision"]
    took = until_served([a, b], "quokkaflux", new)
    print(f"\nserved after the publish answered: a {took['a']:.2f} s, b {took['b']:.2f} s")
    assert max(took.values()) <= SERVE_WITHIN
    assert remote_log(cluster.remote)[0] == new
    assert a.call("GET", f"/api/v1/drafts/{draft}", keys["ann"]).json()["status"] == "published"


def test_two_simultaneous_publishes_of_one_sop_through_the_two_replicas_end_in_one_commit_and_one_409(cluster):
    a, b, keys = cluster.a, cluster.b, cluster.keys
    start = remote_log(cluster.remote)
    drafts = {"a": in_review(a, keys, "wombatine", "ann"), "b": in_review(b, keys, "platypode", "aldo")}
    approvers = {"a": "bob", "b": "bea"}
    answers: dict[str, requests.Response] = {}
    gate = threading.Barrier(2)

    def approve(replica: Replica) -> None:
        gate.wait()
        path = f"/api/v1/drafts/{drafts[replica.name]}/approve"
        answers[replica.name] = replica.call("POST", path, keys[approvers[replica.name]])

    threads = [threading.Thread(target=approve, args=(r,)) for r in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sorted(answer.status_code for answer in answers.values()) == [200, 409], {
        k: v.text[:300] for k, v in answers.items()
    }
    winner = next(name for name, answer in answers.items() if answer.status_code == 200)
    loser = "b" if winner == "a" else "a"
    assert remote_log(cluster.remote) == [answers[winner].json()["revision"], *start]  # exactly one commit
    error = answers[loser].json()["error"]
    assert error["code"] == "conflict" and error["details"]["diff"]
    status = a.call("GET", f"/api/v1/drafts/{drafts[loser]}", keys["ada"]).json()["status"]
    assert status == "in_review"  # the loser's draft waits, to be rebased
    word = {"a": "wombatine", "b": "platypode"}[winner]
    until_served([a, b], word, answers[winner].json()["revision"])
    for replica in (a, b):  # each clone is the remote's, clean
        clone = replica.clone
        assert git(clone, "rev-parse", "HEAD").strip() == remote_log(cluster.remote)[0]
        assert git(clone, "status", "--porcelain") == ""


def test_a_rate_limit_is_shared_by_the_replicas(cluster):
    a, b, keys = cluster.a, cluster.b, cluster.keys
    agent = next(_addresses)  # one agent, whose requests the balancer spreads over both
    body = {"sop_id": SOP, "anchor": "procedure", "helpful": True}
    statuses = [
        replica.call("POST", "/api/v1/feedback", keys["agnes"], client=agent, json=body).status_code
        for replica in (a, b, a, b, a, b, a, b)
    ]
    assert statuses == [201] * 4 + [429] * 4  # KB_RATE_LIMIT_FEEDBACK=4/minute, counted once in Redis


def test_the_audit_log_and_the_dashboard_count_requests_from_both_replicas(cluster):
    a, b, keys = cluster.a, cluster.b, cluster.keys
    query = "chargeback evidence deadline replicas"
    for replica in (a, a, b, b, b):
        assert replica.call("GET", f"/api/v1/search?q={query}").status_code == 200
    for replica in (a, b):  # either replica's dashboard counts all five
        analytics = replica.call("GET", "/api/v1/analytics", keys["ada"]).json()
        [row] = [r for r in analytics["top_queries"] if r["query"] == query]
        assert row["count"] == 5 and row["anonymous"] == 5

    clients = {name: next(_addresses) for name in ("a", "b")}
    for name, replica in (("a", a), ("b", b)):  # an anonymous write refused on each: audited with its client
        assert replica.call("POST", "/api/v1/drafts", client=clients[name], json={}).status_code == 401
    for replica in (a, b):
        rows = audit_rows(replica, keys, action="unauthenticated_write")
        assert set(clients.values()) <= {row["client"] for row in rows}
    published = audit_rows(b, keys, action="published")
    assert len(published) == len(remote_log(cluster.remote)) - 1  # every publish so far, on either replica


@pytest.mark.parametrize("step", ["committed", "pushed"])
def test_killing_a_replica_mid_publish_leaves_the_remote_the_database_and_the_other_replica_consistent(cluster, step):
    a, b, keys = cluster.a, cluster.b, cluster.keys
    word = {"committed": "narwhalite", "pushed": "axolotlish"}[step]
    start = remote_log(cluster.remote)
    a.stop()
    a.start(**{CRASH_AT_ENV: step})  # a's worker dies at that step of its next publish...
    a.wait_serving()
    draft = in_review(b, keys, word)
    with pytest.raises(requests.ConnectionError):
        a.call("POST", f"/api/v1/drafts/{draft}/approve", keys["bob"])
    a.kill()  # ...and then the whole replica, as a machine that dies

    if step == "committed":  # the commit never left a: the remote, the database and b are as before
        assert remote_log(cluster.remote) == start
        assert b.call("GET", f"/api/v1/drafts/{draft}", keys["ann"]).json()["status"] == "in_review"
        assert revision(b) == start[0]
        approved = b.call("POST", f"/api/v1/drafts/{draft}/approve", keys["bea"])  # b publishes it instead
        assert approved.status_code == 200, approved.text
    else:  # the commit reached the remote: b serves it and marks the draft published for a
        assert len(remote_log(cluster.remote)) == len(start) + 1
        until_served([b], word, remote_log(cluster.remote)[0])
        deadline = time.monotonic() + published_drafts.GRACE_S + 15  # b leaves a GRACE_S to record it first
        while b.call("GET", f"/api/v1/drafts/{draft}", keys["ann"]).json()["status"] != "published":
            assert time.monotonic() < deadline, "b did not mark the draft a published"
            time.sleep(0.2)
    assert len(remote_log(cluster.remote)) == len(start) + 1  # one commit, whoever made it
    head = remote_log(cluster.remote)[0]

    a.start()  # a comes back: it finishes or undoes its own publish, follows the remote and serves the head
    a.wait_serving()
    until_served([a, b], word, head)
    assert git(a.clone, "rev-parse", "HEAD").strip() == head and git(a.clone, "status", "--porcelain") == ""
    assert not (a.data / "publish.json").exists()
    rows = [r for r in audit_rows(a, keys, action="published") if r["details"]["draft"] == draft]
    assert len(rows) == 1 and rows[0]["details"]["revision"] == head  # recorded once
    if step == "pushed":
        assert rows[0]["details"]["by"] == "fetch"


# -- measures (printed with -s) ---------------------------------------------------------------------------------


def test_measure_publish_to_searchable_on_the_other_replica(cluster):
    """Median of 10 publishes through replica a's API until replica b's search finds the new word."""
    a, b, keys = cluster.a, cluster.b, cluster.keys
    figures = []
    for i in range(10):
        word = "zorblax" + "abcdefghij"[i] * 3
        draft = in_review(a, keys, word)
        approved = a.call("POST", f"/api/v1/drafts/{draft}/approve", keys["bob"])
        assert approved.status_code == 200, approved.text
        figures.append(until_served([b], word, approved.json()["revision"])["b"])
    print(
        f"\npublish-to-searchable on the other replica (two kb serve, KB_WATCH_INTERVAL=0.5, 10 publishes): "
        f"median {statistics.median(figures):.2f} s, min {min(figures):.2f} s, max {max(figures):.2f} s"
    )


def test_measure_http_throughput_of_two_replicas_against_one(cluster, tmp_path):
    """`kb bench --ports` under the same load (4 clients, 1 s per run): replica a alone, then a and b."""
    from kb.benchmark import DEFAULT_QUERIES

    if not DEFAULT_QUERIES.exists():
        pytest.skip(f"BANKING77 not found at {DEFAULT_QUERIES}")
    kb = Path(sys.executable).parent / "kb"
    reports = {}
    for label, ports in (("one", [cluster.a.port]), ("two", [cluster.a.port, cluster.b.port])):
        out = tmp_path / f"{label}.json"
        args = ["bench", "--ports", ",".join(map(str, ports)), "--duration", "1", "--clients", "4", "--json", str(out)]
        done = subprocess.run([str(kb), *args], env=cluster.a.env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        reports[label] = {r["name"]: r for r in json.loads(out.read_text())["results"] if "requests" in r}
    for label, rows in reports.items():
        assert all(row["errors"] == 0 and row["requests"] > 0 for row in rows.values()), (label, rows)
    lines = []
    for name in ("GET search hybrid, distinct", "GET search keyword, distinct", "GET search hybrid, repeated"):
        one, two = reports["one"].get(name), reports["two"].get(name)
        if one and two:
            lines.append(
                f"  {name} ({one['clients']} clients): {one['requests_per_s']} -> {two['requests_per_s']} req/s "
                f"(x{two['requests_per_s'] / one['requests_per_s']:.2f}), p50 {one['p50_ms']} -> {two['p50_ms']} ms"
            )
    print(
        "\nHTTP throughput, one replica -> two (kb bench --ports, 1 worker each, 2 cores shared):\n" + "\n".join(lines)
    )
