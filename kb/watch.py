"""Changes that reach the content repository from outside kb (a merged pull request, a push).

Each server process runs one :class:`Watcher` thread. Every few seconds it reads
the content repository's HEAD (one ``git rev-parse``); when HEAD has moved it
runs an incremental build, which indexes the valid documents, skips and reports
the invalid ones, and switches the generation that every process then serves.
Builds are serialised by the build lock, so when several processes see the same
commit, one builds and the others find the index up to date. The watcher also
finishes a publish that a crashed process left half done (kb.publishing).

A file that fails validation is skipped, logged and audited
(``external_change``, outcome ``failed``, naming the file and its problems)
once per commit; the rest of the library keeps serving. A tick that fails
(git, the disk, a build) is logged and retried on the next tick.

Outside commits fire webhook events too: a bot that cached an SOP needs to hear
of a change whoever made it. Each SOP file an outside commit touched makes
``sop.published`` (``sop.retired`` when its status is now retired, or the file
was deleted) at its last commit; a file skipped as invalid makes none. Every
process's watcher sees the same commits; an event's id is fixed by its type,
SOP and revision, so each hook gets it once (kb.webhooks.enqueue). A process
that starts after the commit (no previous HEAD seen) sends nothing for it.

With a content remote (KB_CONTENT_REMOTE, kb.remote) each tick first fetches
the remote and fast-forwards the clone (under the publish lock, skipped while a
publish runs), so new revisions from other replicas and from pushes to the
remote serve as outside commits do. Commits another replica published announce
their webhook events here too (the same event ids: a hook in a shared database
gets each once); they are no outside change and are not audited as one. A fetch
that fails is logged (credentials masked) and retried next tick; the current
index keeps serving.
"""

from __future__ import annotations

import logging
import threading
from contextlib import closing
from pathlib import Path

from kb import audit, repository, store, webhooks, yamlio
from kb.documents import ID_PATTERN, split_front_matter
from kb.errors import KbError
from kb.library import load_library
from kb.publishing import KB_COMMITTER

log = logging.getLogger(__name__)

MAX_OUTSIDE_EVENTS = 200  # SOP files announced per tick; a larger outside change is logged and cut here


def outside_commits(content: Path, old: str | None, new: str) -> list[dict]:
    """Commits between old and new that kb did not make (its commits have kb as committer)."""
    span = f"{old}..{new}" if old else new
    out = repository.run_git(content, "log", "--format=%H%x00%ce%x00%an%x00%s", span, "--", ".", check=False)
    commits = []
    for line in (out or "").splitlines():
        commit, committer, author, subject = (line.split("\x00") + ["", "", ""])[:4]
        if committer != KB_COMMITTER:
            commits.append({"commit": commit, "author": author, "summary": subject})
    return commits


def _changed_paths(content: Path, old: str, new: str, by_kb: bool = False) -> list[str]:
    """Markdown files (relative to content) that commits kb did not make (by_kb: that kb made) changed between
    old and new."""
    out = repository.run_git(
        content,
        "log",
        "--no-renames",
        "--relative",
        "--name-only",
        "--format=%x00%ce",
        f"{old}..{new}",
        "--",
        ".",
        check=False,
    )
    paths: dict[str, None] = {}
    wanted = False
    for line in (out or "").splitlines():
        if line.startswith("\x00"):
            wanted = (line[1:] == KB_COMMITTER) == by_kb
        elif wanted and line.endswith(".md"):
            paths[line] = None
    return sorted(paths)


def outside_events(content: Path, old: str, new: str, by_kb: bool = False) -> list[tuple[str, str, str]]:
    """(event, sop_id, revision) for each SOP file outside commits (by_kb: commits kb made on another replica)
    touched between old and new (see the docstring)."""
    paths = _changed_paths(content, old, new, by_kb)
    if len(paths) > MAX_OUTSIDE_EVENTS:
        log.warning(
            "commits changed %d SOP files; webhook events go out for the first %d",
            len(paths),
            MAX_OUTSIDE_EVENTS,
        )
        paths = paths[:MAX_OUTSIDE_EVENTS]
    if not paths:
        return []
    documents = {doc.path: doc for doc in load_library(content).documents.values()}
    events = []
    for path in paths:
        revision = (repository.run_git(content, "log", "-1", "--format=%H", new, "--", path, check=False) or "").strip()
        if not revision:
            continue
        if path in documents:
            doc = documents[path]
            events.append(("sop.retired" if doc.status == "retired" else "sop.published", doc.id, revision))
        elif not (content / path).exists():  # deleted: the SOP it held no longer serves
            sop_id = _sop_id(repository.show(content, path, old) or "")
            if sop_id:
                events.append(("sop.retired", sop_id, revision))
    return events


