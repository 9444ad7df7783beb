"""Full and incremental index builds, each written as a new generation and switched atomically.

A build writes a new generation beside the live one (the layout, the manifest,
the lock, sealing and pruning are kb.indexing.generation's), seals it (fsync,
then build.json with every file's size and sha256), then replaces the manifest.
Readers that see a new manifest reload. A failed build removes its half-written
generation and leaves the old one serving; a build killed outright leaves an
unsealed folder that nothing serves and the next build prunes. An incremental
build starts from the live generation only if that verifies; otherwise it
rebuilds in full. Failures surface as StorageError (the disk) or IndexError_.

Every generation holds the category classifier (kb.indexing.category_model),
trained on the taxonomy's phrasings and the labelled tickets the caller passes
in (kb/indexing never reads the workflow database itself). A build whose
examples and model are those of the live generation (which verifies) copies its
classifier instead of training it again, even a full one: training is a pure
function of them, and it is the slow part of a build whose sections are cached,
so a publish never pays for it. New or removed tickets alone make a new
generation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kb.errors import IndexError_, KbError, Problem, StorageError
from kb.indexing import category_model, embeddings, query_encoder, section_encoder
from kb.indexing import generation as layout
from kb.indexing.chunking import CHUNKING_VERSION, Section, chunk_document
from kb.indexing.generation import (
    FORMAT_VERSION,
    GLOSSARY_FILE,
    KEEP_GENERATIONS,
    TAXONOMY_FILE,
    TAXONOMY_ROWS_FILE,
    VOCABULARY_FILE,
    current_generation,
    index_root,
    read_manifest,
)
from kb.indexing.keyword import DEFAULT_ENGINE, items_for, keyword_backend
from kb.indexing.vector import FILE_NAME as VECTORS_FILE
from kb.indexing.vector import HNSW_THRESHOLD, VectorIndex
from kb.library import Library, load_library
from kb.querytext import vocabulary
from kb.redaction import strip_pans
from kb.repository import revisions

__all__ = [
    "FORMAT_VERSION",
    "GLOSSARY_FILE",
    "KEEP_GENERATIONS",
    "TAXONOMY_FILE",
    "TAXONOMY_ROWS_FILE",
    "VOCABULARY_FILE",
    "BuildReport",
    "build_index",
    "current_generation",
    "index_root",
    "read_manifest",
]


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
    classifier: dict = field(default_factory=dict)  # trained or reused, examples, held-out accuracy, seconds

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
            "classifier": self.classifier,
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
    engine: str = DEFAULT_ENGINE,
    tickets: Sequence[tuple[str, str]] = (),
) -> BuildReport:
    """Build a new index generation from the content folder and switch to it.

    Args:
        content_dir: the folder of SOP files.
        data_dir: the instance folder.
        model: the embedding model setting ("" for the packaged model).
        full: rebuild everything instead of reusing the live generation.
        progress: progress(label, total, already) returns a callback taking increments.
        library: an already loaded library (else loaded from content_dir).
        encoder: what embeds new sections (default: kb.indexing.section_encoder's choice, the model's fp32 ONNX
            export when there is one, else torch). A server passes its ONNX query encoder, so that a publish
            never loads torch.
        engine: the keyword engine (kb.indexing.keyword.ENGINES); a live generation built with another one
            is not reused: the build is then a full one.
        tickets: labelled tickets (text, category id), already redacted (kb.tickets.training_examples), that
            train the category classifier beside the taxonomy's phrasings; those naming a category the taxonomy
            no longer has are left out with a warning.

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
    examples = _examples(library, tickets, report)
    training = category_model.training_hash(examples, model_id)
    with layout.build_lock(data_dir):
        keyword_backend(engine)  # an unknown engine fails before anything is written
        base = _reusable_base(data_dir, model_id, engine)
        old_dir = base["folder"] if base else None
        old_records = base["documents"] if base else {}
        old_indexed = {i for i, r in old_records.items() if r["status"] != "retired"}
        if full or base is None:
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
        same_files = base is not None and (base["categories"], base["glossary"], base["classifier"]) == (
            categories,
            library.glossary.to_dict(),
            training,
        )
        if not report.full and not changed and not removed and old_records == records and same_files:
            report.documents = len(indexed)
            report.sections = base["sections"]
            report.seconds = time.perf_counter() - started
            return report
        generation = layout.new_name()
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
                engine,
                examples,
                training,
                old_dir if base is not None and base["classifier"] == training else None,
            )
            layout.write_manifest(
                data_dir,
                {
                    "generation": generation,
                    "format": FORMAT_VERSION,
                    "model": model_id,
                    "keyword_engine": engine,
                    "chunking": CHUNKING_VERSION,
                    "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "documents": report.documents,
                    "sections": report.sections,
                },
            )
        except BaseException as error:
            shutil.rmtree(target, ignore_errors=True)
            if isinstance(error, KbError) or not isinstance(error, Exception):
                raise
            if isinstance(error, OSError | sqlite3.Error):  # the disk or the embedding cache
                raise StorageError(f"index build failed, the old generation still serves: {error}") from error
            # whoosh, faiss and the model fail their own ways
            raise IndexError_(f"index build failed, the old generation still serves: {error!r}") from error
        layout.prune(data_dir, keep=generation)
    report.seconds = time.perf_counter() - started
    return report


