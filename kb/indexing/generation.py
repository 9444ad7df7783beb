"""Index generations: the one owner of their layout, manifest, build lock, sealing, pruning, choosing and loading.

Layout under the data folder::

    index/manifest.json          names the live generation (kb.files.atomic_write: old or new, never half)
    index/.build.lock            one build at a time (kb.files.file_lock)
    index/g<UTC time>_<hex>/     one generation: keyword/ (the engine's), vectors.faiss, sections.json,
                                 documents.json, categories.json, taxonomy.npy, taxonomy_rows.json,
                                 glossary.json, vocabulary.json, classifier.json and classifier.npz
                                 (the category classifier, kb.indexing.category_model), and build.json

build.json is written last, after every other file is on disk (fsync), and
records the format, the keyword engine, the counts, and the size and sha256 of every file: a
generation is complete when its build.json verifies. A build that dies leaves
a folder without one, which nothing serves and the next build prunes.

:func:`choose` picks what a process serves: the manifest's generation when it
verifies and opens, else the newest one on disk that does (degraded, with the
reason), else nothing (an IndexError_). :func:`open_generation` loads one for
serving (a :class:`Generation`): its engines open behind their interfaces
(kb.indexing.keyword, kb.indexing.vector, kb.indexing.taxonomy_ranking), and
nothing outside them sees whoosh, tantivy or faiss objects or row numbers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from kb.errors import IndexError_, IndexNotBuiltError, KbError
from kb.files import atomic_write, file_lock, fsync_folder
from kb.glossary import Glossary
from kb.indexing import category_model
from kb.indexing.category_model import CLASSIFIER_FILE
from kb.indexing.keyword import keyword_backend
from kb.indexing.taxonomy_ranking import TaxonomyRanking
from kb.indexing.vector import FILE_NAME as VECTORS_FILE
from kb.indexing.vector import VectorIndex
from kb.querytext import QueryRewriter

# Bump when the generation's files change shape (6: build.json holds the file record; 7: and the keyword
# engine, and vectors may be an HNSW graph; 8: the category classifier; 9: each section in sections.json says
# whether it is links_only). A generation of another format is never served nor built upon: `kb index` rebuilds.
FORMAT_VERSION = 9
KEEP_GENERATIONS = 3
ANALYZED_SECTIONS = 4096  # analysed section texts (for snippets) each loaded generation keeps
MANIFEST_FILE = "manifest.json"
BUILD_FILE = "build.json"
LOCK_FILE = ".build.lock"
KEYWORD_FOLDER = "keyword"
SECTIONS_FILE = "sections.json"
DOCUMENTS_FILE = "documents.json"
CATEGORIES_FILE = "categories.json"
TAXONOMY_FILE = "taxonomy.npy"
TAXONOMY_ROWS_FILE = "taxonomy_rows.json"  # the category id of each row of TAXONOMY_FILE
GLOSSARY_FILE = "glossary.json"
VOCABULARY_FILE = "vocabulary.json"
REQUIRED_FILES = frozenset(
    {
        VECTORS_FILE,
        SECTIONS_FILE,
        DOCUMENTS_FILE,
        CATEGORIES_FILE,
        TAXONOMY_FILE,
        TAXONOMY_ROWS_FILE,
        GLOSSARY_FILE,
        VOCABULARY_FILE,
        CLASSIFIER_FILE,
    }
)
REBUILD_HINT = "run `kb index --full`"
ENGINE_HINT = "run `kb index` to rebuild it for this engine"
_NAME = re.compile(r"^g\d{8}T\d{6}(_?\d{6})?[-_][0-9a-f]{6,32}$")
_CHUNK = 1 << 20


def index_root(data_dir: Path) -> Path:
    """The folder holding the manifest and the generations."""
    return Path(data_dir) / "index"


def new_name() -> str:
    """A new generation's name, g<UTC date>T<time>_<microseconds>_<hex>: names sort by age.

    Underscores keep every run of digits short: a name never looks like a card number, which
    the log filter would mask (``g20261201T203159227263-0a...`` once did).
    """
    return dt.datetime.now(dt.UTC).strftime("g%Y%m%dT%H%M%S_%f") + "_" + uuid.uuid4().hex[:6]


def read_manifest(data_dir: Path) -> dict | None:
    """Return the manifest, or None if no index was ever built.

    Raises:
        IndexError_: the manifest is unreadable, not JSON, or its fields have the wrong types.
    """
    path = index_root(data_dir) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise IndexError_(f"{MANIFEST_FILE} is unreadable ({type(error).__name__})", {"file": MANIFEST_FILE}) from None
    if not isinstance(manifest, dict):
        raise IndexError_(f"{MANIFEST_FILE} is not a JSON object", {"file": MANIFEST_FILE})
    name, version = manifest.get("generation"), manifest.get("format")
    if not isinstance(name, str) or not _NAME.match(name):
        raise IndexError_(f"{MANIFEST_FILE}: generation is not a generation name", {"file": MANIFEST_FILE})
    if isinstance(version, bool) or not isinstance(version, int):
        raise IndexError_(f"{MANIFEST_FILE}: format is not a whole number", {"file": MANIFEST_FILE})
    return manifest


def write_manifest(data_dir: Path, manifest: dict) -> None:
    """Switch the live generation: replace the manifest atomically (StorageError if the disk refuses)."""
    atomic_write(index_root(data_dir) / MANIFEST_FILE, json.dumps(manifest, ensure_ascii=False, indent=1))


@contextmanager
def build_lock(data_dir: Path) -> Iterator[None]:
    """Hold the data folder's build lock: one build at a time, across processes."""
    with file_lock(index_root(data_dir) / LOCK_FILE):
        yield


