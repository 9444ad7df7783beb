"""The content remote: the shared git repository that replicas publish to and fetch from (KB_CONTENT_REMOTE).

Each replica's content folder is a clone of the remote (its ``origin``), on one
branch: the branch its clone has checked out. The clone is kb's own: nobody
edits or commits in it; changes from outside kb go to the remote.

    follow()   at start-up (`kb serve`, `kb index`): clone into an empty content folder, or check that the
               folder's clone has the remote as origin; then fetch and fast-forward. Any failure stops kb.
    sync()     fetch and fast-forward (before a publish, and on every watcher tick).
    push()     send a new commit; refused because the remote moved -> RemoteMovedError, any other failure
               -> UnavailableError (kb.workflow and kb.publishing undo the local commit either way).
    reset()    put the clone back on the remote's branch (git reset --hard), dropping a commit not pushed.

Every address and every message of git is shown through :func:`kb.redaction.mask_credentials`: a token in
``https://user:token@host/...`` never reaches a log, an error or an audit row. git never prompts for a
password (``GIT_TERMINAL_PROMPT=0``, ssh in batch mode): a remote that wants one fails instead of hanging.
"""

from __future__ import annotations

import os
from pathlib import Path

from kb import repository
from kb.errors import ConfigError, RemoteMovedError, StorageError, UnavailableError
from kb.redaction import mask_credentials

SETTING = "KB_CONTENT_REMOTE"
ORIGIN = "origin"
RETRY_AFTER = 30  # seconds a client waits before retrying a write the remote refused to take
_ENV = {"GIT_TERMINAL_PROMPT": "0"}
_SSH = "ssh -o BatchMode=yes -o ConnectTimeout=10"


def _environment() -> dict:
    """git's environment for talking to the remote: never prompt; ssh in batch mode unless the operator set ssh."""
    env = dict(_ENV)
    if "GIT_SSH_COMMAND" not in os.environ and "GIT_SSH" not in os.environ:
        env["GIT_SSH_COMMAND"] = _SSH
    return env


def _plain(url: str) -> str:
    """An address without credentials or a trailing slash, for comparing two spellings of one remote."""
    return mask_credentials(url).replace("***@", "").rstrip("/").removesuffix("/.git")


