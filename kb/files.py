"""The one atomic write, the one file lock and the one bounded read of kb.

:func:`atomic_write` writes a temporary file beside the target, flushes and
fsyncs it, renames it over the target and fsyncs the folder: a reader sees the
old file or the new one, never half of either, even across a crash. A write
that fails (a full disk, say) removes its temporary file and raises
:class:`kb.errors.StorageError`; the old file stays as it was.

:func:`file_lock` holds an exclusive ``flock`` on a lock file for the length of
a ``with`` block; with ``blocking=False`` it yields False at once when another
process holds it.

:func:`read_text` reads a content file (a document, categories.yaml, ...) as
UTF-8 within a size bound; whatever stops it is a Problem, never an exception.
"""

from __future__ import annotations

import fcntl
import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kb.errors import Problem, StorageError


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def atomic_write(path: Path, data: str | bytes, mode: int | None = None) -> None:
    """Replace path with data (text is written as UTF-8, newlines untouched), all or nothing.

    Args:
        path: the file to write; its folder is created if missing.
        data: the whole new content.
        mode: permission bits for a new file (default: the umask's).

    Raises:
        StorageError: the write failed (full disk, permissions); path is unchanged.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
        try:
            view = memoryview(raw)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"could not write {path.name}: {error.strerror or error}", {"path": path.name}) from error


@contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on path (created if missing) inside the block.

    Yields:
        True when the lock is held; False only with blocking=False when another holder has it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_text(path: Path, name: str, max_bytes: int) -> tuple[str | None, list[Problem]]:
    """Read a content file as UTF-8 within a size bound; anything that stops it is a Problem, not an exception.

    Args:
        path: the file.
        name: the file as shown in messages.
        max_bytes: the largest file read; a larger one is refused without reading it.
    """
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return None, [Problem(name, 1, "is not a regular file (a folder, device or pipe): cannot be read")]
        if info.st_size > max_bytes:
            return None, [Problem(name, 1, f"is {info.st_size:,} bytes; the largest file read is {max_bytes:,}")]
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as error:
        return None, [Problem(name, 1, f"cannot be read: {error.strerror or error.__class__.__name__}")]
    if len(raw) > max_bytes:
        return None, [Problem(name, 1, f"is more than {max_bytes:,} bytes; the largest file read is {max_bytes:,}")]
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        return None, [Problem(name, line, f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at offset {error.start})")]
