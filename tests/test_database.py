"""The workflow database on both engines (issue 14): KB_DATABASE_URL, migrations on PostgreSQL, feedback, flags,
the search log, the dashboard's queries and webhook deliveries on SQLite and PostgreSQL, the races two replicas can
run into (with two real processes), and a database that cannot be reached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kb import accounts, analytics, database, feedback, search_log, store, webhook_delivery, webhooks
from kb.config import load_settings
from kb.errors import ConfigError, StorageError
from tests.conftest import ROOT, bind_database, copy_data, free_port, running_postgres

SECRET = "s3cr3t-Pa55"


@pytest.fixture
def db(tmp_path, database_url):
    conn = store.connect(bind_database(tmp_path / "instance", database_url))
    yield conn
    conn.close()


# -- KB_DATABASE_URL -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"mysql://kb:{SECRET}@db/kb", "has the scheme 'mysql'"),
        (f"postgresql://kb:{SECRET}@/kb", "names no host"),
        (f"postgresql://kb:{SECRET}@db:5432", "names no database"),
        (f"postgresql://kb:{SECRET}@db:99999/kb", "is not a URL"),
        (f"postgresql://kb:{SECRET}@db:5432/kb extra", "spaces or control characters"),
        ("sqlite://relative.sqlite", "no SQLite file"),
    ],
)
def test_a_malformed_database_url_stops_kb_naming_the_setting_never_the_password(value, reason, tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings({"DATA_DIR": tmp_path, "DATABASE_URL": value}, environ={})
    assert "KB_DATABASE_URL" in str(error.value) and reason in str(error.value)
    assert SECRET not in str(error.value)


def test_the_password_is_masked():
    assert database.mask(f"postgresql://kb:{SECRET}@db:5432/kb") == "postgresql://kb:***@db:5432/kb"
    assert database.mask("postgresql://kb@db/kb") == "postgresql://kb@db/kb"


def test_an_sqlite_url_names_another_file(tmp_path):
    where = tmp_path / "elsewhere" / "state.sqlite"
    settings = load_settings({"DATA_DIR": tmp_path / "instance", "DATABASE_URL": f"sqlite://{where}"}, environ={})
    store.connect(settings["DATA_DIR"]).close()
    assert where.exists() and not (tmp_path / "instance" / "kb.sqlite").exists()


def test_an_unreachable_database_stops_kb_at_start_naming_the_setting(tmp_path, sop_repo):
    from kb.web import create_app

    url = f"postgresql://kb:{SECRET}@127.0.0.1:{free_port()}/kb"
    with pytest.raises(ConfigError) as error:
        create_app({"CONTENT_DIR": sop_repo / "sops", "DATA_DIR": tmp_path, "DATABASE_URL": url, "TESTING": True})
    assert "KB_DATABASE_URL" in str(error.value) and "cannot reach" in str(error.value)
    assert SECRET not in str(error.value) and "kb:***@127.0.0.1" in str(error.value)


# -- migrations on PostgreSQL --------------------------------------------------------------------------------------


def test_start_up_migrations_on_an_empty_postgresql_work_and_are_idempotent(postgres_server, tmp_path):
    url = postgres_server()
    where = database.parse_url(url)
    started = time.perf_counter()
    db = store.connect(tmp_path, where)
    took = time.perf_counter() - started
    print(f"\nstart-up with migrations on an empty PostgreSQL: {took * 1000:.0f} ms")
    store._MIGRATED.discard(url)  # a second start (another process) finds the schema current
    again = store.connect(tmp_path, where)
    try:
        assert again.execute("SELECT version FROM schema_version").fetchall() == [(store.SCHEMA_VERSION,)]
        tables = {r["table_name"] for r in again.execute("SELECT table_name FROM information_schema.tables")}
        assert {"users", "api_keys", "audit", "drafts", "tickets", "webhooks", "webhook_deliveries"} <= tables
        assert {"feedback", "flags", "search_log"} <= tables
    finally:
        db.close()
        again.close()


def test_two_replicas_starting_together_migrate_once(postgres_server, tmp_path):
    url = postgres_server()
    script = f"from kb import database, store; store.connect('.', database.parse_url({url!r})).close(); print('ok')"
    answers = _together([script, script], tmp_path)
    assert answers == ["ok", "ok"]
    with store.connect(tmp_path, database.parse_url(url)) as db:
        assert db.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 1


def test_a_newer_schema_is_refused(postgres_server, tmp_path):
    url = postgres_server()
    store.connect(tmp_path, database.parse_url(url)).close()
    import psycopg

    with psycopg.connect(url, autocommit=True) as raw:
        raw.execute("UPDATE schema_version SET version = 99")
    store._MIGRATED.discard(url)
    with pytest.raises(ConfigError, match="schema version 99"):
        store.connect(tmp_path, database.parse_url(url))


# -- every table on both engines -----------------------------------------------------------------------------------


def test_feedback_flags_and_the_dashboard_on_both_engines(db):
    known = {"pay-refund", "pay-chargeback"}
    stored = feedback.record_feedback(
        db, sop_id="pay-refund", anchor=None, helpful=False, reason="card 4111 1111 1111 1111", query="refund",
        actor="agnes", actor_kind="person", known_ids=known,
    )  # fmt: skip
    assert stored["helpful"] is False and "4111 1111 1111 1111" not in stored["reason"]
    flag = feedback.record_flag(
        db, sop_id="pay-chargeback", comment="outdated fee", actor="agnes", actor_kind="person", known_ids=known
    )
    assert [f["id"] for f in feedback.list_flags(db, ["pay-chargeback", "pay-refund"])] == [flag["id"]]
    assert [f["sop_id"] for f in feedback.list_feedback(db, ["pay-refund"])] == ["pay-refund"]
    for query, results in (("Refund  ", 0), ("refund", 0), ("chargeback fee", 3)):
        search_log.record(db, query, "person", results, None if not results else "pay-chargeback", "hybrid")
    today = datetime.now(UTC).date().isoformat()
    when = analytics.Period(today, today)
    documents = {"pay-refund": {"owner": "payments"}, "pay-chargeback": {"owner": "disputes"}}
    assert [(q["query"], q["count"]) for q in analytics.top_queries(db, when)] == [("refund", 2), ("chargeback fee", 1)]
    assert [(q["query"], q["count"]) for q in analytics.zero_result_queries(db, when)] == [("refund", 2)]
    assert [g.query for g in analytics.gap_queries(db, when)] == ["refund", "chargeback fee"]
    assert [u["sop_id"] for u in analytics.unhelpful(db, when, documents, owner="payments")] == ["pay-refund"]
    assert analytics.unhelpful(db, when, documents, owner="disputes") == []
    assert [(f["sop_id"], f["open"], f["raised"]) for f in analytics.flags(db, when, documents)] == [
        ("pay-chargeback", 1, 1)
    ]
    assert sum(day["card"] for day in analytics.redactions_per_day(db, when)) == 1
    feedback.resolve_flag(db, flag["id"], "olga")
    assert feedback.list_flags(db, ["pay-chargeback"]) == []


def test_the_search_log_and_webhook_deliveries_on_both_engines(db):
    row = search_log.record(db, "refund", "bot", 2, "pay-refund", "hybrid", "api")
    assert search_log.record_click(db, row, "pay-refund") and not search_log.record_click(db, row, "pay-refund")
    assert search_log.searches_per_day(db)[0]["bot"] == 1
    hook, _ = webhooks.register(db, "http://127.0.0.1:9/hook", ["sop.published"], "ada", allow_private=True)
    assert webhooks.enqueue(db, "sop.published", "pay-refund", "a" * 40) == 1
    assert webhooks.enqueue(db, "sop.published", "pay-refund", "a" * 40) == 0  # the same event twice: sent once
    claimed = webhook_delivery.claim(db, datetime.now(UTC), 60, 3)
    assert claimed["webhook_id"] == hook["id"] and claimed["attempts"] == 1
    assert webhook_delivery.claim(db, datetime.now(UTC), 60, 3) is None  # one attempt per hook at a time


# -- races between two replicas (two processes, one PostgreSQL) ----------------------------------------------------


def _together(scripts: list[str], folder: Path, timeout: float = 120) -> list[str]:
    """Run each script in its own Python process, released at the same moment (a script calls wait() where the race
    starts, after its imports; else it waits first); return each one's last output line."""
    go = folder / "go"
    prelude = (
        f"import time, pathlib\ndef wait():\n    while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.002)\n"
    )
    scripts = [s if "wait()" in s else "wait()\n" + textwrap.dedent(s) for s in scripts]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", prelude + textwrap.dedent(s)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=folder,
        )  # fmt: skip
        for s in scripts
    ]
    time.sleep(4.0)  # both imported and waiting
    go.touch()
    answers = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err[-2000:]
        answers.append(out.strip().splitlines()[-1])
    go.unlink()
    return answers