def generation_folders(data_dir: Path) -> list[Path]:
    """Every generation folder on disk, newest first (complete or not)."""
    root = index_root(data_dir)
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    return sorted((p for p in entries if _NAME.match(p.name) and p.is_dir()), key=lambda p: p.name, reverse=True)


def _files_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != BUILD_FILE)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def seal(folder: Path, record: dict) -> dict:
    """Flush a written generation to disk and write its build.json (format, counts, size and sha256 per file).

    Returns:
        The build record as written.
    """
    files = {}
    for path in _files_of(folder):
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        files[path.relative_to(folder).as_posix()] = [path.stat().st_size, _sha256(path)]
    for sub in {p.parent for p in folder.rglob("*") if p.is_file()} - {folder}:
        fsync_folder(sub)
    sealed = {**record, "format": FORMAT_VERSION, "files": files}
    atomic_write(folder / BUILD_FILE, json.dumps(sealed, ensure_ascii=False))
    fsync_folder(folder.parent)
    return sealed


def verify(folder: Path, engine: str | None = None) -> dict:
    """Check that a generation is complete and undamaged: its build.json, and each file at its size and sha256.

    Args:
        folder: the generation.
        engine: the keyword engine it must have been built with (None: any).

    Raises:
        IndexError_: naming the generation and the first problem found.
    """
    name = folder.name
    if not folder.is_dir():
        raise IndexError_(f"generation {name} is missing", {"generation": name})
    try:
        record = json.loads((folder / BUILD_FILE).read_bytes())
    except FileNotFoundError:
        raise IndexError_(f"generation {name} is incomplete (no {BUILD_FILE})", {"generation": name}) from None
    except (OSError, ValueError) as error:
        raise IndexError_(f"{name}/{BUILD_FILE} is unreadable ({type(error).__name__})", {"generation": name}) from None
    if not isinstance(record, dict):
        raise IndexError_(f"{name}/{BUILD_FILE} is not a JSON object", {"generation": name})
    if record.get("format") != FORMAT_VERSION:
        raise IndexError_(f"generation {name} was built by another version of kb", {"generation": name})
    if engine is not None and record.get("keyword_engine") != engine:
        built = record.get("keyword_engine")
        raise IndexError_(
            f"generation {name} was built with the {built} keyword engine, and KB_KEYWORD_ENGINE is {engine}: "
            + ENGINE_HINT,
            {"generation": name},
        )
    files = record.get("files")
    if not isinstance(files, dict) or not isinstance(record.get("sections"), int):
        raise IndexError_(f"{name}/{BUILD_FILE} has no valid file record", {"generation": name})
    missing = sorted(REQUIRED_FILES - set(files))
    if missing:
        raise IndexError_(f"{name}/{missing[0]} is not in its file record", {"generation": name})
    for relative, entry in sorted(files.items()):
        path = folder / relative
        valid = isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int)
        if not valid or ".." in Path(relative).parts or Path(relative).is_absolute():
            raise IndexError_(f"{name}/{BUILD_FILE}: bad entry for {relative[:80]!r}", {"generation": name})
        try:
            size = path.stat().st_size
            if size != entry[0]:
                raise IndexError_(f"{name}/{relative} is {size} bytes, {entry[0]} expected", {"generation": name})
            if _sha256(path) != entry[1]:
                raise IndexError_(f"{name}/{relative} changed since the build (sha256)", {"generation": name})
        except OSError:
            raise IndexError_(f"{name}/{relative} is missing or unreadable", {"generation": name}) from None
    return record


