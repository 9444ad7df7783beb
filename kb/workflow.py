"""Drafts, four-eyes review and publishing.

    draft --submit--> in_review --approve--> published
      ^                   |
      +------return-------+   (with the reviewer's comment)

Drafts live in SQLite (kb.store), apart from published content: they are never
indexed, so agents never see them. Publishing writes the file, commits it to
the content repository (the draft's author as commit author, the approver in a
``Reviewed-by:`` trailer, the change summary as the message), reindexes
incrementally and switches the index generation: that step, its journal, lock
and crash recovery live in :mod:`kb.publishing`. Publishes run one at a time,
so two concurrent publishes of different SOPs both land, one after the other.

With a content remote (KB_CONTENT_REMOTE, :mod:`kb.remote`) an approval first
fetches and fast-forwards the clone, then checks the base revision against the
remote's newest state, then commits and pushes. When the push is refused because
another replica published first, the clone is reset to the remote and the
approval runs once more from the checks: if the other commit changed the same
SOP, the base check answers 409 with the diff (the stale-base answer); if it
changed another file, the draft is committed on the new head and pushed. A
second refusal answers 409; the draft stays in review.

Free text (summaries, return comments) goes through :func:`kb.redaction.redact`
before it is stored: a commit message never holds a card number.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from kb import audit, repository, store
from kb.accounts import User, has_role
from kb.database import Connection
from kb.diffing import line_diff
from kb.draft_checks import DraftChecks
from kb.drafts import COMMIT, STATUSES, Draft, check_comment
from kb.errors import ConflictError, DocumentError, ForbiddenError, InputError, NotFoundError, Problem, RemoteMovedError
from kb.library import load_library
from kb.publishing import Publisher
from kb.redaction import redact
from kb.remote import remote_of


class Workflow:
    """Drafts and publishing for one content folder and instance folder."""

    def __init__(self, settings: dict, encoder: Callable[[], object] | None = None):
        """encoder, if given, returns the encoder that embeds published sections (a server's ONNX encoder)."""
        self.settings = settings
        self.content: Path = settings["CONTENT_DIR"]
        self.data: Path = settings["DATA_DIR"]
        self._encoder = encoder
        self.checks = DraftChecks(self.content)
        self.publisher = Publisher(
            self.content, self.data, self.reindex, settings.get("PUBLIC_URL", ""), remote_of(settings)
        )

    # -- storage -------------------------------------------------------------------
    @contextmanager
    def db(self):
        """A connection to the instance database, closed afterwards."""
        connection = store.connect(self.data)
        try:
            yield connection
        finally:
            connection.close()

    def _row(self, db: Connection, draft_id: int) -> Draft:
        if isinstance(draft_id, bool) or not isinstance(draft_id, int):
            raise NotFoundError(f"no draft with id {draft_id!r}", {"field": "id"})
        row = db.execute("SELECT * FROM drafts WHERE id = ?", (draft_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no draft with id {draft_id}", {"field": "id"})
        return Draft(**dict(row))

    def get(self, draft_id: int) -> Draft:
        """One draft.

        Raises:
            NotFoundError: no such draft.
        """
        with self.db() as db:
            return self._row(db, draft_id)

    def readable(self, user: User, draft_id: int) -> Draft:
        """A draft the user may read: their own, or any for approvers and admins.

        Raises:
            NotFoundError: no such draft.
            ForbiddenError: someone else's draft, and the user is no approver.
        """
        _require(user, "author")
        draft = self.get(draft_id)
        if draft.author != user.name and not has_role(user, "approver"):
            raise ForbiddenError(f"draft {draft.id} belongs to {draft.author}", {"field": "id"})
        return draft

    def editable(self, user: User, draft_id: int) -> Draft:
        """A draft the user may edit or submit: their own (or any, for admins).

        Raises:
            NotFoundError: no such draft.
            ForbiddenError: someone else's draft.
        """
        _require(user, "author")
        draft = self.get(draft_id)
        if draft.author != user.name and not has_role(user, "admin"):
            raise ForbiddenError(f"only {draft.author}, who wrote draft {draft.id}, may change it", {"field": "id"})
        return draft

    def drafts(self, user: User, status: str | None = None, sop_id: str | None = None) -> list[Draft]:
        """Drafts the user may see, newest first: approvers and admins see all, authors their own."""
        if status is not None and status not in STATUSES:
            raise InputError(f"status: must be one of {', '.join(STATUSES)}", {"field": "status"})
        _require(user, "author")
        sql, args = "SELECT * FROM drafts WHERE 1 = 1", []
        if not has_role(user, "approver"):
            sql, args = sql + " AND author = ?", [user.name]
        if status:
            sql, args = sql + " AND status = ?", [*args, status]
        if sop_id:
            sql, args = sql + " AND sop_id = ?", [*args, sop_id]
        with self.db() as db:
            return [Draft(**dict(r)) for r in db.execute(sql + " ORDER BY updated DESC, id DESC", args)]

    # -- the lifecycle -------------------------------------------------------------
    def create(
        self,
        user: User,
        sop_id: object,
        markdown: object,
        base_revision: object,
        summary: object,
        client: str | None = None,
        restored_from: str | None = None,
    ) -> tuple[Draft, list[Problem]]:
        """Save a new draft; return it with its warnings.

        Raises:
            ForbiddenError: the user is not an author.
            InputError, DocumentError, ConflictError: bad fields, lint errors, or no base for an existing SOP.
        """
        _require(user, "author")
        warnings = self.checks.validate(sop_id, markdown, summary, base_revision)
        stamp = store.now()
        with self.db() as db, db:
            cursor = db.execute(
                "INSERT INTO drafts (sop_id, base_revision, markdown, summary, author, status, restored_from, "
                "created, updated) VALUES (?, ?, ?, ?, ?, 'draft', ?, ?, ?)",
                (sop_id, base_revision, markdown, redact(summary.strip()), user.name, restored_from, stamp, stamp),
            )
            draft = self._row(db, cursor.lastrowid)
            action = "restored" if restored_from else "draft_created"
            details = {"draft": draft.id, "base_revision": base_revision, "restored_from": restored_from}
            audit.record(db, action, actor=user.name, target=f"sop:{sop_id}", client=client, details=details)
        return draft, warnings

    def update(
        self,
        user: User,
        draft_id: int,
        markdown: object = None,
        summary: object = None,
        base_revision: object = ...,
        client: str | None = None,
    ) -> tuple[Draft, list[Problem]]:
        """Change a draft's text, summary or base revision (its author, while it is a draft)."""
        draft = self.editable(user, draft_id)
        if draft.status != "draft":
            raise ConflictError(f"draft {draft.id} is {draft.status}; only a draft can be edited", {"field": "status"})
        markdown = draft.markdown if markdown is None else markdown
        summary = draft.summary if summary is None else summary
        base = draft.base_revision if base_revision is ... else base_revision
        warnings = self.checks.validate(draft.sop_id, markdown, summary, base)
        with self.db() as db, db:
            changed = db.execute(
                "UPDATE drafts SET markdown = ?, summary = ?, base_revision = ?, updated = ? "
                "WHERE id = ? AND status = 'draft'",
                (markdown, redact(summary.strip()), base, store.now(), draft.id),
            ).rowcount
            if changed != 1:
                raise self._changed(db, draft)
            audit.record(
                db,
                "draft_edited",
                actor=user.name,
                target=f"sop:{draft.sop_id}",
                client=client,
                details={"draft": draft.id},
            )
            return self._row(db, draft.id), warnings

    def submit(self, user: User, draft_id: int, client: str | None = None) -> Draft:
        """Send a draft for review."""
        draft = self.editable(user, draft_id)
        self._move(draft, "draft", "in_review")
        problems = [p for p in self.checks.problems(draft.sop_id, draft.markdown) if p.severity == "error"]
        if problems:
            raise DocumentError(problems)
        return self._set(draft, user, "draft_submitted", client, status="in_review", comment=None)

    def return_(self, user: User, draft_id: int, comment: object, client: str | None = None) -> Draft:
        """Send a draft in review back to its author with a comment."""
        _require(user, "approver")
        check_comment(comment)
        # Under the publish locks, like approve: a return never lands while another replica publishes this draft.
        with self.db() as held, store.exclusive(held, "kb.workflow.publish"), self.publisher.lock():
            draft = self.get(draft_id)
            self._move(draft, "in_review", "draft")
            comment = redact(comment.strip())
            return self._set(draft, user, "draft_returned", client, status="draft", comment=comment, reviewer=user.name)

    def restore(self, user: User, sop_id: str, revision: object, client: str | None = None) -> Draft:
        """A new draft whose text is an old revision of an SOP; it goes through review like any other."""
        _require(user, "author")
        if not isinstance(revision, str) or not COMMIT.match(revision):
            raise InputError("revision: must be a 40-character commit id", {"field": "revision"})
        path = self.checks.path_of(sop_id)
        text = repository.show(self.content, path, revision)
        if text is None:
            raise NotFoundError(f"{sop_id} has no revision {revision}", {"field": "revision"})
        summary = f"Restore revision {revision[:10]}"
        draft, _ = self.create(
            user, sop_id, text, self.checks.current_revision(sop_id), summary, client, restored_from=revision
        )
        return draft

    # -- publishing ----------------------------------------------------------------
    def approve(self, user: User, draft_id: int, client: str | None = None) -> str:
        """Approve a draft in review and publish it; return the new revision (commit id).

        Raises:
            ForbiddenError: the user is not an approver, or wrote the draft.
            ConflictError: the SOP changed since the draft's base revision (details carry the diff), or the
                content remote moved on twice while publishing.
            DocumentError: the draft fails lint against the library as it is now.
            UnavailableError: the content remote cannot be reached (503 with Retry-After).
        """
        _require(user, "approver")
        draft = self.get(draft_id)
        if draft.author == user.name:
            raise ForbiddenError("four-eyes: nobody approves their own draft", {"field": "approver"})
        self._move(draft, "in_review", "published")
        # One publish at a time: the file lock on this machine, and across replicas sharing a PostgreSQL database the
        # advisory lock (store.exclusive), under which the draft is read again: a second approval finds it published.
        with self.db() as held, store.exclusive(held, "kb.workflow.publish"), self.publisher.lock():
            self.publisher.recover()
            draft = self.get(draft_id)
            if draft.status == "published" and draft.reviewer == user.name:
                return draft.revision  # an earlier attempt of this approval landed and recovery finished it
            self.publisher.sync()  # with a remote: check the base against its newest state
            try:
                return self._publish(draft, user, client)
            except RemoteMovedError:  # another replica published first; the clone now is the remote's
                return self._publish(self.get(draft_id), user, client)

    def _publish(self, draft: Draft, user: User, client: str | None) -> str:
        """Check the draft against the library as it is now (status, base revision, lint), then publish it."""
        self._move(draft, "in_review", "published")
        library = load_library(self.content)
        path = self.checks.path_of(draft.sop_id, draft.markdown, library)
        current = self.checks.current_revision(draft.sop_id, library)
        if current != draft.base_revision:
            base = repository.show(self.content, path, draft.base_revision) if draft.base_revision else ""
            now = (self.content / path).read_text(encoding="utf-8")
            raise ConflictError(
                f"{draft.sop_id} changed since revision {draft.base_revision}: now {current}",
                {
                    "field": "base_revision",
                    "base_revision": draft.base_revision,
                    "current_revision": current,
                    "diff": line_diff(base or "", now, f"base {draft.base_revision}", f"current {current}"),
                },
            )
        errors = [p for p in self.checks.problems(draft.sop_id, draft.markdown, library) if p.severity == "error"]
        if errors:
            raise DocumentError(errors)
        return self.publisher.publish(draft, path, user.name, client)

    def reindex(self):
        """Bring the index up to date with the content folder (incremental), switch generations; return the report."""
        from kb.indexing.builder import build_index
        from kb.tickets import training_examples

        encoder = self._encoder() if self._encoder else None
        with self.db() as db:
            tickets = training_examples(db)  # the category classifier trains on them (or is reused unchanged)
        return build_index(
            self.content,
            self.data,
            self.settings["EMBEDDING_MODEL"],
            encoder=encoder,
            engine=self.settings["KEYWORD_ENGINE"],
            tickets=tickets,
        )

    def recover(self) -> str | None:
        """Finish or undo an interrupted publish (see kb.publishing); return what was done, or None."""
        with self.publisher.lock():
            return self.publisher.recover()

    # -- helpers -------------------------------------------------------------------
    @staticmethod
    def _move(draft: Draft, expected: str, target: str) -> None:
        if draft.status != expected:
            raise ConflictError(
                f"draft {draft.id} is {draft.status}; it must be {expected} to become {target}", {"field": "status"}
            )

    @staticmethod
    def _changed(db, draft: Draft) -> ConflictError:
        """The error for a draft whose status another request (or replica) changed since it was read."""
        row = db.execute("SELECT status FROM drafts WHERE id = ?", (draft.id,)).fetchone()
        now = row["status"] if row else "gone"
        return ConflictError(f"draft {draft.id} changed meanwhile: it is {now} now", {"field": "status"})

    def _set(self, draft: Draft, user: User, action: str, client: str | None, **changes) -> Draft:
        """Change a draft's columns if its status is still the one read (compare-and-set), and audit it."""
        columns = ", ".join(f"{key} = ?" for key in changes)
        with self.db() as db, db:
            changed = db.execute(
                f"UPDATE drafts SET {columns}, updated = ? WHERE id = ? AND status = ?",  # noqa: S608 - fixed names
                (*changes.values(), store.now(), draft.id, draft.status),
            ).rowcount
            if changed != 1:
                raise self._changed(db, draft)
            audit.record(
                db, action, actor=user.name, target=f"sop:{draft.sop_id}", client=client, details={"draft": draft.id}
            )
            return self._row(db, draft.id)


def _require(user: User | None, role: str) -> None:
    if not has_role(user, role):
        raise ForbiddenError(f"this needs the {role} role", {"field": "role"})
