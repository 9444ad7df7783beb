"""Retrieval for external knowledge clients (Dify's External Knowledge API): records scored 0..1.

A client names a *knowledge* (a part of the library), a query, how many records it wants (top_k), the lowest
score it accepts (score_threshold) and optional metadata conditions. kb answers records, one per SOP, each the
SOP's cited section as plain text with its metadata.

Knowledge ids (anything else: NotFoundError, Dify's 2001):

    kb                          the whole library
    business_line:<line>        SOPs of that business line and those for every line (as /api/v1/search filters)
    category:<id>               SOPs serving a category or, for a group id, any category in the group

The score. Hybrid search ranks by reciprocal rank fusion, whose score is a rank statistic, not a measure of
relevance: an off-topic query still gets a first result with the top fused score. The score here is the cosine
similarity of the query to the cited section's embedding (the vector index's own measure, all-MiniLM-L6-v2,
the measure Dify's own vector retrieval reports), clipped to 0..1. Records whose similarity is below
score_threshold are dropped; the rest keep kb's hybrid order, and each score is capped at the score of the
record above it, so records come sorted by score (Dify ranks by it) without losing that order. A score is
therefore at least score_threshold and at most the section's own similarity (metadata "similarity").
Measured on the 90 dev queries (../shared/eval/dev-queries.jsonl, shipped library, top_k 5): hybrid order
keeps hit@1 0.90 and hit@5 0.98 where sorting by similarity alone gives 0.73 and 0.91. The best record's
similarity is 0.35 or more for every dev query and at most 0.30 for 20 off-topic questions (recipes, sport,
weather), whence the documented threshold of 0.35: it answers every dev query (hit@1 0.88, hit@5 0.96) and
none of those 20; of 20 further off-topic questions written afterwards, 19 answer nothing and "how to clean a
cast iron pan" finds the card-data SOPs (PAN, 0.44). At 0.5, 88% of dev queries still get records. When the query encoder fails (degraded search, keywords only) no similarity can be measured: every
score is 0 and metadata "similarity" is null, so any threshold above 0 answers no records.

Metadata conditions (which fields, which operators) are kb/conditions.py's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from kb.conditions import Condition, matches, narrowing
from kb.documents import BUSINESS_LINES
from kb.errors import NotFoundError, QueryError
from kb.indexing import fusion
from kb.indexing.filters import Filters
from kb.redaction import redact, strip_pans
from kb.search import Searcher

WHOLE_LIBRARY = "kb"


@dataclass(frozen=True)
class Record:
    """One record: an SOP's cited section as plain text, its score in 0..1 and its metadata."""

    content: str
    score: float
    title: str
    metadata: dict


@dataclass(frozen=True)
class Retrieval:
    """The answer to one retrieval: records best first, the query as masked, and how it went."""

    query: str
    records: tuple[Record, ...]
    degraded: bool
    took_ms: float


def knowledge_filters(knowledge_id: str, category_ids: set[str]) -> Filters | None:
    """The index filters of a knowledge id (None for the whole library), given the taxonomy's category ids.

    Raises:
        NotFoundError: the id names no knowledge (Dify's 2001).
    """
    if knowledge_id == WHOLE_LIBRARY:
        return None
    kind, _, value = knowledge_id.partition(":")
    if kind == "business_line" and value in BUSINESS_LINES:
        return Filters(business_line=value)
    if kind == "category" and value in category_ids:
        return Filters(category=value)
    raise NotFoundError(
        f"knowledge_id: no knowledge {knowledge_id[:100]!r}; use {WHOLE_LIBRARY!r}, 'business_line:<line>' "
        f"({', '.join(BUSINESS_LINES)}) or 'category:<category id>'",
        {"field": "knowledge_id"},
    )


def _metadata(gen, key: str) -> dict:
    section, doc = gen.section(key), gen.documents[gen.sop_of(key)]
    return {
        "sop_id": doc["id"],
        "title": doc["title"],
        "type": doc["type"],
        "business_line": doc["business_line"],
        "categories": list(doc["categories"]),
        "tags": list(doc["tags"]),
        "owner": doc["owner"],
        "path": doc["path"],
        "heading": section["heading"],
        "anchor": section["anchor"],
        "revision": doc["revision"],
        "effective": doc["effective"],
        "review_by": doc["review_by"],
    }


def _cited(gen, group: fusion.Group, conditions: Sequence[Condition], logical: str) -> tuple[str, dict] | None:
    """The group's first section (best, then its others) whose metadata passes the conditions."""
    for key in (group.best, *(k for k, _ in group.others)):
        meta = _metadata(gen, key)
        if matches(conditions, logical, meta):
            return key, meta
    return None


def retrieve(
    searcher: Searcher,
    knowledge_id: str,
    query: str,
    top_k: int,
    score_threshold: float,
    conditions: Sequence[Condition] = (),
    logical: str = "and",
) -> Retrieval:
    """Find up to top_k records scoring at least score_threshold (see the module docstring for the score).

    Args:
        searcher: the Searcher of the served generation.
        knowledge_id: kb, business_line:<line> or category:<id>.
        query: the user's text; card numbers are masked before anything else.
        top_k: the most records to return (1 or more).
        score_threshold: the lowest score returned, 0..1 (0 returns every candidate).
        conditions: checked metadata conditions (check_condition).
        logical: "and" or "or".

    Raises:
        QueryError: the query is empty.
        NotFoundError: the knowledge id names no knowledge.
        IndexError_: no index generation can be served.
    """
    started = time.perf_counter()
    masked = redact(query.strip())
    if not masked:
        raise QueryError("query: must be a non-empty string", {"field": "query"})
    gen = searcher.generation
    category_ids = {c["id"] for c in gen.categories}
    filters = narrowing(conditions, logical, knowledge_filters(knowledge_id, category_ids), category_ids)
    prepared = gen.rewriter.prepare(strip_pans(masked))
    vector = searcher.query_vector(prepared.text)
    cited = []
    for group in searcher.rank(gen, prepared, "hybrid", filters, None):
        found = _cited(gen, group, conditions, logical)
        if found is not None:
            cited.append(found)
    keys = [key for key, _ in cited]
    similarities = gen.vectors.similarities(vector, keys) if vector is not None else [None] * len(keys)
    records, cap = [], 1.0
    for (key, meta), similarity in zip(cited, similarities, strict=True):
        score = min(1.0, max(0.0, similarity)) if similarity is not None else 0.0
        if score < score_threshold:
            continue
        cap = min(cap, score)
        records.append(Record(gen.section(key)["text"], cap, meta["title"], _shown(meta, similarity)))
        if len(records) == top_k:
            break
    took_ms = (time.perf_counter() - started) * 1000
    return Retrieval(masked, tuple(records), vector is None, took_ms)


def _shown(meta: dict, similarity: float | None) -> dict:
    """The metadata a record shows: where to cite it, and its own similarity."""
    keys = ("sop_id", "anchor", "heading", "revision", "business_line", "categories", "path", "type")
    shown = {key: meta[key] for key in keys}
    shown["url"] = f"/sops/{meta['sop_id']}#{meta['anchor']}"
    shown["similarity"] = similarity
    return shown
