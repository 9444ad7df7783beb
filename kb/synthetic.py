"""Deterministic synthetic libraries for benchmarks: N sections of realistic SOP text in a real git repository.

A synthetic library is made from a source library (the shipped one): its taxonomy
and glossary are copied as they are, and every document is valid SOP Markdown
(front matter as kb.documents requires, categories from the taxonomy) whose
sections are sentences of the source's sections, drawn with a seeded RNG, so
BM25 and the embeddings see text like the real thing. The same N, seed and
source give the same bytes. A generated folder carries a marker naming what it
holds and is reused while the marker matches; it is written last, so a half
generated folder is regenerated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kb.documents import BUSINESS_LINES, parse_document
from kb.errors import DocumentError, InputError, Problem
from kb.files import atomic_write
from kb.indexing.chunking import chunk_document
from kb.library import load_library
from kb.repository import run_git

SEED = "kb-synthetic"
FORMAT = 2  # bump when the generated text changes for the same seed and source
SECTIONS_PER_DOCUMENT = 12  # the shipped library has about 13
MAX_SECTIONS = 100_000
MARKER = ".kb-synthetic.json"
COPIED_FILES = ("categories.yaml", "glossary.yaml")  # values.yaml is not: placeholders are resolved in the source
SOP_HEADINGS = ("Purpose", "Procedure", "Customer macro", "Escalation")  # what kb lint requires of an SOP
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_UNSAFE = re.compile(r"[<>`*_\[\]|#\\{}]")  # Markdown or HTML syntax: such a sentence is left out
_COMMIT_ENV = {
    "GIT_AUTHOR_NAME": "kb bench",
    "GIT_AUTHOR_EMAIL": "bench@kb.invalid",
    "GIT_COMMITTER_NAME": "kb bench",
    "GIT_COMMITTER_EMAIL": "bench@kb.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


@dataclass(frozen=True)
class Corpus:
    """What synthetic documents are drawn from: the source library's words, names and taxonomy."""

    source: Path
    sentences: tuple[str, ...]
    headings: tuple[str, ...]
    titles: tuple[str, ...]
    owners: tuple[str, ...]
    tags: tuple[str, ...]
    categories: tuple[str, ...]  # leaf categories of the taxonomy

    @property
    def digest(self) -> str:
        """sha256 of everything a generated library depends on besides N and the seed."""
        parts = [self.sentences, self.headings, self.titles, self.owners, self.tags, self.categories]
        copied = [(self.source / name).read_bytes().hex() for name in COPIED_FILES if (self.source / name).exists()]
        return hashlib.sha256(json.dumps([parts, copied, FORMAT]).encode()).hexdigest()


@dataclass(frozen=True)
class SyntheticLibrary:
    """A generated library: its repository, its content folder (the repository's sops/) and its size."""

    repo: Path
    content: Path
    sections: int
    documents: int
    generated: bool  # False when an existing folder was reused


def load_corpus(source: Path) -> Corpus:
    """Read the source library's sentences, headings, titles, owners, tags and leaf categories.

    Raises:
        DocumentError: the source library has errors, or too little text to draw from.
    """
    library = load_library(source)
    if library.errors:
        raise DocumentError(library.errors)
    sentences: dict[str, None] = {}
    headings: dict[str, None] = {}
    for document in library.documents.values():
        for section in chunk_document(document):
            headings.setdefault(section.heading)
            for line in section.text.splitlines():
                for sentence in _SENTENCE_END.split(line.strip()):
                    if 30 <= len(sentence) <= 300 and sentence[-1] in ".!?" and not _UNSAFE.search(sentence):
                        sentences.setdefault(sentence)
    documents = sorted(library.documents.values(), key=lambda d: d.id)
    leaves = sorted(c for c, category in library.categories.items() if category.parent)
    if len(sentences) < 50 or len(headings) < SECTIONS_PER_DOCUMENT or not leaves:
        raise DocumentError([Problem(str(source), 1, "too little text to build a synthetic library from")])
    return Corpus(
        source=source,
        sentences=tuple(sorted(sentences)),
        headings=tuple(sorted(h for h in headings if not _UNSAFE.search(h) and h not in SOP_HEADINGS)),
        titles=tuple(sorted({d.title for d in documents if not _UNSAFE.search(d.title)})),
        owners=tuple(sorted({d.owner for d in documents})),
        tags=tuple(sorted({t for d in documents for t in d.tags})),
        categories=tuple(leaves),
    )


