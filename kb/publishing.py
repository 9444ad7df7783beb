"""Publishing a draft: write the file, commit it, reindex, record, crash-safe through a journal.

A publish is one step of :mod:`kb.workflow` (approve), run under the publish
lock so publishes happen one at a time. Its journal (``publish.json`` in the
instance folder) is written before the file is touched and removed when the
draft is marked published::

    journal -> write file -> git add + commit [-> push] -> reindex + switch -> mark published (+ webhook event)
            -> remove journal

With a content remote (KB_CONTENT_REMOTE, kb.remote) the commit is pushed before anything is reindexed, so
nothing is ever served from a commit the remote does not hold. A push that fails undoes the local commit
(the clone is reset to the remote's branch) and the publish fails as a whole: RemoteMovedError when another
replica published first (kb.workflow retries once, or answers 409 with the diff), UnavailableError (503 with
Retry-After) when the remote cannot be reached. The draft stays in review either way.

:meth:`Publisher.recover` finishes or undoes an interrupted publish: if the
commit landed (and, with a remote, reached it), the index is rebuilt and the
draft marked published (roll forward); if it did not, the working tree is
restored (roll back; with a remote, reset to the remote's branch). A publish
that fails while running (a full disk, git refusing) is rolled back at once
when its commit has not landed; whatever cannot be undone now is left to
recover(), which the next publish and every watcher tick run first. Either
way the old revision keeps serving and nothing is half written.

Marking the draft published also enqueues its webhook event (``sop.published``, or ``sop.retired`` when the
revision's status is retired) in the same transaction, through :func:`kb.webhooks.enqueue_quietly`: a
failure there is logged and never fails the publish, and delivery happens later in a worker
(kb.webhook_delivery), so a receiver never slows it.

Tests kill the publishing process at a named step (``KBTEST_CRASH_AT``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from kb import audit, published_drafts, repository, store
from kb.errors import KbError, StorageError
from kb.files import atomic_write, file_lock
from kb.remote import Remote

log = logging.getLogger(__name__)

JOURNAL = "publish.json"
LOCK = ".publish.lock"
EMAIL_DOMAIN = "kb.invalid"  # users have no e-mail address; commits name them as <name>@kb.invalid
KB_COMMITTER = f"kb@{EMAIL_DOMAIN}"  # every commit kb makes has this committer
CRASH_AT_ENV = "KBTEST_CRASH_AT"  # tests kill the publishing process at a named step


def identity(name: str) -> str:
    """A user as git names a person: ``name <name@kb.invalid>``."""
    return f"{name} <{name}@{EMAIL_DOMAIN}>"


def _checkpoint(step: str) -> None:
    """Die here, as a crash would, when a test asks for it."""
    if os.environ.get(CRASH_AT_ENV) == step:
        os._exit(75)


class Publisher:
    """The publish step for one content repository and instance folder."""

    def __init__(
        self,
        content: Path,
        data: Path,
        reindex: Callable[[], object],
        public_url: str = "",
        remote: Remote | None = None,
    ):
        """reindex brings the index up to date with the content folder and switches generations.

        public_url (KB_PUBLIC_URL) starts the SOP links in webhook events; remote (KB_CONTENT_REMOTE) receives
        each commit before it is served.
        """
        self.content = content
        self.data = data
        self.reindex = reindex
        self.public_url = public_url
        self.remote = remote

    @property
    def journal_path(self) -> Path:
        """Where the journal of a publish under way is kept."""
        return self.data / JOURNAL

    @contextmanager
    def lock(self, blocking: bool = True) -> Iterator[bool]:
        """Hold the publish lock (one publish or recovery at a time, across processes)."""
        with file_lock(self.data / LOCK, blocking=blocking) as held:
            yield held

    def publish(self, draft, path: str, approver: str, client: str | None) -> str:
        """Publish draft (a kb.workflow.Draft in review) as the file at path; return the new revision.

        Call it under :meth:`lock`, after the checks (four-eyes, base revision, lint).

        Raises:
            StorageError: the disk, git or the index failed; the old revision still serves.
        """
        journal = {
            "draft": draft.id,
            "path": path,
            "old_head": repository.head(self.content),
            "approver": approver,
            "client": client,
        }
        atomic_write(self.journal_path, json.dumps(journal))
        _checkpoint("journal")
        landed = False
        try:
            atomic_write(self.content / path, draft.markdown)
            _checkpoint("written")
            revision = self._commit(path, draft, approver)
            _checkpoint("committed")
            if self.remote is not None:
                self.remote.push(revision)
                _checkpoint("pushed")
            landed = True
            self.reindex()
            _checkpoint("indexed")
            self._finish(journal, revision)
            _checkpoint("recorded")
        except Exception as error:
            self._failed(journal, landed, error)
            if isinstance(error, KbError):
                raise
            raise StorageError(f"publishing failed: {error}", {"field": "draft"}) from error
        return revision

    def _failed(self, journal: dict, landed: bool, error: Exception) -> None:
        """Undo a publish that failed before its commit landed (in git, and on the remote if any); leave a landed
        one for recover()."""
        log.error("publishing draft %s failed: %s", journal["draft"], error)
        if landed:
            return  # the commit is in git: recover() rolls forward once the index can be built
        try:
            self._roll_back(journal, reason=error.message if isinstance(error, KbError) else None)
        except KbError as undo:
            log.error("rolling back draft %s failed, recovery will retry: %s", journal["draft"], undo)

    def _commit(self, path: str, draft, approver: str) -> str:
        """Commit the file alone: the draft's author as author, the approver as reviewer; return the commit."""
        message = f"{draft.summary}\n\nDraft {draft.id} for {draft.sop_id}.\n\nReviewed-by: {identity(approver)}\n"
        committer = {"GIT_COMMITTER_NAME": "kb", "GIT_COMMITTER_EMAIL": KB_COMMITTER}
        repository.run_git(self.content, "add", "--", path)
        repository.run_git(
            self.content,
            "commit",
            "-q",
            "--no-verify",
            f"--author={identity(draft.author)}",
            "-F",
            "-",
            "--",
            path,
            env=committer,
            stdin=message,
        )
        return repository.run_git(self.content, "rev-parse", "HEAD").strip()

    def _finish(self, journal: dict, revision: str, recovered: bool = False) -> None:
        """Mark the draft published, audit the approval and the publish, and remove the journal (a replica that
        fetched the commit may have marked it first: then nothing is written twice)."""
        with closing(store.connect(self.data)) as db, store.transaction(db, lock=f"publish-finish:{journal['draft']}"):
            args = (journal["draft"], journal["approver"], revision, journal["client"], self.public_url)
            published_drafts.mark(db, *args, recovered=recovered)
        self.journal_path.unlink(missing_ok=True)

    def recover(self) -> str | None:
        """Finish or undo an interrupted publish (call under the lock); return "rolled-forward", "rolled-back" or None.

        Raises:
            StorageError: the publish can be neither finished nor undone yet (for example the disk is still full).
        """
        try:
            journal = json.loads(self.journal_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise StorageError(f"the publish journal {JOURNAL} cannot be read: {error}") from error
        with closing(store.connect(self.data)) as db:
            row = db.execute("SELECT status FROM drafts WHERE id = ?", (journal["draft"],)).fetchone()
        if row is None or row["status"] == "published":  # died after recording, or another replica published it
            ours = self._published_commit(journal) if self.remote is not None else None
            dropped = ours is not None and not self._pushed(ours)  # ...and our commit never left
            if dropped:
                self.remote.reset()
            self.journal_path.unlink(missing_ok=True)
            return "rolled-back" if dropped else "rolled-forward"
        ours = self._published_commit(journal)
        if ours is not None and self.remote is not None and not self._pushed(ours):
            self._roll_back(journal, reason="its commit did not reach the content remote")
            return "rolled-back"
        if ours is not None:
            self.reindex()
            self._finish(journal, ours, recovered=True)
            return "rolled-forward"
        self._roll_back(journal)
        return "rolled-back"

    def _pushed(self, commit: str) -> bool:
        """Whether the remote holds commit (fetched now; UnavailableError when it cannot be reached)."""
        self.remote.fetch()
        return self.remote.contains(commit)

    def follow(self) -> str | None:
        """With a remote: make the content folder its clone, up to date, under the lock (start-up); else None.

        Raises:
            ConfigError: naming KB_CONTENT_REMOTE, when the folder is not its clone or it cannot be reached.
        """
        if self.remote is None:
            return None
        with self.lock():
            self.recover()  # a publish this replica left half done: undone or finished before the clone moves on
            head = self.remote.follow()
            published_drafts.adopt(self.content, self.data, self.public_url, KB_COMMITTER)
            return head

    def sync(self) -> tuple[str | None, str] | None:
        """With a remote: fetch and fast-forward the clone (call under the lock); (HEAD before, after), else None."""
        return self.remote.sync() if self.remote is not None else None

    def sync_if_idle(self) -> tuple[str | None, str] | None:
        """recover() then sync(), unless a publish is running now (its lock is held): for the watcher."""
        if self.remote is None:
            return None
        with self.lock(blocking=False) as held:
            if not held:
                return None
            outcome = self.recover()
            if outcome:
                log.warning("an interrupted publish was %s", outcome)
            moved = self.remote.sync()
            published_drafts.adopt(self.content, self.data, self.public_url, KB_COMMITTER)  # a dead replica's
            return moved

    def recover_if_idle(self) -> str | None:
        """recover(), unless a publish is running now (its lock is held): for the watcher."""
        if not self.journal_path.exists():
            return None
        with self.lock(blocking=False) as held:
            return self.recover() if held else None

    def _roll_back(self, journal: dict, reason: str | None = None) -> None:
        """Restore the file as it was at the last commit (with a remote: reset the clone to the remote's branch),
        audit the failure and remove the journal."""
        path = journal["path"]
        if self.remote is not None:
            self.remote.reset()  # drops a commit that was not pushed, and the written file with it
        else:
            # The file as it was, read from git's objects (a read works even when git cannot write its index).
            old = repository.show(self.content, path, journal["old_head"]) if journal["old_head"] else None
            target = self.content / path
            if old is None:
                target.unlink(missing_ok=True)
            elif not target.exists() or target.read_bytes() != old.encode("utf-8"):
                atomic_write(target, old)
            staged = repository.run_git(self.content, "diff", "--cached", "--name-only", "--", path, check=False)
            if staged and staged.strip():
                repository.run_git(self.content, "reset", "-q", "--", path)
        with closing(store.connect(self.data)) as db, db:
            row = db.execute("SELECT sop_id FROM drafts WHERE id = ?", (journal["draft"],)).fetchone()
            audit.record(
                db,
                "publish_failed",
                actor=journal["approver"],
                target=f"sop:{row['sop_id']}" if row else None,
                outcome="failed",
                client=journal["client"],
                details={"draft": journal["draft"], "rolled_back": True, "reason": reason},
            )
        self.journal_path.unlink(missing_ok=True)

    def _published_commit(self, journal: dict) -> str | None:
        """The commit an interrupted publish made, if it landed: after old_head, touching the path, naming the draft."""
        if repository.head(self.content) == journal["old_head"]:
            return None
        since = [f"{journal['old_head']}..HEAD"] if journal["old_head"] else []
        out = repository.run_git(self.content, "log", "--format=%H%x00%B%x01", *since, "--", journal["path"])
        marker = f"Draft {journal['draft']} for "
        for entry in out.split("\x01"):
            commit, _, body = entry.strip().partition("\x00")
            if commit and marker in body:
                return commit
        return None
