"""Content through a git remote (KB_CONTENT_REMOTE): two replicas over two clones of one bare repository.

Real git, real bare repositories in temporary folders, the real index and model. A replica here is an
Authoring instance (tests/conftest.py) whose settings name the remote; its watcher runs tick by tick.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from contextlib import closing
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from kb import published_drafts, store, webhooks
from kb.cli import main as cli
from kb.config import load_settings
from kb.errors import ConfigError
from kb.indexing.builder import build_index
from kb.publishing import CRASH_AT_ENV, JOURNAL
from kb.search import Searcher
from kb.watch import Watcher
from kb.workflow import Workflow
from tests.conftest import (
    NO_LIMITS,
    ROOT,
    TINY_DOCS,
    Authoring,
    bind_database,
    full_sop,
    git,
    init_repo,
    seed_data,
)

SECRET = "s3cr3t-t0ken-77"
CREDENTIAL_URL = f"https://kbuser:{SECRET}@127.0.0.1:9/content.git"  # port 9: nothing listens, refused at once
SOP = "pay-duplicate-charge"


def replica(remote, folder, model_data, name: str) -> Authoring:
    """A replica: a clone of the remote, its own instance folder and index, users and keys per role."""
    repo = folder / f"{name}-content"
    git(folder, "clone", "-q", str(remote), str(repo))
    data = seed_data(model_data, folder / f"{name}-data")
    settings = load_settings({"CONTENT_DIR": repo / "sops", "DATA_DIR": data, "CONTENT_REMOTE": str(remote)}, {})
    settings.update(NO_LIMITS)
    Workflow(settings).publisher.follow()
    build_index(settings["CONTENT_DIR"], data)
    return Authoring(repo, data, settings)


@pytest.fixture
def replicas(tmp_path, model_data):
    """A bare remote holding the tiny SOPs, and replicas a and b over two clones of it."""
    init_repo(tmp_path / "source", TINY_DOCS)
    remote = tmp_path / "content.git"
    git(tmp_path, "clone", "-q", "--bare", str(tmp_path / "source"), str(remote))
    return SimpleNamespace(
        remote=remote, a=replica(remote, tmp_path, model_data, "a"), b=replica(remote, tmp_path, model_data, "b")
    )


def text(word: str, sop_id: str = SOP, **fields) -> str:
    return full_sop(
        sop_id, "Duplicate charges", f"{word.capitalize()} settlements are refunded in five days.", **fields
    )


def in_review(instance: Authoring, markdown: str, sop_id: str = SOP, author: str = "ann") -> int:
    body = {"sop_id": sop_id, "markdown": markdown, "base_revision": instance.revision(sop_id), "summary": "Edit"}
    created = instance.call("POST", "/api/v1/drafts", author, json=body)
    assert created.status_code == 201, created.get_json()
    draft = created.get_json()["id"]
    assert instance.call("POST", f"/api/v1/drafts/{draft}/submit", author).status_code == 200
    return draft


def approve(instance: Authoring, draft: int, approver: str = "bob"):
    return instance.call("POST", f"/api/v1/drafts/{draft}/approve", approver)


def remote_log(remote) -> list[str]:
    return git(remote, "log", "--format=%H", "main").split()


def head(instance: Authoring) -> str:
    return git(instance.repo, "rev-parse", "HEAD").strip()


def found(instance: Authoring, word: str) -> list[str]:
    return [hit.sop_id for hit in Searcher(instance.settings).search(word, 3, "keyword").hits]


def remote_of(instance: Authoring):
    return instance.app.extensions["kb"]["workflow"].publisher.remote


def before_push(instance: Authoring, monkeypatch, action) -> None:
    """Run action once, just before the replica's next push (after its checks): another replica's turn."""
    remote = remote_of(instance)
    push = remote.push

    def racing(commit):
        monkeypatch.setattr(remote, "push", push)
        action()
        return push(commit)

    monkeypatch.setattr(remote, "push", racing)


def watcher(instance: Authoring, interval: float = 60) -> Watcher:
    ticking = Watcher(instance.settings, Workflow(instance.settings), interval)
    ticking.seen = head(instance)
    return ticking


def draft_status(instance: Authoring, draft: int) -> str:
    return instance.call("GET", f"/api/v1/drafts/{draft}", "ann").get_json()["status"]


# -- publishing and serving across replicas ------------------------------------------------------------------


def test_a_publish_on_one_replica_is_pushed_and_the_other_serves_it_after_one_tick(replicas):
    a, b = replicas.a, replicas.b
    start = remote_log(replicas.remote)
    ticking = watcher(b)
    with closing(store.connect(b.data)) as db:  # b keeps its own database here: its hook hears of a's publish
        webhooks.register(db, "http://127.0.0.1:9/hook", ["sop.published"], "ada", allow_private=True)
    answer = approve(a, in_review(a, text("zebraquux")))
    assert answer.status_code == 200
    revision = answer.get_json()["revision"]
    assert remote_log(replicas.remote) == [revision, *start] and head(a) == revision
    assert found(a, "zebraquux") == [SOP] and found(b, "zebraquux") == []

    report = ticking.tick()
    assert report is not None and head(b) == revision
    assert found(b, "zebraquux") == [SOP] and b.revision(SOP) == revision
    assert b.audit(action="external_change") == []  # another replica's publish is no outside change
    with closing(store.connect(b.data)) as db:
        events = [json.loads(row["payload"]) for row in db.execute("SELECT payload FROM webhook_deliveries")]
    assert [(e["type"], e["sop_id"], e["revision"]) for e in events] == [("sop.published", SOP, revision)]


def test_two_publishes_of_the_same_sop_end_in_one_commit_and_one_409_with_the_diff(replicas, monkeypatch):
    a, b = replicas.a, replicas.b
    start = remote_log(replicas.remote)
    first, second = in_review(a, text("zebraquux")), in_review(b, text("quagmirex"))
    won = {}
    before_push(b, monkeypatch, lambda: won.update(answer=approve(a, first)))  # a publishes first

    answer = approve(b, second)
    assert won["answer"].status_code == 200 and answer.status_code == 409
    error = answer.get_json()["error"]
    assert error["details"]["current_revision"] == won["answer"].get_json()["revision"]
    assert "+Zebraquux settlements" in error["details"]["diff"]
    assert remote_log(replicas.remote) == [won["answer"].get_json()["revision"], *start]
    # b's local commit was dropped: its clone is the remote's, clean, and nothing of it is served
    assert head(b) == remote_log(replicas.remote)[0] and git(b.repo, "status", "--porcelain") == ""
    assert found(b, "quagmirex") == [] and draft_status(b, second) == "in_review"
    failed = b.audit(action="publish_failed")
    assert len(failed) == 1 and "moved on" in failed[0]["details"]["reason"]


def test_two_simultaneous_publishes_of_the_same_sop_through_two_replicas_end_in_one_commit_and_one_409(replicas):
    a, b = replicas.a, replicas.b
    start = remote_log(replicas.remote)
    drafts = {a: in_review(a, text("zebraquux")), b: in_review(b, text("quagmirex"))}
    answers = {}
    threads = [threading.Thread(target=lambda r=r: answers.update({r: approve(r, drafts[r])})) for r in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sorted(answer.status_code for answer in answers.values()) == [200, 409]
    assert len(remote_log(replicas.remote)) == len(start) + 1
    loser = next(r for r, answer in answers.items() if answer.status_code == 409)
    assert "diff" in answers[loser].get_json()["error"]["details"]
    assert git(loser.repo, "status", "--porcelain") == ""


def test_publishes_of_different_sops_both_land_the_second_retried_on_the_new_head(replicas, monkeypatch):
    a, b = replicas.a, replicas.b
    start = remote_log(replicas.remote)
    other = full_sop(
        "payout-delayed",
        "Delayed creator payouts",
        "Quuxbarrow payouts arrive in two days.",
        business_line="creator-payouts",
        categories="[payouts/delayed]",
    )
    first, second = in_review(a, other, "payout-delayed", author="aldo"), in_review(b, text("zebraquux"))
    won = {}
    before_push(b, monkeypatch, lambda: won.update(answer=approve(a, first)))

    answer = approve(b, second)
    assert won["answer"].status_code == 200 and answer.status_code == 200, answer.get_json()
    theirs, ours = won["answer"].get_json()["revision"], answer.get_json()["revision"]
    assert remote_log(replicas.remote) == [ours, theirs, *start]
    assert git(b.repo, "rev-parse", f"{ours}^").strip() == theirs  # committed again on the new head
    assert found(b, "zebraquux") == [SOP] and found(b, "quuxbarrow") == ["payout-delayed"]
    watcher(a).tick()
    assert found(a, "zebraquux") == [SOP]
    assert [row["details"]["draft"] for row in b.audit(action="published")] == [second]


# -- the remote out of reach ----------------------------------------------------------------------------------


def test_an_unreachable_remote_answers_503_with_retry_after_and_changes_nothing(replicas, monkeypatch):
    b, remote = replicas.b, replicas.remote
    hidden = remote.with_name("content.git.away")
    draft = in_review(b, text("zebraquux"))
    before = (head(b), remote_log(remote))

    remote.rename(hidden)  # unreachable before the publish starts: its fetch fails
    answer = approve(b, draft)
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0
    assert answer.get_json()["error"]["code"] == "storage_error"
    hidden.rename(remote)

    before_push(b, monkeypatch, lambda: remote.rename(hidden))  # unreachable between the commit and its push
    answer = approve(b, draft)
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0
    hidden.rename(remote)
    assert (head(b), remote_log(remote)) == before and git(b.repo, "status", "--porcelain") == ""
    assert found(b, "zebraquux") == [] and draft_status(b, draft) == "in_review"
    assert not (b.data / JOURNAL).exists()

    answer = approve(b, draft)  # the draft is still approvable
    assert answer.status_code == 200 and remote_log(remote)[0] == answer.get_json()["revision"]


def test_a_failed_fetch_is_logged_and_retried_while_the_index_keeps_serving(replicas, caplog):
    a, b, remote = replicas.a, replicas.b, replicas.remote
    ticking = watcher(b)
    assert approve(a, in_review(a, text("zebraquux"))).status_code == 200
    hidden = remote.with_name("content.git.away")
    remote.rename(hidden)
    with caplog.at_level(logging.ERROR, logger="kb"):
        assert ticking.tick() is None
    assert "fetching the content remote failed" in caplog.text
    assert found(b, "duplicate") == [SOP] and found(b, "zebraquux") == []  # the current index serves
    hidden.rename(remote)
    assert ticking.tick() is not None and found(b, "zebraquux") == [SOP]


CRASH = """
from kb import accounts, store
from kb.config import load_settings
from kb.workflow import Workflow
settings = load_settings({{"CONTENT_DIR": {content!r}, "DATA_DIR": {data!r}, "CONTENT_REMOTE": {remote!r}}}, {{}})
db = store.connect(settings["DATA_DIR"])
approver = accounts.get_user(db, "bob")
db.close()
Workflow(settings).approve(approver, {draft})
"""


def crash_while_publishing(instance: Authoring, remote, draft: int, step: str) -> None:
    """Approve draft on instance in a fresh interpreter that dies (exit 75) at step of the publish."""
    script = CRASH.format(
        content=str(instance.settings["CONTENT_DIR"]), data=str(instance.data), remote=str(remote), draft=draft
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], env={**env, CRASH_AT_ENV: step}, cwd=ROOT, timeout=300
    )
    assert done.returncode == 75


@pytest.mark.parametrize(("step", "outcome"), [("committed", "rolled-back"), ("pushed", "rolled-forward")])
def test_a_crash_before_the_push_rolls_back_and_after_it_rolls_forward(replicas, step, outcome):
    b, remote = replicas.b, replicas.remote
    draft = in_review(b, text("zebraquux"))
    start = remote_log(remote)
    crash_while_publishing(b, remote, draft, step)
    assert Workflow(b.settings).recover() == outcome
    assert head(b) == remote_log(remote)[0] and git(b.repo, "status", "--porcelain") == ""
    if outcome == "rolled-back":
        assert remote_log(remote) == start and draft_status(b, draft) == "in_review" and found(b, "zebraquux") == []
    else:
        assert len(remote_log(remote)) == len(start) + 1 and draft_status(b, draft) == "published"
        assert found(b, "zebraquux") == [SOP]


def test_a_replica_that_dies_after_its_push_has_its_draft_marked_published_by_the_replica_that_fetches(
    replicas, monkeypatch
):
    a, b = replicas.a, replicas.b
    monkeypatch.setattr(published_drafts, "GRACE_S", 0)  # no wait for the publisher to record its own publish
    bind_database(a.data, f"sqlite:///{b.data / store.DB_NAME}")  # one database for both, as replicas share one
    draft = in_review(b, text("zebraquux"))
    crash_while_publishing(b, replicas.remote, draft, "pushed")
    assert draft_status(b, draft) == "in_review"  # b died before recording it; the remote serves it

    assert watcher(a).tick() is not None  # a fetches b's commit and serves it
    assert found(a, "zebraquux") == [SOP] and draft_status(b, draft) == "published"
    [published] = b.audit(action="published")
    assert published["details"]["by"] == "fetch" and published["details"]["recovered"] is True
    assert published["actor"] == "bob" and published["details"]["revision"] == remote_log(replicas.remote)[0]

    assert Workflow(b.settings).recover() == "rolled-forward"  # b comes back: nothing is recorded twice
    assert len(b.audit(action="published")) == 1 and len(b.audit(action="draft_approved")) == 1


def test_a_pushed_commit_that_copies_kbs_message_marks_no_draft_published(replicas, monkeypatch, tmp_path):
    a, b = replicas.a, replicas.b
    monkeypatch.setattr(published_drafts, "GRACE_S", 0)
    bind_database(a.data, f"sqlite:///{b.data / store.DB_NAME}")
    draft = in_review(b, text("zebraquux"))
    outside = tmp_path / "outside"
    git(tmp_path, "clone", "-q", str(replicas.remote), str(outside))
    (outside / "sops" / "all" / f"{SOP}.md").write_text(text("forgedword"))  # not the draft's text
    git(outside, "add", "-A")
    message = f"Edit\n\nDraft {draft} for {SOP}.\n\nReviewed-by: bob <bob@kb.invalid>\n"
    forged = {**os.environ, "GIT_COMMITTER_NAME": "kb", "GIT_COMMITTER_EMAIL": "kb@kb.invalid"}
    subprocess.run(["git", "-C", str(outside), "commit", "-q", "-m", message], env=forged, check=True)
    git(outside, "push", "-q", "origin", "HEAD:main")

    assert watcher(a).tick() is not None and found(a, "forgedword") == [SOP]  # served, as any pushed commit
    assert draft_status(b, draft) == "in_review" and b.audit(action="published") == []


@pytest.mark.parametrize(("step", "outcome"), [("committed", "in_review"), ("pushed", "published")])
def test_a_replica_killed_mid_publish_starts_again_following_the_remote(replicas, step, outcome):
    b, remote = replicas.b, replicas.remote
    draft = in_review(b, text("zebraquux"))
    crash_while_publishing(b, remote, draft, step)
    assert Workflow(b.settings).publisher.follow() == remote_log(remote)[0]  # `kb serve` starting again
    assert head(b) == remote_log(remote)[0] and git(b.repo, "status", "--porcelain") == ""
    assert not (b.data / JOURNAL).exists() and draft_status(b, draft) == outcome
    assert len(remote_log(remote)) == (2 if step == "pushed" else 1)


# -- credentials and bad settings -------------------------------------------------------------------------------


def test_credentials_in_the_remote_never_show_in_answers_logs_or_audit_rows(replicas, caplog):
    b = replicas.b
    git(b.repo, "remote", "set-url", "origin", CREDENTIAL_URL)
    remote_of(b).url = CREDENTIAL_URL
    draft = in_review(b, text("zebraquux"))
    with caplog.at_level(logging.DEBUG, logger="kb"):
        answer = approve(b, draft)
        settings = {**b.settings, "CONTENT_REMOTE": CREDENTIAL_URL}
        watcher_ = Watcher(settings, Workflow(settings), 60)
        watcher_.tick()
        with pytest.raises(ConfigError) as refused:
            Workflow(settings).publisher.follow()
    assert answer.status_code == 503 and "Retry-After" in answer.headers
    assert "https://***@127.0.0.1:9/content.git" in answer.get_json()["error"]["message"]
    assert "KB_CONTENT_REMOTE" in refused.value.message and "***@127.0.0.1" in refused.value.message
    assert "fetching the content remote failed" in caplog.text and "***@127.0.0.1" in caplog.text
    shown = [answer.get_data(as_text=True), caplog.text, refused.value.message, json.dumps(b.audit())]
    assert not [where for where in shown if SECRET in where or "kbuser" in where]


@pytest.mark.parametrize(
    "value",
    [
        "ext::sh -c touch% /tmp/owned",
        "ext::sh",
        "--upload-pack=touch /tmp/owned",
        "relative/content.git",
        "ftp://example.com/content.git",
        f"https://kbuser:{SECRET}@/content.git",
        "https://example.com",
        "https://example.com/content.git?token=1",
        "file://otherhost/srv/content.git",
        "/srv/content\n.git",
    ],
)
def test_a_malformed_content_remote_is_refused_naming_the_setting(value):
    with pytest.raises(ConfigError) as refused:
        load_settings({"CONTENT_REMOTE": value}, environ={})
    assert "CONTENT_REMOTE" in refused.value.message and SECRET not in refused.value.message


@pytest.mark.parametrize(
    "value",
    [
        "/srv/kb/content.git",
        "file:///srv/kb/content.git",
        "ssh://git@git.example.com:2222/kb/content.git",
        "https://git.example.com/kb/content.git",
        "git@git.example.com:kb/content.git",
        "",
    ],
)
def test_the_forms_of_a_content_remote_are_accepted(value):
    assert load_settings({"CONTENT_REMOTE": value}, environ={})["CONTENT_REMOTE"] == value


def test_kb_index_stops_naming_the_setting_when_the_remote_is_malformed_or_out_of_reach(tmp_path, monkeypatch):
    monkeypatch.setenv("KB_CONTENT_DIR", str(tmp_path / "content"))
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    for value in ("ext::sh -c id", CREDENTIAL_URL, str(tmp_path / "missing.git")):
        monkeypatch.setenv("KB_CONTENT_REMOTE", value)
        result = CliRunner().invoke(cli, ["index"])
        assert result.exit_code == 1 and "CONTENT_REMOTE" in result.output, result.output
        assert SECRET not in result.output
    assert not (tmp_path / "data" / "generations").exists()


def test_start_up_clones_into_an_empty_folder_and_refuses_one_that_is_not_a_clone(replicas, tmp_path):
    remote = str(replicas.remote)

    def follow(content):
        settings = load_settings({"CONTENT_DIR": content, "DATA_DIR": tmp_path / "d", "CONTENT_REMOTE": remote}, {})
        return Workflow(settings).publisher.follow()

    (tmp_path / "empty").mkdir()
    assert follow(tmp_path / "empty") == remote_log(replicas.remote)[0]
    assert (tmp_path / "empty" / "sops" / "categories.yaml").exists()
    assert follow(tmp_path / "empty") == remote_log(replicas.remote)[0]  # a second start finds its clone

    init_repo(tmp_path / "other", {})
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "notes.md").write_text("not a clone")
    for folder, reason in ((tmp_path / "other", "no 'origin' remote"), (tmp_path / "loose", "not a git clone")):
        with pytest.raises(ConfigError) as refused:
            follow(folder)
        assert "KB_CONTENT_REMOTE" in refused.value.message and reason in refused.value.message