def render_documents(sections: int, corpus: Corpus, seed: str = SEED) -> Iterator[tuple[str, str]]:
    """Yield (path relative to the content folder, file text) of a library of exactly `sections` sections.

    Each document has SECTIONS_PER_DOCUMENT sections (the last one the rest), every one an H2 with one or
    two paragraphs; an SOP has the sections kb lint requires (so it can be published), in the shipped order.
    Document i draws from its own RNG, so it is the same whatever the library's size.
    """
    count = -(-sections // SECTIONS_PER_DOCUMENT)
    for index in range(count):
        rng = random.Random(f"{seed}:{FORMAT}:{index}")
        wanted = min(SECTIONS_PER_DOCUMENT, sections - index * SECTIONS_PER_DOCUMENT)
        business_line = rng.choice(BUSINESS_LINES)
        sop_id = f"syn-{index + 1:06d}"
        effective = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(365))
        front = {
            "id": sop_id,
            "title": json.dumps(f"{rng.choice(corpus.titles)}, case {index + 1}"),  # a JSON string is YAML
            "type": "policy" if rng.random() < 0.1 or wanted < len(SOP_HEADINGS) else "sop",
            "business_line": business_line,
            "categories": "[" + ", ".join(sorted(rng.sample(corpus.categories, rng.choice((1, 1, 2))))) + "]",
            "owner": rng.choice(corpus.owners),
            "status": "published",
            "effective": effective.isoformat(),
            "review_by": (effective + dt.timedelta(days=540)).isoformat(),
            "tags": "[" + ", ".join(sorted(rng.sample(corpus.tags, min(len(corpus.tags), rng.randint(2, 4))))) + "]",
        }
        lines = ["---", *(f"{key}: {value}" for key, value in front.items()), "---", ""]
        headings = rng.sample(corpus.headings, wanted)
        if front["type"] == "sop":
            headings = ["Purpose", *headings[: wanted - 4], "Procedure", "Customer macro", "Escalation"]
        for heading in headings:
            lines += [f"## {heading}", ""]
            for _ in range(rng.choice((1, 1, 1, 2))):
                lines += [" ".join(rng.sample(corpus.sentences, rng.randint(2, 4))), ""]
        yield f"{business_line}/{sop_id}.md", "\n".join(lines)


def sample_texts(sections: int, source: Path, seed: str = SEED) -> list[str]:
    """The embedding texts of a synthetic library of `sections` sections, made in memory (nothing written).

    The first documents of every synthetic library are these (document i draws from its own RNG), so the
    texts are what a build of any larger library embeds first: what an encoder's rate is measured on.

    Raises:
        InputError: sections out of range.
        DocumentError: the source library is unusable, or a rendered document does not parse.
    """
    if not 1 <= sections <= MAX_SECTIONS:
        raise InputError(f"from 1 to {MAX_SECTIONS:,} sections, got {sections:,}", {"field": "synthetic"})
    texts = []
    for path, text in render_documents(sections, load_corpus(source), seed):
        document, problems = parse_document(text, path)
        if document is None:
            raise DocumentError(problems)
        texts += [section.embedding_text for section in chunk_document(document)]
    return texts


def _marker(sections: int, corpus: Corpus, seed: str) -> dict:
    return {"format": FORMAT, "sections": sections, "seed": seed, "source": corpus.digest}


def generate(
    sections: int,
    source: Path,
    repo: Path,
    seed: str = SEED,
    progress: Callable[[str, int, int], Callable[[int], None]] | None = None,
) -> SyntheticLibrary:
    """Make (or reuse) a synthetic library of `sections` sections as a git repository at repo (content in sops/).

    Args:
        sections: how many sections, 1 to MAX_SECTIONS.
        source: the library whose taxonomy, glossary and sentences are used.
        repo: the repository folder; replaced unless its marker says it holds this library already.
        seed: the RNG seed; the same seed, size and source give the same files.
        progress: progress(label, total, already) returns a callback taking increments.

    Raises:
        InputError: sections out of range.
        DocumentError: the source library is unusable.
        StorageError: git or the disk failed.
    """
    if not 1 <= sections <= MAX_SECTIONS:
        raise InputError(f"--synthetic: from 1 to {MAX_SECTIONS:,} sections, got {sections:,}", {"field": "synthetic"})
    corpus = load_corpus(source)
    marker = _marker(sections, corpus, seed)
    content = repo / "sops"
    documents = -(-sections // SECTIONS_PER_DOCUMENT)
    try:
        if json.loads((repo / MARKER).read_text()) == marker:
            return SyntheticLibrary(repo, content, sections, documents, generated=False)
    except (OSError, ValueError):
        pass
    shutil.rmtree(repo, ignore_errors=True)
    content.mkdir(parents=True)
    for name in COPIED_FILES:
        if (source / name).exists():
            shutil.copyfile(source / name, content / name)
    tick = progress("writing synthetic SOPs", documents, 0) if progress else None
    for path, text in render_documents(sections, corpus, seed):
        (content / path).parent.mkdir(parents=True, exist_ok=True)
        (content / path).write_text(text, encoding="utf-8")  # the marker, written last, makes the folder valid
        if tick:
            tick(1)
    run_git(repo, "init", "-q", "-b", "main")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", f"synthetic library: {sections} sections", env=_COMMIT_ENV)
    atomic_write(repo / MARKER, json.dumps(marker, indent=2) + "\n")
    return SyntheticLibrary(repo, content, sections, documents, generated=True)
