"""Publishing under faults: a crash at each step, concurrent publishes, and commits made outside kb."""

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from kb import accounts, store
from kb.publishing import CRASH_AT_ENV, JOURNAL
from kb.search import Searcher
from kb.watch import Watcher
from kb.workflow import Workflow
from tests.conftest import ROOT, commit_all, full_sop, git, make_sop

TEXT = full_sop("pay-duplicate-charge", "Duplicate charges", "Zebraquux settlements are refunded within five days.")


def in_review(authoring, sop_id="pay-duplicate-charge", text=TEXT, author="ann") -> int:
    body = {"sop_id": sop_id, "markdown": text, "base_revision": authoring.revision(sop_id), "summary": "Edit"}
    draft = authoring.call("POST", "/api/v1/drafts", author, json=body).get_json()
    assert authoring.call("POST", f"/api/v1/drafts/{draft['id']}/submit", author).status_code == 200
    return draft["id"]


def user(authoring, name):
    db = store.connect(authoring.data)
    try:
        return accounts.get_user(db, name)
    finally:
        db.close()


def state(authoring):
    """HEAD, the revision the index serves, whether search finds the new text, and the working tree."""
    searcher = Searcher(authoring.settings)
    found = [h.sop_id for h in searcher.search("zebraquux", 3, "keyword").hits]
    return {
        "head": git(authoring.repo, "rev-parse", "HEAD").strip(),
        "indexed": searcher.document("pay-duplicate-charge")["revision"],
        "found": found == ["pay-duplicate-charge"],
        "dirty": git(authoring.repo, "status", "--porcelain").strip(),
    }


CRASH = """
from kb import accounts, store
from kb.config import load_settings
from kb.workflow import Workflow
settings = load_settings({{"CONTENT_DIR": {content!r}, "DATA_DIR": {data!r}}}, environ={{}})
db = store.connect(settings["DATA_DIR"])
approver = accounts.get_user(db, "bob")
db.close()
Workflow(settings).approve(approver, {draft})
"""


@pytest.mark.parametrize(
    "step, outcome",
    [
        ("journal", "rolled-back"),
        ("written", "rolled-back"),
        ("committed", "rolled-forward"),
        ("indexed", "rolled-forward"),
        ("recorded", None),
    ],
)
def test_a_crash_at_any_step_leaves_the_old_or_the_new_revision_whole(authoring, step, outcome):
    draft = in_review(authoring)
    before = state(authoring)
    script = CRASH.format(content=str(authoring.settings["CONTENT_DIR"]), data=str(authoring.data), draft=draft)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], env={**env, CRASH_AT_ENV: step}, cwd=ROOT, timeout=300
    )
    assert done.returncode == 75  # killed at that step
    assert (authoring.data / JOURNAL).exists() == (step != "recorded")
    assert Workflow(authoring.settings).recover() == outcome
    after = state(authoring)
    assert after["dirty"] == "" and not (authoring.data / JOURNAL).exists()
    status = authoring.call("GET", f"/api/v1/drafts/{draft}", "ann").get_json()
    if outcome == "rolled-back":
        assert after == before and status["status"] == "in_review"
        assert authoring.audit(action="publish_failed")[0]["outcome"] == "failed"
        retry = authoring.call("POST", f"/api/v1/drafts/{draft}/approve", "bob")  # the draft can be published again
        assert retry.status_code == 200 and state(authoring)["found"]
    else:
        assert after["head"] != before["head"] and after["indexed"] == after["head"] and after["found"]
        assert status["status"] == "published" and status["revision"] == after["head"]
        assert len(authoring.audit(action="published")) == 1