def _reusable_base(data_dir: Path, model_id: str, engine: str) -> dict | None:
    """The live generation's data if an incremental build may start from it (same format, model,
    keyword engine and chunking, and it verifies), else None: the build is then a full one."""
    try:
        manifest = read_manifest(data_dir)
    except IndexError_:
        return None
    if manifest is None or (manifest.get("model"), manifest.get("keyword_engine"), manifest.get("chunking")) != (
        model_id,
        engine,
        CHUNKING_VERSION,
    ):
        return None
    folder = index_root(data_dir) / manifest["generation"]
    try:
        record = layout.verify(folder, engine)
        return {
            "folder": folder,
            "sections": record["sections"],
            "documents": json.loads((folder / layout.DOCUMENTS_FILE).read_bytes()),
            "categories": json.loads((folder / layout.CATEGORIES_FILE).read_bytes()),
            "glossary": json.loads((folder / GLOSSARY_FILE).read_bytes()),
            "classifier": category_model.read_record(folder).get("training", {}).get("hash"),
        }
    except (IndexError_, OSError, ValueError):
        return None


def _write_generation(
    target,
    library,
    indexed,
    records,
    changed,
    removed,
    old_dir,
    data_dir,
    model,
    model_id,
    progress,
    report,
    given,
    engine,
    examples,
    training,
    classifier_from,
) -> None:
    target.mkdir(parents=True)
    sections: list[Section] = [s for doc_id in sorted(indexed) for s in chunk_document(indexed[doc_id])]
    report.documents, report.sections = len(indexed), len(sections)
    # Embeddings first: the slow part, and the cache makes a retry cheap.
    texts = {s.content_hash: s.embedding_text for s in sections}
    phrasings = [(c.id, text) for c in library.categories.values() if c.parent for text in c.search_texts]
    texts.update({_text_hash(text): text for _, text in phrasings})
    texts.update({_text_hash(e.text): e.text for e in examples})
    cache = embeddings.EmbeddingCache(data_dir / "embeddings.sqlite", model_id)
    encoder_holder: list = []

    def encoder():
        if not encoder_holder:
            encoder_holder.append(given or section_encoder.section_encoder(data_dir, model))
        return encoder_holder[0]

    try:
        cached = cache.get_many(list(texts))
        missing = len([h for h in texts if h not in cached])
        tick = progress("embedding", missing, 0) if (progress and missing) else None
        vectors, report.embedded = embeddings.embed_with_cache(texts, encoder, cache, tick)
    finally:
        cache.close()
    _export_query_model(data_dir, model, report, embedded=bool(encoder_holder) and not given)
    matrix = np.vstack([vectors[s.content_hash] for s in sections]) if sections else np.zeros((0, 384), np.float32)
    VectorIndex.build(matrix, target / VECTORS_FILE)
    taxonomy = [vectors[_text_hash(text)] for _, text in phrasings]
    np.save(target / TAXONOMY_FILE, np.vstack(taxonomy) if taxonomy else np.zeros((0, matrix.shape[1]), np.float32))
    backend = keyword_backend(engine)
    category_text = _category_text(library)
    if old_dir is None:
        backend.build(target / layout.KEYWORD_FOLDER, items_for(sections, indexed, category_text))
    else:
        fresh = [s for s in sections if s.sop_id in changed]
        backend.update(
            old_dir / layout.KEYWORD_FOLDER,
            target / layout.KEYWORD_FOLDER,
            set(changed) | set(removed),
            items_for(fresh, indexed, category_text),
        )
    (target / layout.SECTIONS_FILE).write_text(json.dumps([s.to_dict() for s in sections], ensure_ascii=False))
    (target / layout.DOCUMENTS_FILE).write_text(json.dumps(records, ensure_ascii=False))
    categories = [c.to_dict() for c in library.categories.values()]
    (target / layout.CATEGORIES_FILE).write_text(json.dumps(categories, ensure_ascii=False))
    (target / TAXONOMY_ROWS_FILE).write_text(json.dumps([cid for cid, _ in phrasings]))
    (target / GLOSSARY_FILE).write_text(json.dumps(library.glossary.to_dict(), ensure_ascii=False))
    _classifier(target, examples, vectors, classifier_from, training, progress, report)
    words = vocabulary(
        [d.title for d in indexed.values()]
        + [" ".join(s.heading_path) + " " + s.text for s in sections]
        + [text for _, text in phrasings]
    )
    dictionary = embeddings.tokenizer_words(data_dir, model)
    (target / VOCABULARY_FILE).write_text(json.dumps({"library": words, "dictionary": dictionary}, ensure_ascii=False))
    layout.seal(
        target,
        {
            "sections": len(sections),
            "documents": len(indexed),
            "keyword_engine": engine,
            "vectors": "hnsw" if len(sections) >= HNSW_THRESHOLD else "exact",
            "problems": [p.to_dict() for p in report.problems],
        },
    )