def current_generation(data_dir: Path, engine: str | None = None) -> Path:
    """The folder this data folder serves: the manifest's generation if it verifies (built with engine, when
    given), else the newest that does.

    Raises:
        IndexNotBuiltError: there is no index yet.
        IndexError_: no generation on disk is complete and undamaged.
    """
    return choose(data_dir, lambda folder: (verify(folder, engine), folder)[1])[0]


def choose(data_dir: Path, opener: Callable[[Path], object]) -> tuple[object, str | None]:
    """Open the generation to serve with opener(folder), which raises IndexError_ for a bad one.

    Returns:
        (what opener returned, None) for the manifest's generation, or (..., reason) for a fallback.

    Raises:
        IndexNotBuiltError: no manifest and no generation folder.
        IndexError_: nothing opens; the message says why and what to run.
    """
    problems: list[str] = []
    try:
        manifest = read_manifest(data_dir)
    except IndexError_ as error:
        manifest = None
        problems.append(error.message)
    if manifest is not None and manifest["format"] != FORMAT_VERSION:
        problems.append(f"{MANIFEST_FILE} was written by another version of kb (format {manifest['format']})")
        manifest = None
    named = manifest["generation"] if manifest else None
    folders = generation_folders(data_dir)
    if named is None and not problems:
        if not folders:
            raise IndexNotBuiltError(data_dir)
        problems.append(f"{MANIFEST_FILE} is missing")
    order = ([index_root(data_dir) / named] if named else []) + [p for p in folders if p.name != named]
    for folder in order:
        try:
            opened = opener(folder)
        except IndexError_ as error:
            problems.append(error.message)
            continue
        if folder.name == named and not problems:
            return opened, None
        return opened, f"{'; '.join(problems)}; serving {folder.name}: {REBUILD_HINT}"
    where = index_root(data_dir)
    hint = "" if all(ENGINE_HINT in problem for problem in problems) else f": {REBUILD_HINT}"
    raise IndexError_(f"no usable index generation in {where} ({'; '.join(problems)}){hint}")


def prune(data_dir: Path, keep: str) -> None:
    """Under the build lock: keep the newest KEEP_GENERATIONS complete generations (and keep), remove the rest.

    Folders without a build.json are left by builds that died (the lock says none is running) and go too,
    as do temporary files of an interrupted manifest write.
    """
    root = index_root(data_dir)
    complete = 0
    for folder in generation_folders(data_dir):
        if folder.name == keep:
            complete += 1
            continue
        if (folder / BUILD_FILE).is_file() and complete < KEEP_GENERATIONS:
            complete += 1
            continue
        shutil.rmtree(folder, ignore_errors=True)
    for stale in root.glob(f".{MANIFEST_FILE}.*.tmp"):
        stale.unlink(missing_ok=True)