def test_two_concurrent_publishes_of_different_sops_both_land(authoring):
    first = in_review(authoring)
    other = full_sop(
        "payout-delayed",
        "Delayed creator payouts",
        "Quuxbarrow payouts arrive in two days.",
        business_line="creator-payouts",
        categories="[payouts/delayed]",
    )
    second = in_review(authoring, "payout-delayed", other, author="aldo")
    head = git(authoring.repo, "rev-parse", "HEAD").strip()
    results, errors = {}, []

    def approve(draft, approver):
        try:
            results[draft] = Workflow(authoring.settings).approve(user(authoring, approver), draft)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=approve, args=args) for args in ((first, "bob"), (second, "bea"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    log = git(authoring.repo, "log", "--format=%H", f"{head}..HEAD").split()
    assert sorted(log) == sorted(results.values()) and len(log) == 2
    searcher = Searcher(authoring.settings)
    assert [h.sop_id for h in searcher.search("zebraquux", 3, "keyword").hits] == ["pay-duplicate-charge"]
    assert [h.sop_id for h in searcher.search("quuxbarrow", 3, "keyword").hits] == ["payout-delayed"]


def test_a_commit_made_outside_kb_is_served_within_ten_seconds_and_bad_files_are_reported(authoring):
    sops = authoring.repo / "sops"
    searcher = Searcher(authoring.settings)
    watcher = Watcher(authoring.settings, Workflow(authoring.settings), interval=0.2)
    watcher.seen = git(authoring.repo, "rev-parse", "HEAD").strip()
    watcher.start()
    try:
        path = sops / "all" / "pay-card-declined.md"
        path.write_text(path.read_text().replace("The bank declined", "Flumbergast: the bank declined"))
        (sops / "all" / "broken.md").write_text(make_sop("broken", "Broken", "no headings here\n"))
        commit_all(authoring.repo, "merged pull request 42")
        started = time.monotonic()
        while time.monotonic() - started < 10:
            if searcher.search("flumbergast", 3, "keyword").hits:
                break
            time.sleep(0.1)
        assert [h.sop_id for h in searcher.search("flumbergast", 3, "keyword").hits] == ["pay-card-declined"]
    finally:
        watcher.stop()
        watcher.join(timeout=30)
    events = authoring.audit(action="external_change")
    assert len(events) == 1 and events[0]["outcome"] == "failed"
    assert events[0]["details"]["skipped"] == ["all/broken.md"]
    assert events[0]["details"]["commits"][0]["summary"] == "merged pull request 42"
    assert any("broken.md" in p for p in events[0]["details"]["problems"])


def test_the_watcher_does_not_report_kbs_own_publishes(authoring):
    watcher = Watcher(authoring.settings, Workflow(authoring.settings), interval=60)
    watcher.seen = git(authoring.repo, "rev-parse", "HEAD").strip()
    draft = in_review(authoring)
    assert authoring.call("POST", f"/api/v1/drafts/{draft}/approve", "bob").status_code == 200
    watcher.tick()
    assert authoring.audit(action="external_change") == []


def test_the_watcher_finishes_a_crashed_publish(authoring):
    draft = in_review(authoring)
    script = CRASH.format(content=str(authoring.settings["CONTENT_DIR"]), data=str(authoring.data), draft=draft)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    subprocess.run([sys.executable, "-c", script], env={**env, CRASH_AT_ENV: "committed"}, cwd=ROOT, timeout=300)
    Watcher(authoring.settings, Workflow(authoring.settings), interval=60).tick()
    assert not (authoring.data / JOURNAL).exists() and state(authoring)["found"]


# -- a full disk during a publish ------------------------------------------------------------------------------


def _fail_writes_to(monkeypatch, marker: str) -> None:
    """Make every atomic write whose temporary file's name contains marker fail as a full disk would."""
    import errno

    from kb import files

    real_write = os.write

    def write(fd, data):
        if marker in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(files.os, "write", write)


def _temporary_files(*folders) -> list:
    return [p for folder in folders for p in folder.rglob(".*.tmp")]


@pytest.mark.parametrize(
    "step, committed",
    [("journal", False), ("file", False), ("commit", False), ("index", True)],
)
def test_a_failed_write_at_any_publish_step_keeps_the_old_revision_and_a_retry_succeeds(
    authoring, monkeypatch, step, committed
):
    draft = in_review(authoring)
    before = state(authoring)
    lock = authoring.repo / ".git" / "index.lock"
    if step == "commit":
        lock.write_text("")  # git refuses to add or commit, as it does on a full disk or a stale lock
    else:
        marker = {"journal": ".publish.json.", "file": ".pay-duplicate-charge.md.", "index": ".manifest.json."}[step]
        _fail_writes_to(monkeypatch, marker)
    response = authoring.call("POST", f"/api/v1/drafts/{draft}/approve", "bob")
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"]["code"] == "storage_error"
    after = state(authoring)
    assert after["indexed"] == before["indexed"] and not after["found"]  # the old revision still serves
    assert _temporary_files(authoring.repo, authoring.data) == []  # nothing half written
    assert authoring.call("GET", f"/api/v1/drafts/{draft}", "ann").get_json()["status"] == "in_review"
    if committed:
        assert after["head"] != before["head"] and (authoring.data / JOURNAL).exists()  # recovery rolls forward
    else:
        assert after["head"] == before["head"] and not (authoring.data / JOURNAL).exists()
        assert git(authoring.repo, "status", "--porcelain", "--", "sops").strip() == ""
    monkeypatch.undo()
    lock.unlink(missing_ok=True)
    retry = authoring.call("POST", f"/api/v1/drafts/{draft}/approve", "bob")
    assert retry.status_code == 200, retry.get_json()
    final = state(authoring)
    assert final["found"] and final["indexed"] == final["head"] == retry.get_json()["revision"]
    assert not (authoring.data / JOURNAL).exists() and len(authoring.audit(action="published")) == 1


def test_a_publish_onto_a_really_full_disk_fails_cleanly_and_succeeds_once_there_is_room(sop_repo, data_dir, tmp_path):
    """Content and instance folders on a small tmpfs filled to the last byte: the publish fails whole."""
    from tests.conftest import Authoring

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        import shutil

        from kb.indexing.builder import build_index

        repo, data = mount / "content", mount / "instance"
        shutil.copytree(sop_repo, repo)
        shutil.copytree(data_dir, data)
        build_index(repo / "sops", data)
        authoring = Authoring(repo, data, {**authoring_settings(repo, data)})
        draft = in_review(authoring)
        before = state(authoring)
        filler = mount / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the disk to the last byte
        try:
            for size in (1024 * 1024, 4096, 1):
                try:
                    while os.write(fd, b"\0" * size):
                        pass
                except OSError:
                    pass
        finally:
            os.close(fd)
        response = authoring.call("POST", f"/api/v1/drafts/{draft}/approve", "bob")
        assert response.status_code == 503 and response.get_json()["error"]["code"] == "storage_error"
        after = state(authoring)
        assert after == before and not (data / JOURNAL).exists()
        assert _temporary_files(repo, data) == []
        filler.unlink()
        retry = authoring.call("POST", f"/api/v1/drafts/{draft}/approve", "bob")
        assert retry.status_code == 200 and state(authoring)["found"]
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def authoring_settings(repo, data) -> dict:
    from kb.config import load_settings

    return load_settings({"CONTENT_DIR": repo / "sops", "DATA_DIR": data}, environ={})


@pytest.mark.parametrize(
    "name, text",
    [
        ("month-13.md", make_sop("month-13", "Impossible date", "## Purpose\nx\n", effective="2026-13-45")),
        ("duplicate-key.md", make_sop("duplicate-key", "Twice", "## Purpose\nx\n", owner="a\nowner: b")),
        ("alias-bomb.md", make_sop("alias-bomb", "Bomb", "## Purpose\nx\n", tags="&a [x, x]\nx: *a")),
        ("no-headings.md", make_sop("no-headings", "Flat", "no headings here\n")),
    ],
)
def test_an_outside_commit_of_only_a_bad_file_is_logged_and_audited_and_the_rest_serves(authoring, caplog, name, text):
    """Nothing else changes, so no new generation is written: the skip is still logged, audited once, and
    drafts of other SOPs still work."""
    watchers = [Watcher(authoring.settings, Workflow(authoring.settings), interval=60) for _ in range(2)]
    for watcher in watchers:  # two server processes watching
        watcher.seen = git(authoring.repo, "rev-parse", "HEAD").strip()
    (authoring.repo / "sops" / "all" / name).write_text(text)
    commit_all(authoring.repo, f"add {name}")
    with caplog.at_level("ERROR", logger="kb.watch"):
        for watcher in watchers:
            watcher.tick()
        Watcher(authoring.settings, Workflow(authoring.settings), interval=60).tick()  # a third process's first look
    assert any(f"all/{name}" in record.getMessage() for record in caplog.records)
    events = authoring.audit(action="external_change")
    assert len(events) == 1 and events[0]["outcome"] == "failed" and events[0]["details"]["skipped"] == [f"all/{name}"]
    assert authoring.call("GET", "/api/v1/sops/pay-duplicate-charge").status_code == 200
    assert in_review(authoring)  # a draft of another SOP is created and submitted