def test_two_approvals_of_one_draft_on_two_replicas_publish_once(postgres_server, sop_repo, data_dir, tmp_path):
    from kb.indexing.builder import build_index
    from tests.conftest import Authoring, full_sop

    url = postgres_server()
    sops = sop_repo / "sops"
    build_index(sops, data_dir)
    kb = Authoring(sop_repo, data_dir, load_settings({"CONTENT_DIR": sops, "DATA_DIR": data_dir, "DATABASE_URL": url}))
    sop_id = "pay-duplicate-charge"
    text = full_sop(sop_id, "Duplicate charges", "Two charges for one purchase are refunded within five days.")
    created = kb.call(
        "POST", "/api/v1/drafts", "ann",
        json={"sop_id": sop_id, "markdown": text, "summary": "Five days", "base_revision": kb.revision(sop_id)},
    )  # fmt: skip
    assert created.status_code == 201, created.get_json()
    draft = created.get_json()["id"]
    assert kb.call("POST", f"/api/v1/drafts/{draft}/submit", "ann").status_code == 200
    other = tmp_path / "replica-2"
    copy_data(data_dir, other)  # the second replica: its own instance folder (index, journal, file lock)
    heads_before = _git_count(sop_repo)
    script = """
        import json
        from kb import accounts, store
        from kb.config import load_settings
        from kb.errors import KbError
        from kb.workflow import Workflow
        settings = load_settings({{"CONTENT_DIR": {sops!r}, "DATA_DIR": {data!r}, "DATABASE_URL": {url!r}}})
        flow = Workflow(settings)
        with flow.db() as db:
            user = accounts.get_user(db, {name!r})
        wait()
        try:
            print(json.dumps({{"revision": flow.approve(user, {draft})}}))
        except KbError as error:
            print(json.dumps({{"error": error.code}}))
    """
    answers = _together(
        [
            script.format(sops=str(sops), data=str(data_dir), url=url, name="bob", draft=draft),
            script.format(sops=str(sops), data=str(other), url=url, name="bea", draft=draft),
        ],
        tmp_path,
    )
    outcomes = sorted(json.loads(a).get("error", "published") for a in answers)
    assert outcomes == ["conflict", "published"], answers
    assert _git_count(sop_repo) == heads_before + 1  # one commit
    assert kb.call("GET", f"/api/v1/drafts/{draft}", "bob").get_json()["status"] == "published"