class Generation:
    """One loaded generation: its keyword, vector and taxonomy engines, its category classifier, and its section
    and document data."""

    def __init__(self, folder: Path, engine: str):
        self.name = folder.name
        self.engine = engine
        self.keyword = keyword_backend(engine).open(folder / KEYWORD_FOLDER)
        self.sections: list[dict] = _json(folder / SECTIONS_FILE)
        self.documents: dict[str, dict] = _json(folder / DOCUMENTS_FILE)
        self.categories: list[dict] = _json(folder / CATEGORIES_FILE)
        self._by_key = {s["key"]: s for s in self.sections}
        self._first_citable: dict[str, str] = {}
        for s in self.sections:
            if not s["links_only"]:
                self._first_citable.setdefault(s["sop_id"], s["key"])
        self.vectors = VectorIndex.open(
            folder / VECTORS_FILE,
            [s["key"] for s in self.sections],
            [self.documents[s["sop_id"]] for s in self.sections],
        )
        self.taxonomy = TaxonomyRanking(
            np.load(folder / TAXONOMY_FILE, allow_pickle=False), _json(folder / TAXONOMY_ROWS_FILE), self.documents
        )
        glossary = Glossary.from_dict(_json(folder / GLOSSARY_FILE))
        words = _json(folder / VOCABULARY_FILE)
        self.rewriter = QueryRewriter(glossary, words["library"], self.keyword.analyze, frozenset(words["dictionary"]))
        self.classifier = category_model.load(folder)  # None when the taxonomy had fewer than two categories
        self._analyzed: OrderedDict[str, list] = OrderedDict()
        self._analyzed_lock = threading.Lock()

    def section(self, key: str) -> dict:
        """A section's record (key, sop_id, heading, anchor, text, ...) by its key."""
        return self._by_key[key]

    def citable(self, key: str) -> bool:
        """Whether a section may be cited: any but a links-only one (a "Related documents" list)."""
        return not self._by_key[key]["links_only"]

    def first_citable(self, sop_id: str) -> str | None:
        """The key of a document's first citable section in document order (None if it has none)."""
        return self._first_citable.get(sop_id)

    def sop_of(self, key: str) -> str:
        """The SOP id of a section key."""
        return self._by_key[key]["sop_id"]

    def anchor_of(self, key: str) -> str:
        """The anchor of a section key."""
        return self._by_key[key]["anchor"]

    def analyzed(self, key: str, text: str) -> list[tuple[int, int, str]]:
        """The keyword engine's (start, end, term) spans of a section's text, analysed once per generation."""
        spans = self._analyzed.get(key)
        if spans is None:
            spans = self.keyword.analyze(text)
            with self._analyzed_lock:
                self._analyzed[key] = spans
                if len(self._analyzed) > ANALYZED_SECTIONS:
                    self._analyzed.popitem(last=False)
        return spans


def _json(path: Path):
    return json.loads(path.read_bytes())


def open_generation(folder: Path, engine: str) -> Generation:
    """Verify, load and cross-check one generation for serving with a keyword engine.

    Raises:
        IndexError_: the generation is incomplete, damaged, inconsistent or built with another engine;
            the message says which file, or what to run.
    """
    record = verify(folder, engine)
    try:
        loaded = Generation(folder, engine)
        counts = {
            "keyword": len(loaded.keyword),
            "vectors": len(loaded.vectors),
            SECTIONS_FILE: len(loaded.sections),
            BUILD_FILE: record["sections"],
        }
    except KbError:
        raise
    except Exception as error:  # noqa: BLE001 - whoosh, tantivy, faiss, numpy and json each fail their own way
        raise IndexError_(f"generation {folder.name} cannot be opened ({type(error).__name__}: {error})") from error
    if len(set(counts.values())) != 1 or not loaded.taxonomy.consistent:
        shown = ", ".join(f"{k} {v}" for k, v in counts.items())
        agree = "agree" if loaded.taxonomy.consistent else "disagree"
        raise IndexError_(f"generation {folder.name} is inconsistent ({shown}; taxonomy rows and vectors {agree})")
    return loaded
