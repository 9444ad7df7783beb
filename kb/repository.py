"""The git-backed content store: which commit last changed each file, and published history.

Every git call runs with a fixed argument list (no shell) from the content
folder; paths are relative to that folder. Every published revision of an SOP
is a commit: its author is the SOP's author, its subject the change summary,
and a ``Reviewed-by: Name <email>`` trailer names the approver.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import yaml

from kb import yamlio
from kb.documents import split_front_matter
from kb.errors import InputError, StorageError
from kb.redaction import mask_credentials

GIT_TIMEOUT = 60
HISTORY_LIMIT = 200
COMMIT_PATTERN = re.compile(r"^[0-9a-f]{7,40}$")
REVIEWER_TRAILER = "Reviewed-by"
_PERSON = re.compile(r"^(?P<name>.*?)\s*<(?P<email>[^<>]*)>\s*$")
_FIELD, _VALUE = "\x1f", "\x1d"
_LOG_FORMAT = _FIELD.join(
    ["%H", "%aI", "%an", "%ae", "%s", f"%(trailers:key={REVIEWER_TRAILER},valueonly,unfold,separator=%x1d)"]
)


def run_git(
    root: Path,
    *args: str,
    env: dict | None = None,
    stdin: str | bytes | None = None,
    check: bool = True,
    text: bool = True,
) -> str | bytes | None:
    """The one git runner: run git in root with a fixed argument list (no shell) and return its stdout.

    Args:
        root: the folder git runs in (``git -C root``).
        args: git's arguments.
        env: variables added to the environment (for example the committer).
        stdin: what git reads on standard input.
        check: raise on failure (writes); with False, a failure returns None (reads: not a repository, no commits).
        text: decode stdout as UTF-8 (invalid bytes replaced); with False, return bytes.

    Raises:
        StorageError: with check, git failed, timed out or could not start (its message included).
    """
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8")
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            input=stdin,
            timeout=GIT_TIMEOUT,
            check=False,
            env={**os.environ, **env} if env else None,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        if check:
            message = mask_credentials(str(error))[:500]  # a timeout names the command, which may hold a URL
            raise StorageError(f"git {args[0]} could not run: {message}", {"command": f"git {args[0]}"}) from error
        return None
    if done.returncode != 0:
        if check:
            # git echoes a remote's URL, credentials and all: mask them before anything is cut or shown
            message = mask_credentials(done.stderr.decode("utf-8", errors="replace")).strip()[:500]
            raise StorageError(f"git {args[0]} failed: {message}", {"command": f"git {args[0]}"})
        return None
    return done.stdout.decode("utf-8", errors="replace") if text else done.stdout


def _git(root: Path, *args: str) -> str | None:
    """A read: git's stdout as text, or None when it fails."""
    return run_git(root, *args, check=False)


def last_commits(root: Path) -> dict[str, str]:
    """Map each file under root (relative posix path) to the commit that last changed it."""
    out = _git(root, "log", "--format=%x00%H", "--name-only", "--relative", "--no-renames", "--", ".")
    if not out:
        return {}
    commits: dict[str, str] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("\x00"):
            current = line[1:]
        elif line and current:
            commits.setdefault(line, current)
    return commits


def uncommitted(root: Path) -> set[str]:
    """Files under root that differ from HEAD or are not tracked (relative posix paths)."""
    out = _git(root, "status", "--porcelain", "--untracked-files=all", "--no-renames", "--", ".")
    if out is None:
        return set()
    prefix = (_git(root, "rev-parse", "--show-prefix") or "").strip()
    changed = set()
    for line in out.splitlines():
        path = line[3:].strip('"')
        if prefix and path.startswith(prefix):
            path = path[len(prefix) :]
        changed.add(path)
    return changed


def revisions(root: Path) -> dict[str, str | None]:
    """Revision of each file: its last commit, or None if it has uncommitted changes or none."""
    commits = last_commits(root)
    dirty = uncommitted(root)
    return {path: (None if path in dirty else commit) for path, commit in commits.items()}


@dataclass(frozen=True)
class Revision:
    """One published revision of a file: a commit with its author, reviewer, summary and effective date."""

    commit: str  # 40 hex digits
    date: str  # author date, ISO 8601 with offset (git's %aI), e.g. 2026-09-01T10:00:00+02:00
    author: str
    author_email: str
    reviewer: str | None  # from the Reviewed-by trailer; None when the commit has none
    reviewer_email: str | None
    summary: str  # the subject line of the commit message
    effective: str | None  # the file's `effective` front matter at this commit, YYYY-MM-DD, or None

    def to_dict(self) -> dict:
        """Return the revision as plain JSON-ready data."""
        return asdict(self)


def check_commit(commit: object, field: str = "commit") -> str:
    """Return commit if it is 7 to 40 lowercase hex digits; raise InputError naming field otherwise."""
    if not isinstance(commit, str) or not COMMIT_PATTERN.fullmatch(commit):
        raise InputError(f"{field} must be 7 to 40 lowercase hex digits", {"field": field})
    return commit


