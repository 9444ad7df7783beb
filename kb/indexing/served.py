"""The generation a process serves: loaded, checked for consistency, and switched when the disk changes.

:func:`open_generation` verifies a generation's build record (sizes and
sha256), opens every part and checks that the keyword index, the vectors and
sections.json count the same sections; anything wrong is an IndexError_.

:class:`LiveIndex` keeps one process's generation. Before each use it stats the
manifest and the index folder; when either changed it chooses again
(kb.indexing.generation.choose): the manifest's generation, else the newest one
that opens (degraded, with a reason and what to run), else an IndexError_ that
every request gets until the disk changes. Each change of state is logged once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.errors import IndexError_, KbError
from kb.glossary import Glossary
from kb.indexing import generation as layout
from kb.indexing.keyword import Filters, KeywordIndex
from kb.indexing.vector import VectorIndex
from kb.querytext import QueryRewriter

log = logging.getLogger(__name__)


class Generation:
    """One loaded index generation: keyword and vector indexes plus section and document data."""

    def __init__(self, folder: Path, backend: type[KeywordIndex]):
        self.name = folder.name
        self.keyword = backend.open(folder / layout.KEYWORD_FOLDER)
        self.vectors = VectorIndex.open(folder / layout.VECTORS_FILE)
        self.sections: list[dict] = _json(folder / layout.SECTIONS_FILE)
        self.documents: dict[str, dict] = _json(folder / layout.DOCUMENTS_FILE)
        self.categories: list[dict] = _json(folder / layout.CATEGORIES_FILE)
        self.row_of = {s["key"]: i for i, s in enumerate(self.sections)}
        self._allowed: dict[Filters, np.ndarray] = {}
        # Vectors of every category's phrasings, and the SOPs that serve each category.
        self.taxonomy = np.load(folder / layout.TAXONOMY_FILE, allow_pickle=False)
        self.taxonomy_rows: list[str] = _json(folder / layout.TAXONOMY_ROWS_FILE)
        self.serving: dict[str, list[str]] = {}
        for record in self.documents.values():
            if record["status"] != "retired":
                for category in record["categories"]:
                    self.serving.setdefault(category, []).append(record["id"])
        glossary = Glossary.from_dict(_json(folder / layout.GLOSSARY_FILE))
        words = _json(folder / layout.VOCABULARY_FILE)
        self.rewriter = QueryRewriter(glossary, words["library"], self.keyword.analyze, frozenset(words["dictionary"]))

    def sop_of(self, key: str) -> str:
        """The SOP id of a section key."""
        return self.sections[self.row_of[key]]["sop_id"]

    def anchor_of(self, key: str) -> str:
        """The anchor of a section key."""
        return self.sections[self.row_of[key]]["anchor"]

    def taxonomy_ranking(self, vector: np.ndarray, filters: Filters | None) -> list[str]:
        """SOPs ranked by how close the query is to a phrasing of one of their categories."""
        if not len(self.taxonomy_rows):
            return []
        similarity = self.taxonomy @ vector
        ranked: dict[str, None] = {}
        for row in np.argsort(-similarity, kind="stable"):
            for sop_id in self.serving.get(self.taxonomy_rows[row], ()):
                if filters is None or filters.matches(self.documents[sop_id]):
                    ranked.setdefault(sop_id)
        return list(ranked)

    def allowed_rows(self, filters: Filters) -> np.ndarray:
        """Rows of sections whose documents pass the filters (cached per filter)."""
        if filters not in self._allowed:
            rows = [i for i, s in enumerate(self.sections) if filters.matches(self.documents[s["sop_id"]])]
            self._allowed[filters] = np.array(rows, dtype=np.int64)
        return self._allowed[filters]


def _json(path: Path):
    return json.loads(path.read_bytes())


def open_generation(folder: Path, backend: type[KeywordIndex]) -> Generation:
    """Verify, load and cross-check one generation.

    Raises:
        IndexError_: the generation is incomplete, damaged or inconsistent; the message says which file.
    """
    record = layout.verify(folder)
    try:
        loaded = Generation(folder, backend)
        counts = {
            "keyword": len(loaded.keyword),
            "vectors": len(loaded.vectors),
            layout.SECTIONS_FILE: len(loaded.sections),
            layout.BUILD_FILE: record["sections"],
        }
        rows = (len(loaded.taxonomy), len(loaded.taxonomy_rows))
    except KbError:
        raise
    except Exception as error:  # noqa: BLE001 - whoosh, faiss, numpy and json each fail their own way
        raise IndexError_(f"generation {folder.name} cannot be opened ({type(error).__name__}: {error})") from error
    if len(set(counts.values())) != 1 or rows[0] != rows[1]:
        shown = ", ".join(f"{k} {v}" for k, v in counts.items())
        raise IndexError_(f"generation {folder.name} is inconsistent ({shown}; taxonomy {rows[0]} vs {rows[1]})")
    return loaded


@dataclass(frozen=True)
class _State:
    generation: Generation | None = None
    reason: str | None = None  # why a fallback generation serves
    error: IndexError_ | None = None  # why nothing serves


class LiveIndex:
    """One process's served generation, chosen again whenever the manifest or the index folder changes."""

    def __init__(self, data_dir: Path, backend: type[KeywordIndex]):
        self.data_dir = Path(data_dir)
        self.backend = backend
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
                layout.verify(folder)
                return current
            return open_generation(folder, self.backend)

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