def _sop_id(text: str) -> str | None:
    """The id in a document's front matter, if it has a valid one."""
    split = split_front_matter(text)
    try:
        front = yamlio.load(split[0]) if split else None
    except yamlio.YAMLProblem:
        return None
    sop_id = front.get("id") if isinstance(front, dict) else None
    return sop_id if isinstance(sop_id, str) and ID_PATTERN.match(sop_id) else None


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
            except KbError as error:
                log.error("watching the content repository failed, retrying next tick: %s", error.message)
            except Exception:  # noqa: BLE001 - the watcher must outlive a bad build
                log.exception("watching the content repository failed")

    def stop(self) -> None:
        """Ask the thread to end after its current tick."""
        self._stopping.set()

    def tick(self) -> dict | None:
        """Check once; return the build report as a dict when a new generation was written."""
        arrived = None
        if self.workflow.publisher.remote is not None:
            arrived = self._fetch()  # finishes an interrupted publish first, like _recover_if_idle
        else:
            self._recover_if_idle()
        content = self.settings["CONTENT_DIR"]
        head = repository.head(content)
        if head is None or head == self.seen:
            return None
        report = self.workflow.reindex()
        previous, self.seen = self.seen, head
        for problem in report.problems:
            log.warning("content change: %s: %s", problem.severity, problem)
        for name in report.skipped:
            log.error("content %s is invalid and was skipped; the other documents serve (see `kb lint`)", name)
        outside = outside_commits(content, previous, head) if previous else []
        if outside:
            self._audit(head, outside, report)
            self._announce(previous, head)
        if arrived and arrived[0] and previous:
            self._announce(arrived[0], arrived[1], by_kb=True)  # published on another replica
        return None if report.up_to_date else report.to_dict()

    def _fetch(self) -> tuple[str | None, str] | None:
        """Fetch the content remote and fast-forward (after finishing an interrupted publish); (before, after) when
        HEAD moved. A failure is logged and retried next tick: the current index keeps serving."""
        try:
            moved = self.workflow.publisher.sync_if_idle()
        except KbError as error:
            log.error(
                "fetching the content remote failed; serving the current index, retrying in %g s: %s",
                self.interval,
                error.message,
            )
            return None
        return moved if moved and moved[0] != moved[1] else None

    def _announce(self, previous: str, head: str, by_kb: bool = False) -> None:
        """Enqueue the webhook events of outside commits (by_kb: another replica's); a failure is only logged."""
        try:
            events = outside_events(self.settings["CONTENT_DIR"], previous, head, by_kb)
            if events:
                with closing(store.connect(self.settings["DATA_DIR"])) as db:
                    webhooks.enqueue_quietly(db, events, self.settings["PUBLIC_URL"])
        except Exception:  # noqa: BLE001 - webhooks must not stop reindexing
            log.exception("webhook events for outside commits %s..%s were not enqueued", previous, head)

    def _audit(self, head: str, outside: list[dict], report) -> None:
        """Record outside commits once (every process sees them; the first to get here writes the row)."""
        details = {
            "commits": outside[:20],
            "changed": report.changed,
            "removed": report.removed,
            "skipped": report.skipped,
            "problems": [str(p) for p in report.problems if p.severity == "error"][:50],
        }
        target = f"commit:{head}"
        with closing(store.connect(self.settings["DATA_DIR"])) as db, store.transaction(db):
            if any(row["target"] == target for row in audit.query(db, action="external_change", target=target)):
                return
            outcome = "failed" if report.skipped else "ok"
            audit.record(db, "external_change", actor="git", target=target, outcome=outcome, details=details)

    def _recover_if_idle(self) -> None:
        """Finish an interrupted publish, unless a publish is running now (its lock is held)."""
        outcome = self.workflow.publisher.recover_if_idle()
        if outcome:
            log.warning("an interrupted publish was %s", outcome)
