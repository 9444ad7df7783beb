"""The generation a process serves, switched when the disk changes.

:class:`LiveIndex` keeps one process's generation, opened by
kb.indexing.generation.open_generation (which verifies it, checks that it was
built with the configured keyword engine, and cross-checks its counts). Before each use it stats the
manifest and the index folder; when either changed it chooses again
(kb.indexing.generation.choose): the manifest's generation, else the newest one
that opens (degraded, with a reason and what to run), else an IndexError_ that
every request gets until the disk changes. Each change of state is logged once.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from kb.errors import IndexError_
from kb.indexing import generation as layout
from kb.indexing.generation import Generation, open_generation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _State:
    generation: Generation | None = None
    reason: str | None = None  # why a fallback generation serves
    error: IndexError_ | None = None  # why nothing serves


class LiveIndex:
    """One process's served generation, chosen again whenever the manifest or the index folder changes."""

    def __init__(self, data_dir: Path, engine: str):
        self.data_dir = Path(data_dir)
        self.engine = engine
        self._lock = threading.RLock()
        self._stamp: tuple | None = None
        self._state = _State()

    def _stamp_now(self) -> tuple:
        root = layout.index_root(self.data_dir)
        stamps = []
        for path in (root / layout.MANIFEST_FILE, root):
            try:
                st = os.stat(path)
            except OSError:
                stamps.append(None)
            else:
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamps)

    def state(self) -> _State:
        """The current state, chosen again first if the disk changed."""
        stamp = self._stamp_now()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._state = self._choose()
                    self._stamp = stamp
        return self._state

    def get(self) -> Generation:
        """The served generation.

        Raises:
            IndexError_: no generation can be served (IndexNotBuiltError when none was ever built).
        """
        state = self.state()
        if state.error is not None:
            raise state.error
        return state.generation

    def _choose(self) -> _State:
        old = self._state
        current = old.generation
        if current is not None and old.reason is None and self._still_live(current.name):
            return old  # a build started or pruned: the live generation has not changed

        def opener(folder: Path) -> Generation:
            if current is not None and folder.name == current.name:
                layout.verify(folder, self.engine)
                return current
            return open_generation(folder, self.engine)

        try:
            loaded, reason = layout.choose(self.data_dir, opener)
        except IndexError_ as error:
            if old.error is None or old.error.message != error.message:
                log.error("index unavailable: %s", error.message)
            return _State(error=error)
        if reason and reason != old.reason:
            log.error("index degraded: %s", reason)
        elif not reason and (old.reason or old.error):
            log.warning("index healthy again: serving generation %s", loaded.name)
        else:
            log.debug("serving index generation %s", loaded.name)
        return _State(generation=loaded, reason=reason)

    def _still_live(self, name: str) -> bool:
        try:
            manifest = layout.read_manifest(self.data_dir)
        except IndexError_:
            return False
        folder = layout.index_root(self.data_dir) / name
        return (
            manifest is not None
            and manifest["generation"] == name
            and manifest["format"] == layout.FORMAT_VERSION
            and (folder / layout.BUILD_FILE).is_file()
        )