class Remote:
    """The content remote of one content folder."""

    def __init__(self, content: Path, url: str):
        self.content = content
        self.url = url

    @property
    def shown(self) -> str:
        """The remote's address as logs and errors show it (credentials masked)."""
        return mask_credentials(self.url)

    def _git(self, *args: str, check: bool = True) -> str | None:
        return repository.run_git(self.content, *args, env=_environment(), check=check)

    @property
    def branch(self) -> str:
        """The branch the clone follows (its checked-out branch)."""
        out = self._git("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        if not out or not out.strip():
            raise StorageError(f"the content clone {self.content} has no branch checked out", {"field": "remote"})
        return out.strip()

    @property
    def tracking(self) -> str:
        """The ref that holds the remote's branch as last fetched."""
        return f"refs/remotes/{ORIGIN}/{self.branch}"

    def remote_head(self) -> str | None:
        """The remote's branch as last fetched (a commit id), or None before any fetch."""
        out = self._git("rev-parse", "--verify", "--quiet", f"{self.tracking}^{{commit}}", check=False)
        return (out or "").strip() or None

    # -- start-up ------------------------------------------------------------------
    def follow(self) -> str:
        """Make the content folder a clone of the remote, up to date; return its HEAD.

        Raises:
            ConfigError: naming KB_CONTENT_REMOTE: the folder is not a clone of the remote, the remote cannot be
                reached or has no such branch, or the clone has commits the remote lacks.
        """
        try:
            if not self.content.exists() or (self.content.is_dir() and not any(self.content.iterdir())):
                self._clone()
            self._check_origin()
            self.sync()
        except (StorageError, RemoteMovedError) as error:
            raise ConfigError(f"setting {SETTING}: {self.shown}: {mask_credentials(error.message)}") from None
        return repository.head(self.content) or ""

    def _clone(self) -> None:
        """Clone the remote into the empty (or missing) content folder."""
        self.content.mkdir(parents=True, exist_ok=True)
        repository.run_git(self.content, "clone", "--quiet", "--", self.url, ".", env=_environment())

    def _check_origin(self) -> None:
        top = self._git("rev-parse", "--show-toplevel", check=False)
        if not top:
            raise StorageError(f"the content folder {self.content} is not empty and not a git clone of the remote")
        origin = (self._git("remote", "get-url", ORIGIN, check=False) or "").strip()
        if not origin:
            raise StorageError(
                f"the content folder {self.content} is a git repository with no '{ORIGIN}' remote, not a clone of "
                "the remote (clone the remote there, or empty the folder and kb clones it)"
            )
        if _plain(origin) != _plain(self.url):
            raise StorageError(
                f"the content folder {self.content} is a clone of {mask_credentials(origin)}, not of the remote"
            )
        if origin != self.url:  # the same remote with other (for example rotated) credentials
            self._git("remote", "set-url", ORIGIN, self.url)

    # -- serving ---------------------------------------------------------------------
    def fetch(self) -> str:
        """Fetch the remote's branch; return its head.

        Raises:
            UnavailableError: the remote cannot be reached, or has no such branch.
        """
        branch = self.branch
        try:
            self._git("fetch", "--quiet", "--no-tags", ORIGIN, f"+refs/heads/{branch}:{self.tracking}")
        except StorageError as error:
            raise UnavailableError(
                f"the content remote {self.shown} cannot be fetched: {mask_credentials(error.message)}",
                RETRY_AFTER,
                {"field": "remote"},
            ) from None
        head = self.remote_head()
        if head is None:
            raise UnavailableError(f"the content remote {self.shown} has no branch {branch}", RETRY_AFTER)
        return head

    def sync(self) -> tuple[str | None, str]:
        """Fetch and fast-forward the clone to the remote's branch; return (HEAD before, HEAD after).

        Raises:
            UnavailableError: the remote cannot be reached.
            StorageError: the clone has commits the remote lacks (it cannot fast-forward).
        """
        before = repository.head(self.content)
        remote = self.fetch()
        if before == remote:
            return before, remote
        if before is not None and not self._is_ancestor(before, remote):
            raise StorageError(
                f"the content clone {self.content} has commits the remote {self.shown} lacks, so it cannot "
                f"fast-forward to {remote[:12]}: push them to the remote, or reset the clone to {ORIGIN}/{self.branch}"
            )
        self._git("merge", "--ff-only", "--quiet", remote)
        return before, remote

    def _is_ancestor(self, older: str, newer: str) -> bool:
        return self._git("merge-base", "--is-ancestor", older, newer, check=False) is not None

    def contains(self, commit: str) -> bool:
        """Whether the remote's branch (as last fetched) holds commit."""
        head = self.remote_head()
        return head is not None and self._is_ancestor(commit, head)

    def push(self, commit: str) -> None:
        """Push commit (a descendant of the remote's branch as last fetched) to the remote's branch.

        Raises:
            RemoteMovedError: refused because the remote moved on (another replica published first); fetched.
            UnavailableError: the remote cannot be reached, or refused the push for another reason.
        """
        base = self.remote_head()
        try:
            self._git("push", "--quiet", "--porcelain", ORIGIN, f"{commit}:refs/heads/{self.branch}")
            self._git("update-ref", self.tracking, commit)
            return
        except StorageError as error:
            refused = mask_credentials(error.message)
        now = self.fetch()  # UnavailableError when the remote cannot be reached at all
        if now == commit or self._is_ancestor(commit, now):  # it landed after all (the answer was lost)
            return
        if now != base:
            raise RemoteMovedError(
                f"the content remote {self.shown} moved on to {now[:12]} while publishing (another replica "
                "published first)",
                {"field": "base_revision", "remote_head": now},
            )
        raise UnavailableError(f"the content remote {self.shown} refused the push: {refused}", RETRY_AFTER)

    def reset(self) -> None:
        """Put the clone on the remote's branch as last fetched, dropping any commit or change not pushed."""
        self._git("reset", "--hard", "--quiet", self.tracking)


def remote_of(settings: dict) -> Remote | None:
    """The content remote the settings name (KB_CONTENT_REMOTE), or None when there is none."""
    url = settings.get("CONTENT_REMOTE") or ""
    return Remote(settings["CONTENT_DIR"], url) if url else None
