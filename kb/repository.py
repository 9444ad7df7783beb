"""The git-backed content store: which commit last changed each file.

Every git call runs with a fixed argument list (no shell) from the content
folder; paths are relative to that folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

GIT_TIMEOUT = 60


def _git(root: Path, *args: str) -> str | None:
    """Run git in root; return stdout, or None when root is not in a git work tree."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


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
