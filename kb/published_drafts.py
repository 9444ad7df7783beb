"""Marking a draft published in the database: once, by whichever replica gets there first.

A publish marks its draft published after its commit has reached the content remote and the index has
switched (kb.publishing). A replica that dies between its push and that mark leaves the revision served
by every replica (each fetches the remote) while the shared database still shows the draft in review. So
at every fetch a replica reads the recent commits kb made (``Draft N for <sop>.`` and ``Reviewed-by: <name>
<...>`` in the message); a draft such a commit names that is still in review GRACE_S seconds after the
commit is marked published for the replica that made it.

Only a commit that wrote the draft's own text counts (someone with push access to the remote could copy the
message). The mark is a compare-and-set (in review -> published): the audit rows (``draft_approved`` and
``published``) and the webhook event are written by the one that flips it, and never twice. A draft that
was returned to its author meanwhile is left as it is (the revision still serves; the log says so).
"""

from __future__ import annotations

import logging
import re
import time
from contextlib import closing
from pathlib import Path

from kb import audit, repository, store, webhooks, yamlio
from kb.documents import split_front_matter
from kb.errors import KbError

log = logging.getLogger(__name__)

_DRAFT_LINE = re.compile(r"^Draft (\d{1,18}) for ([a-z0-9-]{1,200})\.$", re.MULTILINE)
_REVIEWER_LINE = re.compile(r"^Reviewed-by: (\S{1,200}) <", re.MULTILINE)
RECENT_COMMITS = 50  # kb commits each fetch checks for drafts left in review by a replica that died
WINDOW_S = 3600  # ... made within the last hour
GRACE_S = 15  # ... and at least this long ago: the publishing replica records its own publish in about a second


def event_of(markdown: str) -> str:
    """The webhook event a published text makes: sop.retired when its status is retired, else sop.published."""
    split = split_front_matter(markdown)
    try:
        front = yamlio.load(split[0]) if split else None
    except yamlio.YAMLProblem:
        front = None
    return "sop.retired" if isinstance(front, dict) and front.get("status") == "retired" else "sop.published"


def mark(db, draft_id: int, approver: str, revision: str, client: str | None, public_url: str, **details) -> bool:
    """Mark a draft in review published at revision, audit it and enqueue its webhook event, in the caller's
    transaction; return False (and write nothing) when it is no longer in review. details go into the audit
    rows (recovered=True, by="fetch", ...)."""
    updated = db.execute(
        "UPDATE drafts SET status = 'published', reviewer = ?, revision = ?, updated = ? "
        "WHERE id = ? AND status = 'in_review'",
        (approver, revision, store.now(), draft_id),
    ).rowcount
    if updated != 1:
        return False
    row = db.execute("SELECT sop_id, author, markdown FROM drafts WHERE id = ?", (draft_id,)).fetchone()
    recorded = {"draft": draft_id, "revision": revision, "author": row["author"], "recovered": False, **details}
    for action in ("draft_approved", "published"):
        audit.record(db, action, actor=approver, target=f"sop:{row['sop_id']}", client=client, details=recorded)
    webhooks.enqueue_quietly(db, [(event_of(row["markdown"]), row["sop_id"], revision)], public_url)
    return True


def published_by_kb(content: Path, committer: str, now: float) -> list[tuple[str, int, str, str]]:
    """(commit, draft id, sop id, reviewer) of the recent commits kb made (committer: kb's address): among the
    last RECENT_COMMITS, made from WINDOW_S to GRACE_S seconds before now, oldest first."""
    out = repository.run_git(
        content,
        "log",
        f"-{RECENT_COMMITS}",
        f"--since=@{int(now - WINDOW_S)}",
        "--format=%H%x00%ce%x00%ct%x00%B%x01",
        check=False,
    )
    found = []
    for entry in (out or "").split("\x01"):
        fields = entry.strip().split("\x00", 3)
        if len(fields) != 4 or fields[1] != committer or not fields[2].isdigit() or int(fields[2]) > now - GRACE_S:
            continue
        drafts, reviewers = _DRAFT_LINE.findall(fields[3]), _REVIEWER_LINE.findall(fields[3])
        if drafts and reviewers:
            draft, sop_id = drafts[-1]  # the line kb writes comes after the summary
            found.append((fields[0], int(draft), sop_id, reviewers[-1]))
    return found[::-1]


def _commits_text(content: Path, commit: str, markdown: str) -> bool:
    """Whether commit wrote markdown into one of the files it changed: the draft's own text, so that a commit
    pushed from outside that only copies kb's message never marks a draft published."""
    changed = repository.run_git(content, "diff-tree", "-r", "--no-commit-id", "--name-only", "--relative", commit)
    return any(repository.show(content, path, commit) == markdown for path in changed.splitlines()[:20] if path)


def adopt(content: Path, data: Path, public_url: str, committer: str, now: float | None = None) -> list[int]:
    """Mark published the drafts that recent kb commits (published_by_kb) name and that are still in review;
    return their ids. A database failure is logged, not raised: the next tick tries again."""
    adopted = []
    try:
        commits = published_by_kb(content, committer, time.time() if now is None else now)
        if not commits:
            return []
        with closing(store.connect(data)) as db:
            ids = [draft for _, draft, _, _ in commits]
            waiting = db.execute(
                "SELECT id, sop_id, markdown FROM drafts WHERE status = 'in_review' AND id BETWEEN ? AND ?",
                (min(ids), max(ids)),
            )
            waiting = {row["id"]: (row["sop_id"], row["markdown"]) for row in waiting.fetchall()}
            for commit, draft, sop_id, reviewer in commits:
                waiting_sop, markdown = waiting.get(draft, (None, None))
                if waiting_sop != sop_id or not _commits_text(content, commit, markdown):
                    continue
                with store.transaction(db, lock=f"publish-finish:{draft}"):
                    if mark(db, draft, reviewer, commit, None, public_url, recovered=True, by="fetch"):
                        adopted.append(draft)
    except KbError as error:
        log.error("drafts published by other replicas were not marked; retrying next tick: %s", error.message)
    for draft in adopted:
        log.warning("draft %s was published by a replica that stopped before recording it: marked now", draft)
    return adopted