def check_path(path: object, field: str = "path") -> str:
    """Return path normalised (posix, relative, no '..'); raise InputError naming field otherwise."""
    if not isinstance(path, str) or not path or any(c in path for c in "\\\0\n\r"):
        raise InputError("path must be a non-empty relative posix path", {"field": field})
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or pure.parts == (".",):
        raise InputError("path must be relative to the content folder, without '..'", {"field": field})
    return pure.as_posix()


def head(root: Path) -> str | None:
    """The HEAD commit of root's repository; None when root is not in a git work tree or has no commits."""
    out = _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    return (out.strip() or None) if out else None


def history(root: Path, path: str, limit: int | None = HISTORY_LIMIT) -> list[Revision]:
    """The commits that changed the file at path (relative to root), newest first; at most limit (None: all)."""
    path = check_path(path)
    args = ["--literal-pathspecs", "log", "-z", "--no-follow", "--no-show-signature", f"--format={_LOG_FORMAT}"]
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InputError("limit must be a positive integer", {"field": "limit"})
        args.append(f"--max-count={limit}")
    out = run_git(root, *args, "--", path, check=False, text=False)
    if not out:
        return []
    records = out.decode("utf-8", errors="replace").split("\0")
    entries = [_parse_log_entry(record) for record in records if record.strip("\n")]
    blobs = _read_blobs(root, [(entry["commit"], path) for entry in entries])
    return [Revision(**entry, effective=_effective(blob)) for entry, blob in zip(entries, blobs, strict=True)]


def show(root: Path, path: str, commit: str) -> str | None:
    """The text of the file at path (relative to root) at commit; None if it does not exist there."""
    check_commit(commit)
    path = check_path(path)
    return _read_blobs(root, [(commit, path)])[0]


def revision_as_of(root: Path, path: str, day: dt.date) -> Revision | None:
    """The revision in force on day: the newest whose effective date is on or before day; None if none."""
    cutoff = day.isoformat()
    for revision in history(root, path, limit=None):
        if revision.effective is not None and revision.effective <= cutoff:
            return revision
    return None


def changed_files(root: Path, old: str, new: str) -> list[str]:
    """Files under root (relative posix paths, sorted) that differ between commits old and new."""
    check_commit(old, "old")
    check_commit(new, "new")
    if head(root) is None:
        return []
    for field, commit in (("old", old), ("new", new)):
        if _git(root, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}") is None:
            raise InputError(f"{field} names no commit in the content repository", {"field": field})
    out = run_git(
        root, "diff", "-z", "--name-only", "--no-renames", "--relative", old, new, "--", ".", check=False, text=False
    )
    return sorted(name for name in (out or b"").decode("utf-8", errors="replace").split("\0") if name)


def _parse_log_entry(record: str) -> dict:
    """Turn one `git log` record in _LOG_FORMAT into Revision fields (all but effective)."""
    commit, date, author, email, summary, trailers = record.strip("\n").split(_FIELD, 5)
    reviewer = reviewer_email = None
    values = [v.strip() for v in trailers.split(_VALUE) if v.strip()]
    if values:
        match = _PERSON.match(values[0])
        if match:
            reviewer, reviewer_email = match["name"] or None, match["email"].strip() or None
        else:
            reviewer = values[0]
    return {
        "commit": commit,
        "date": date,
        "author": author,
        "author_email": email,
        "reviewer": reviewer,
        "reviewer_email": reviewer_email,
        "summary": summary,
    }


def _read_blobs(root: Path, wanted: list[tuple[str, str]]) -> list[str | None]:
    """Read the files (commit, path relative to root) with one `git cat-file --batch`; None for missing ones."""
    if not wanted:
        return []
    prefix = _git(root, "rev-parse", "--show-prefix")
    out = None
    if prefix is not None:
        query = "".join(f"{commit}:{prefix.strip()}{path}\n" for commit, path in wanted)
        out = run_git(root, "cat-file", "--batch", stdin=query, check=False, text=False)
    if out is None:
        return [None] * len(wanted)
    at, blobs = 0, []
    for _ in wanted:
        end = out.index(b"\n", at)
        header = out[at:end].rsplit(b" ", 2)
        at = end + 1
        if header[-1] in (b"missing", b"ambiguous") or len(header) != 3 or not header[2].isdigit():
            blobs.append(None)
            continue
        size = int(header[2])
        data = out[at : at + size]
        at += size + 1
        blobs.append(data.decode("utf-8", errors="replace") if header[1] == b"blob" else None)
    return blobs


def _effective(text: str | None) -> str | None:
    """The `effective` front-matter date of a file's text as YYYY-MM-DD; None if missing or unparseable."""
    split = split_front_matter(text) if text else None
    if split is None:
        return None
    try:
        data = yamlio.load(split[0])
    except yaml.YAMLError:
        return None
    value = data.get("effective") if isinstance(data, dict) else None
    if isinstance(value, dt.datetime):
        return None
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            return None
    return value.isoformat() if isinstance(value, dt.date) else None
