"""Changes that reach the content repository from outside kb (a merged pull request, a push).

Each server process runs one :class:`Watcher` thread. Every few seconds it reads
the content repository's HEAD (one ``git rev-parse``); when HEAD has moved it
runs an incremental build, which indexes the valid documents, skips and reports
the invalid ones, and switches the generation that every process then serves.
Builds are serialised by the build lock, so when several processes see the same
commit, one builds and the others find the index up to date. The watcher also
finishes a publish that a crashed process left half done (kb.workflow).
"""

from __future__ import annotations

import fcntl
import logging
import subprocess
import threading
from pathlib import Path

from kb import audit, repository, store

log = logging.getLogger(__name__)
KB_COMMITTER = "kb@kb.invalid"


def outside_commits(content: Path, old: str | None, new: str) -> list[dict]:
    """Commits between old and new that kb did not make (its commits have kb as committer)."""
    span = f"{old}..{new}" if old else new
    done = subprocess.run(
        ["git", "-C", str(content), "log", "--format=%H%x00%ce%x00%an%x00%s", span, "--", "."],
        capture_output=True,
        text=True,
        timeout=repository.GIT_TIMEOUT,
        check=False,
    )
    commits = []
    for line in done.stdout.splitlines():
        commit, committer, author, subject = (line.split("\x00") + ["", "", ""])[:4]
        if committer != KB_COMMITTER:
            commits.append({"commit": commit, "author": author, "summary": subject})
    return commits


class Watcher(threading.Thread):
    """Polls the content repository and reindexes when its HEAD moves."""

    def __init__(self, settings: dict, workflow, interval: float):
        super().__init__(name="kb-watcher", daemon=True)
        self.settings = settings
        self.workflow = workflow
        self.interval = interval
        self.seen: str | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the watcher must outlive a bad build
                log.exception("watching the content repository failed")

    def stop(self) -> None:
        """Ask the thread to end after its current tick."""
        self._stopping.set()

    def tick(self) -> dict | None:
        """Check once; return the build report as a dict when a new generation was written."""
        self._recover_if_idle()
        content = self.settings["CONTENT_DIR"]
        head = repository.head(content)
        if head is None or head == self.seen:
            return None
        report = self.workflow.reindex()
        previous, self.seen = self.seen, head
        if report.up_to_date:
            return None
        outside = outside_commits(content, previous, head) if previous else []
        for problem in report.problems:
            log.warning("content change: %s: %s", problem.severity, problem)
        if outside:
            details = {
                "commits": outside[:20],
                "changed": report.changed,
                "removed": report.removed,
                "skipped": report.skipped,
                "problems": [str(p) for p in report.problems if p.severity == "error"][:50],
            }
            db = store.connect(self.settings["DATA_DIR"])
            try:
                with db:
                    outcome = "failed" if report.skipped else "ok"
                    audit.record(
                        db, "external_change", actor="git", target=f"commit:{head}", outcome=outcome, details=details
                    )
            finally:
                db.close()
        return report.to_dict()

    def _recover_if_idle(self) -> None:
        """Finish an interrupted publish, unless a publish is running now (its lock is held)."""
        data = self.settings["DATA_DIR"]
        if not (data / "publish.json").exists():
            return
        with open(data / ".publish.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            try:
                outcome = self.workflow.recover()
                if outcome:
                    log.warning("an interrupted publish was %s", outcome)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
