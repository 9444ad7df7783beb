"""Full and incremental index builds, written as generations and switched atomically.

Layout under the data folder::

    index/manifest.json          names the live generation
    index/<generation>/          keyword/ (whoosh), vectors.faiss,
                                 sections.json, documents.json, categories.json,
                                 taxonomy.npy (vectors of category phrasings),
                                 glossary.json, vocabulary.json
    embeddings.sqlite            vectors cached by content hash
    models/<model>/              the ONNX export of the embedding model

A build writes a new generation beside the live one, then replaces the
manifest (write temp, fsync, os.replace). Readers that see a new manifest
reload. A failed build removes its half-written generation and leaves the old
one serving. One build runs at a time (a lock file).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kb.errors import IndexError_, IndexNotBuiltError, Problem
from kb.indexing import embeddings
from kb.indexing.chunking import CHUNKING_VERSION, Section, chunk_document
from kb.indexing.keyword import items_for, keyword_backend
from kb.indexing.vector import FILE_NAME as VECTORS_FILE
from kb.indexing.vector import VectorIndex
from kb.library import Library, load_library
from kb.querytext import vocabulary
from kb.repository import revisions

FORMAT_VERSION = 5  # bump when the generation's files change shape
KEEP_GENERATIONS = 3
KEYWORD_BACKEND = "whoosh"
TAXONOMY_FILE = "taxonomy.npy"
GLOSSARY_FILE = "glossary.json"
VOCABULARY_FILE = "vocabulary.json"
TAXONOMY_ROWS_FILE = "taxonomy_rows.json"  # the category id of each row of TAXONOMY_FILE


def index_root(data_dir: Path) -> Path:
    """The folder holding the manifest and the generations."""
    return data_dir / "index"


def read_manifest(data_dir: Path) -> dict | None:
    """Return the manifest, or None if no index was ever built."""
    path = index_root(data_dir) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def current_generation(data_dir: Path) -> Path:
    """The live generation's folder.

    Raises:
        IndexNotBuiltError: there is no index yet.
    """
    manifest = read_manifest(data_dir)
    if manifest is None:
        raise IndexNotBuiltError(data_dir)
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexError_(f"the index in {data_dir} was built by another version of kb: run `kb index`")
    return index_root(data_dir) / manifest["generation"]


def _write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextmanager
def _build_lock(data_dir: Path):
    root = index_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class BuildReport:
    """What a build did."""

    generation: str | None
    documents: int = 0
    sections: int = 0
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    embedded: int = 0
    full: bool = False
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        """True when nothing changed and no new generation was written."""
        return self.generation is None

    def to_dict(self) -> dict:
        """Return the report as plain data."""
        return {
            "generation": self.generation,
            "documents": self.documents,
            "sections": self.sections,
            "changed": self.changed,
            "removed": self.removed,
            "embedded": self.embedded,
            "full": self.full,
            "seconds": round(self.seconds, 3),
            "problems": [p.to_dict() for p in self.problems],
            "skipped": self.skipped,
        }


def _category_text(library: Library) -> Callable[[str], str]:
    """Category id -> the searchable text of that category (name, description, example phrasings)."""
    return lambda cid: " ".join(library.categories[cid].search_texts) if cid in library.categories else ""


def _document_record(document, revision: str | None, category_text: Callable[[str], str]) -> dict:
    record = document.metadata()
    searchable = document.content_hash + "\n" + "\n".join(category_text(c) for c in document.categories)
    record.update(
        revision=revision,
        content_hash=document.content_hash,
        index_hash=hashlib.sha256(searchable.encode("utf-8")).hexdigest(),
        text=document.text,
        body=document.body,
        body_line=document.body_line,
    )
    return record


def build_index(
    content_dir: Path,
    data_dir: Path,
    model: str = "",
    full: bool = False,
    progress: Callable[[str, int, int], Callable[[int], None]] | None = None,
    library: Library | None = None,
    encoder: object | None = None,
) -> BuildReport:
    """Build a new index generation from the content folder and switch to it.

    Args:
        content_dir: the folder of SOP files.
        data_dir: the instance folder.
        model: the embedding model setting ("" for the packaged model).
        full: rebuild everything instead of reusing the live generation.
        progress: progress(label, total, already) returns a callback taking increments.
        library: an already loaded library (else loaded from content_dir).
        encoder: what embeds new sections (default: the torch encoder). A server passes its ONNX query
            encoder, whose vectors match torch's (cosine >= 0.9999), so that a publish never loads torch.

    Returns:
        The build report; report.generation is None if the index was already up to date.
    """
    started = time.perf_counter()
    library = library or load_library(content_dir)
    report = BuildReport(generation=None, problems=list(library.problems), skipped=list(library.skipped), full=full)
    revs = revisions(content_dir)
    indexed = {i: d for i, d in library.documents.items() if d.status != "retired"}
    category_text = _category_text(library)
    records = {i: _document_record(d, revs.get(d.path), category_text) for i, d in library.documents.items()}
    model_id = embeddings.model_identity(model)
    with _build_lock(data_dir):
        manifest = read_manifest(data_dir)
        old_dir = index_root(data_dir) / manifest["generation"] if manifest else None
        compatible = (
            manifest is not None
            and manifest.get("format") == FORMAT_VERSION
            and manifest.get("model") == model_id
            and manifest.get("keyword_backend") == KEYWORD_BACKEND
            and manifest.get("chunking") == CHUNKING_VERSION
            and old_dir.is_dir()
        )
        old_records = json.loads((old_dir / "documents.json").read_text()) if compatible else {}
        old_indexed = {i for i, r in old_records.items() if r["status"] != "retired"}
        if full or not compatible:
            report.full = True
            changed = set(indexed)
            removed: set[str] = set()
        else:
            changed = {
                i
                for i, d in indexed.items()
                if i not in old_records
                or old_records[i]["index_hash"] != records[i]["index_hash"]
                or old_records[i]["status"] == "retired"
            }
            removed = old_indexed - set(indexed)
        report.changed, report.removed = sorted(changed), sorted(removed)
        categories = [c.to_dict() for c in library.categories.values()]
        old_categories = json.loads((old_dir / "categories.json").read_text()) if compatible else None
        old_glossary = json.loads((old_dir / GLOSSARY_FILE).read_text()) if compatible else None
        same_files = old_categories == categories and old_glossary == library.glossary.to_dict()
        if not report.full and not changed and not removed and old_records == records and same_files:
            report.documents = len(indexed)
            report.sections = json.loads((old_dir / "build.json").read_text())["sections"]
            report.seconds = time.perf_counter() - started
            return report
        generation = dt.datetime.now(dt.UTC).strftime("g%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        target = index_root(data_dir) / generation
        try:
            report.generation = generation
            _write_generation(
                target,
                library,
                indexed,
                records,
                changed,
                removed,
                old_dir if not report.full else None,
                data_dir,
                model,
                model_id,
                progress,
                report,
                encoder,
            )
            _fsync_tree(target)
            _write_json_atomic(
                index_root(data_dir) / "manifest.json",
                {
                    "generation": generation,
                    "format": FORMAT_VERSION,
                    "model": model_id,
                    "keyword_backend": KEYWORD_BACKEND,
                    "chunking": CHUNKING_VERSION,
                    "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "documents": report.documents,
                    "sections": report.sections,
                },
            )
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        _prune(data_dir, keep=generation)
    report.seconds = time.perf_counter() - started
    return report


def _write_generation(
    target, library, indexed, records, changed, removed, old_dir, data_dir, model, model_id, progress, report, given
) -> None:
    target.mkdir(parents=True)
    sections: list[Section] = [s for doc_id in sorted(indexed) for s in chunk_document(indexed[doc_id])]
    report.documents, report.sections = len(indexed), len(sections)
    # Embeddings first: the slow part, and the cache makes a retry cheap.
    texts = {s.content_hash: s.embedding_text for s in sections}
    phrasings = [(c.id, text) for c in library.categories.values() if c.parent for text in c.search_texts]
    texts.update({_text_hash(text): text for _, text in phrasings})
    cache = embeddings.EmbeddingCache(data_dir / "embeddings.sqlite", model_id)
    encoder_holder: list = []

    def encoder():
        if not encoder_holder:
            encoder_holder.append(given or embeddings.torch_encoder(model))
        return encoder_holder[0]

    try:
        cached = cache.get_many(list(texts))
        missing = len([h for h in texts if h not in cached])
        tick = progress("embedding", missing, 0) if (progress and missing) else None
        vectors, report.embedded = embeddings.embed_with_cache(texts, encoder, cache, tick)
    finally:
        cache.close()
    # The ONNX query encoder is exported once per model, while torch is loaded anyway.
    if (encoder_holder and not given) or not (embeddings.onnx_folder(data_dir, model) / "meta.json").exists():
        try:
            embeddings.ensure_onnx(data_dir, model, embeddings.torch_encoder(model))
        except Exception as error:  # noqa: BLE001 - queries fall back to torch
            report.problems.append(
                Problem("(model)", 0, f"ONNX export failed, queries will use torch: {error}", severity="warning")
            )
    matrix = np.vstack([vectors[s.content_hash] for s in sections]) if sections else np.zeros((0, 384), np.float32)
    VectorIndex.build(matrix, target / VECTORS_FILE)
    taxonomy = [vectors[_text_hash(text)] for _, text in phrasings]
    np.save(target / TAXONOMY_FILE, np.vstack(taxonomy) if taxonomy else np.zeros((0, matrix.shape[1]), np.float32))
    backend = keyword_backend(KEYWORD_BACKEND)
    category_text = _category_text(library)
    if old_dir is None:
        backend.build(target / "keyword", items_for(sections, indexed, category_text))
    else:
        fresh = [s for s in sections if s.sop_id in changed]
        backend.update(
            old_dir / "keyword",
            target / "keyword",
            set(changed) | set(removed),
            items_for(fresh, indexed, category_text),
        )
    (target / "sections.json").write_text(json.dumps([s.to_dict() for s in sections], ensure_ascii=False))
    (target / "documents.json").write_text(json.dumps(records, ensure_ascii=False))
    categories = [c.to_dict() for c in library.categories.values()]
    (target / "categories.json").write_text(json.dumps(categories, ensure_ascii=False))
    (target / TAXONOMY_ROWS_FILE).write_text(json.dumps([cid for cid, _ in phrasings]))
    (target / GLOSSARY_FILE).write_text(json.dumps(library.glossary.to_dict(), ensure_ascii=False))
    words = vocabulary(
        [d.title for d in indexed.values()]
        + [" ".join(s.heading_path) + " " + s.text for s in sections]
        + [text for _, text in phrasings]
    )
    dictionary = embeddings.tokenizer_words(data_dir, model)
    (target / VOCABULARY_FILE).write_text(json.dumps({"library": words, "dictionary": dictionary}, ensure_ascii=False))
    (target / "build.json").write_text(
        json.dumps(
            {"sections": len(sections), "documents": len(indexed), "problems": [p.to_dict() for p in report.problems]}
        )
    )


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fsync_tree(folder: Path) -> None:
    """Flush every file of a generation to disk before the manifest points at it."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _prune(data_dir: Path, keep: str) -> None:
    """Delete all but the newest KEEP_GENERATIONS generations (never the live one)."""
    root = index_root(data_dir)
    generations = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("g")), key=lambda p: p.name)
    for old in generations[:-KEEP_GENERATIONS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
