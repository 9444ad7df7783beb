"""Relevance evaluation: hit@k and MRR per search mode over labelled queries.

A query file is JSON lines, ``{"query": str, "relevant": [sop ids]}``. A hit@k
counts a query when one of its relevant SOPs is among the first k distinct SOPs
returned; MRR averages 1 / rank of the first relevant SOP (0 when none in the
results). Queries whose relevant SOPs are all missing from the index are left
out and counted as skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kb.errors import DocumentError, Problem
from kb.search import MODES, Searcher

CUTOFFS = (1, 3, 5)
RESULTS_DEPTH = 10


@dataclass(frozen=True)
class LabelledQuery:
    """One evaluation query and the SOP ids that answer it."""

    query: str
    relevant: tuple[str, ...]
    line: int


def load_queries(path: Path) -> list[LabelledQuery]:
    """Read and validate a JSON-lines query file; every bad line is reported at once.

    Raises:
        DocumentError: with one problem per bad line.
    """
    problems, queries = [], []
    name = str(path)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(Problem(name, number, f"not valid JSON: {error.msg}"))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("query"), str) or not item["query"].strip():
            problems.append(Problem(name, number, "must be an object with a non-empty string", field="query"))
            continue
        relevant = item.get("relevant")
        if not isinstance(relevant, list) or not relevant or not all(isinstance(r, str) for r in relevant):
            problems.append(Problem(name, number, "must be a non-empty list of SOP ids", field="relevant"))
            continue
        queries.append(LabelledQuery(item["query"], tuple(relevant), number))
    if problems:
        raise DocumentError(problems)
    return queries


def first_relevant_rank(ranked: list[str], relevant: tuple[str, ...]) -> int | None:
    """1-based rank of the first relevant id in ranked, or None."""
    for rank, sop_id in enumerate(ranked, start=1):
        if sop_id in relevant:
            return rank
    return None


def score(ranks: list[int | None]) -> dict[str, float]:
    """hit@1/3/5 and MRR from the rank of the first relevant SOP of each query."""
    n = len(ranks) or 1
    metrics = {f"hit@{c}": sum(1 for r in ranks if r is not None and r <= c) / n for c in CUTOFFS}
    metrics["mrr"] = sum(1.0 / r for r in ranks if r is not None) / n
    return {key: round(value, 4) for key, value in metrics.items()}


def evaluate(
    searcher: Searcher, queries: list[LabelledQuery], modes: tuple[str, ...] = MODES
) -> tuple[dict, list[LabelledQuery]]:
    """Run every query in every mode.

    Returns:
        ({"n": N, "modes": {mode: metrics}}, skipped queries).
    """
    known = set(searcher.document_ids())
    kept = [q for q in queries if any(r in known for r in q.relevant)]
    skipped = [q for q in queries if q not in kept]
    result = {"n": len(kept), "modes": {}}
    for mode in modes:
        ranks = []
        for item in kept:
            hits = searcher.search(item.query[: searcher.settings["MAX_QUERY_CHARS"]], RESULTS_DEPTH, mode).hits
            ranks.append(first_relevant_rank([h.sop_id for h in hits], item.relevant))
        result["modes"][mode] = score(ranks)
    return result, skipped