def _git_count(repo: Path) -> int:
    return int(subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "HEAD"], capture_output=True,
                              text=True, check=True).stdout)  # fmt: skip


def test_a_key_revoked_by_one_replica_is_refused_by_the_other_at_its_next_check(postgres_server, tmp_path):
    url = postgres_server()
    where = database.parse_url(url)
    with store.connect(tmp_path, where) as db:
        accounts.add_user(db, "bot", "agent", "correct horse battery")
        key, row = accounts.create_key(db, "bot", "replica test")
    flag = tmp_path / "revoked"
    script = f"""
        import pathlib, time
        from kb import accounts, database, store
        db = store.connect(".", database.parse_url({url!r}))
        first = accounts.key_grant(db, {key!r}) is not None
        print("granted" if first else "refused", flush=True)
        while not pathlib.Path({str(flag)!r}).exists():
            time.sleep(0.01)
        print("granted" if accounts.key_grant(db, {key!r}) else "refused")
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True,
                               env=env, cwd=tmp_path)  # fmt: skip
    assert process.stdout.readline().strip() == "granted"
    with store.connect(tmp_path, where) as db:
        accounts.revoke_key(db, row["id"])
    flag.touch()
    out, _ = process.communicate(timeout=60)
    assert out.strip() == "refused"


def test_two_delivery_workers_never_claim_the_same_delivery(postgres_server, tmp_path):
    url = postgres_server()
    with store.connect(tmp_path, database.parse_url(url)) as db:
        for n in range(24):
            webhooks.register(db, f"http://127.0.0.1:9/hook-{n}", ["sop.published"], "ada", allow_private=True)
        assert webhooks.enqueue(db, "sop.published", "pay-refund", "b" * 40) == 24
    script = f"""
        import json
        from datetime import UTC, datetime
        from kb import database, store, webhook_delivery
        db = store.connect(".", database.parse_url({url!r}))
        got = []
        wait()
        while (row := webhook_delivery.claim(db, datetime.now(UTC), 600, 3)) is not None:
            got.append(row["id"])
        print(json.dumps(got))
    """
    first, second = (json.loads(a) for a in _together([script, script], tmp_path))
    assert not set(first) & set(second)
    assert len(first) + len(second) == 24


# -- an unreachable database while serving -------------------------------------------------------------------------


def test_while_the_database_is_down_writes_answer_503_and_searches_keep_working(library, tmp_path):
    from kb.web import create_app

    with running_postgres() as (fresh, stop):
        url = fresh()
        data = tmp_path / "instance"
        copy_data(library["DATA_DIR"], data)
        app = create_app(
            {"CONTENT_DIR": library["CONTENT_DIR"], "DATA_DIR": data, "DATABASE_URL": url, "TESTING": True}
        )
        with store.connect(data) as db:
            accounts.add_user(db, "ann", "author", "ann-password-123")
            key, _ = accounts.create_key(db, "ann", "t", ["search", "read", "write"])
        client = app.test_client()
        assert client.get("/api/v1/search?q=refund").status_code == 200
        stop()
        down = client.post(
            "/api/v1/drafts", json={"sop_id": "x", "markdown": "x", "summary": "x"},
            headers={"Authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert down.status_code == 503 and down.headers["Retry-After"]
        body = down.get_json()["error"]
        assert body["code"] == "storage_error" and "KB_DATABASE_URL" in body["message"]
        search = client.get("/api/v1/search?q=refund")  # anonymous: the index answers; the log is skipped
        assert search.status_code == 200 and search.get_json()["results"]
    with pytest.raises(StorageError):
        store.connect(data)


def test_a_return_on_one_replica_waits_for_a_publish_of_the_same_draft_on_the_other(
    postgres_server, sop_repo, data_dir, tmp_path
):
    """Return takes approve's locks: it waits for the publish under way on another replica, then finds the draft
    published (409) instead of landing mid-publish and leaving a served revision whose draft says "returned"."""
    import threading

    from kb import accounts
    from kb.errors import ConflictError
    from kb.indexing.builder import build_index
    from kb.workflow import Workflow
    from tests.conftest import Authoring, full_sop

    url = postgres_server()
    sops = sop_repo / "sops"
    build_index(sops, data_dir)
    kb = Authoring(sop_repo, data_dir, load_settings({"CONTENT_DIR": sops, "DATA_DIR": data_dir, "DATABASE_URL": url}))
    sop_id = "pay-duplicate-charge"
    text = full_sop(sop_id, "Duplicate charges", "Two charges for one purchase are refunded within five days.")
    body = {"sop_id": sop_id, "markdown": text, "summary": "Five days", "base_revision": kb.revision(sop_id)}
    draft = kb.call("POST", "/api/v1/drafts", "ann", json=body).get_json()["id"]
    assert kb.call("POST", f"/api/v1/drafts/{draft}/submit", "ann").status_code == 200
    other = tmp_path / "replica-2"
    copy_data(data_dir, other)
    here = Workflow(kb.settings)
    there = Workflow(load_settings({"CONTENT_DIR": sops, "DATA_DIR": other, "DATABASE_URL": url}))
    with here.db() as db:
        bob, bea = accounts.get_user(db, "bob"), accounts.get_user(db, "bea")
    returned: dict = {}

    def give_back() -> None:
        try:
            returned["draft"] = there.return_(bea, draft, "Please cite the card network rule.")
        except ConflictError as error:
            returned["error"] = error.message

    reindex, waiting = here.publisher.reindex, threading.Thread(target=give_back)

    def reindex_while_another_returns():
        waiting.start()
        waiting.join(timeout=1.0)
        returned["waited"] = waiting.is_alive()  # still blocked on the publish lock while this publish runs
        return reindex()

    here.publisher.reindex = reindex_while_another_returns
    revision = here.approve(bob, draft)
    waiting.join(timeout=60)
    assert returned["waited"] is True and "draft" not in returned
    assert f"draft {draft} is published" in returned["error"]
    assert kb.call("GET", f"/api/v1/drafts/{draft}", "bob").get_json()["status"] == "published"
    assert kb.revision(sop_id) == revision and kb.audit(action="draft_returned") == []