def _export_query_model(data_dir: Path, model: str, report: BuildReport, embedded: bool) -> None:
    """Export the model to ONNX once (while torch is loaded anyway, or when no export exists) and make its int8
    copy; a failure, or no export and no torch to make one, is a warning in the report: queries fall back."""
    exported = section_encoder.has_export(data_dir, model)
    if exported and not embedded:
        return
    if not exported and not section_encoder.torch_available():
        folder = embeddings.onnx_folder(data_dir, model)
        report.problems.append(
            Problem("(model)", 0, f"no ONNX export in {folder} and no torch to make one", severity="warning")
        )
        return
    try:
        exporter = None if exported else embeddings.torch_encoder(model)  # the loaded one, when it embedded
        query_encoder.ensure_onnx(data_dir, model, exporter, quantized=True)
    except Exception as error:  # noqa: BLE001 - queries fall back to torch
        report.problems.append(
            Problem("(model)", 0, f"ONNX export failed, queries will use torch: {error}", severity="warning")
        )


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _examples(library: Library, tickets: Sequence[tuple[str, str]], report: BuildReport) -> list:
    """The classifier's training examples: every phrasing of every category, then the tickets whose category
    the taxonomy has (card-number masks removed: they carry no meaning); a warning names the others."""
    examples = [
        category_model.Example(text, c.id) for c in library.categories.values() if c.parent for text in c.search_texts
    ]
    known = {e.category for e in examples}
    unknown = sorted({category for _, category in tickets if category not in known})
    examples += [
        category_model.Example(text, category, "ticket")
        for text, category in ((strip_pans(t).strip(), c) for t, c in tickets if c in known)
        if text
    ]
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        report.problems.append(
            Problem(
                "(tickets)",
                0,
                f"labelled tickets name {len(unknown)} categories the taxonomy does not have ({shown}); "
                "they do not train the classifier (`kb tickets list`, `kb tickets remove`)",
                severity="warning",
            )
        )
    return examples


def _classifier(target, examples, vectors, reuse_from, training, progress, report) -> None:
    """Train the category classifier into the new generation, or copy the live one's when its training hash
    matches (same examples, same model)."""
    if reuse_from is not None:
        category_model.copy_files(reuse_from, target)
        record = category_model.read_record(target)
        report.classifier = {"trained": bool(record.get("trained")), "reused": True, **record.get("training", {})}
        return
    record = {"training": {"hash": training, "examples": len(examples)}}
    if len({e.category for e in examples}) < 2:
        category_model.write_untrained(target, "the taxonomy has fewer than two categories", record)
        report.classifier = {"trained": False, "reused": False, "examples": len(examples)}
        return
    steps = category_model.CALIBRATION_FOLDS + 1 if len(examples) <= category_model.CALIBRATION_FULL_BELOW else 2
    tick = progress("classifier", steps, 0) if progress else None
    matrix = np.vstack([vectors[_text_hash(e.text)] for e in examples])
    model = category_model.train(examples, matrix, training, tick=tick)
    model.save(target)
    report.classifier = {
        "trained": True,
        "reused": False,
        **model.record["training"],
        "accuracy": model.record["calibration"].get("accuracy"),
    }
