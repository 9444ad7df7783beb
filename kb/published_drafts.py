"""Marking a draft published in the database: once, by whichever replica gets there first.

A publish marks its draft published after its commit has reached the content remote and the index has
switched (kb.publishing). A replica that dies between its push and that mark leaves the revision served
by every replica (each fetches the remote) while the shared database still shows the draft in review. So
the replica that fetches a commit kb made elsewhere reads the draft and the reviewer from its message
(``Draft N for <sop>.`` and ``Reviewed-by: <name> <...>``) and marks the draft published for it.

The mark is a compare-and-set (in review -> published): the audit rows (``draft_approved`` and
``published``) and the webhook event are written by the one that flips it, and never twice. A draft that
was returned to its author meanwhile is left as it is (the revision still serves; the log says so).
"""

from __future__ import annotations

import logging
import re
from contextlib import closing
from pathlib import Path

from kb import audit, repository, store, webhooks, yamlio
from kb.documents import split_front_matter
from kb.errors import KbError

log = logging.getLogger(__name__)

_DRAFT_LINE = re.compile(r"^Draft (\d{1,18}) for ([a-z0-9-]{1,200})\.$", re.MULTILINE)
_REVIEWER_LINE = re.compile(r"^Reviewed-by: (\S{1,200}) <", re.MULTILINE)
RECENT_COMMITS = 50  # kb commits a starting replica checks for drafts left in review by a replica that died


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


def published_by_kb(content: Path, span: str, committer: str) -> list[tuple[str, int, str, str]]:
    """(commit, draft id, sop id, reviewer) of each commit kb made (committer: kb's address) in a git revision
    range, oldest first."""
    out = repository.run_git(content, "log", "--reverse", "--format=%H%x00%ce%x00%B%x01", span, check=False)
    found = []
    for entry in (out or "").split("\x01"):
        commit, _, rest = entry.strip().partition("\x00")
        by, _, body = rest.partition("\x00")
        drafts, reviewers = _DRAFT_LINE.findall(body), _REVIEWER_LINE.findall(body)
        if commit and by == committer and drafts and reviewers:
            draft, sop_id = drafts[-1]  # the line kb writes comes after the summary
            found.append((commit, int(draft), sop_id, reviewers[-1]))
    return found


def adopt(content: Path, data: Path, span: str, public_url: str, committer: str) -> list[int]:
    """Mark published the drafts that kb commits (by committer) in span (fetched from the remote) published and that are still
    in review; return their ids. A database failure is logged, not raised: the fetch stands, and the next
    replica to start checks the recent commits again."""
    adopted = []
    try:
        commits = published_by_kb(content, span, committer)
        if not commits:
            return []
        with closing(store.connect(data)) as db:
            for commit, draft, sop_id, reviewer in commits:
                with store.transaction(db, lock=f"publish-finish:{draft}"):
                    row = db.execute("SELECT sop_id, status FROM drafts WHERE id = ?", (draft,)).fetchone()
                    if row is None or row["sop_id"] != sop_id or row["status"] == "published":
                        continue
                    if mark(db, draft, reviewer, commit, None, public_url, recovered=True, by="fetch"):
                        adopted.append(draft)
                    else:
                        log.warning("draft %s is %s, but commit %s published it", draft, row["status"], commit[:12])
    except KbError as error:
        log.error("drafts published by other replicas in %s were not marked: %s", span, error.message)
    for draft in adopted:
        log.warning("draft %s was published by a replica that stopped before recording it: marked now", draft)
    return adopted
