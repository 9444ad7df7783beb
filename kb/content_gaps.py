"""Content gaps: the queries with no good answer, grouped by meaning, ranked by volume, each near a category.

A query has no good answer when it found no SOP, when a person's search found some but none was opened, or when
feedback said the SOP it led to did not help (kb/analytics.py gathers them from the search log and the feedback
table, already masked and counted per normalised query). Here they are grouped with kb's own embeddings, the
query encoder the Searcher uses, so that "charged twice" and "double charge on my card" land together:

- each query is embedded once (card masks removed, as search does), in batches, at most MAX_QUERIES of them, the
  most frequent first;
- agglomerative grouping with average linkage on cosine (scikit-learn, already kb's dependency for the category
  classifier): two groups merge while the mean cosine between their queries is at least THRESHOLD. Deterministic:
  the queries are ordered by volume, then text, before grouping. THRESHOLD 0.5 and average linkage were chosen on
  the model (all-MiniLM-L6-v2): paraphrases of one need ("charged twice for the same order", "double charge on
  my card", "I was billed two times for one purchase"; "payout still not received", "creator payout has not
  arrived") score 0.55 to 0.7, different needs 0.05 to 0.45 ("cancel my subscription" and "how do I close my
  account": 0.49, kept apart). On 290 replayed searches (scripts/replay_searches.py), a greedy grouping by
  centroid drifted into groups of 33 unrelated queries; average linkage at 0.45 made groups of 18 mixed ones,
  complete linkage split paraphrases; average at 0.5 kept most groups to one need;
- a group's nearest category is the taxonomy category (kb/indexing/taxonomy_ranking.py) with the phrasing
  closest to the group's centroid, with that cosine.

Groups are ranked by volume (searches and feedback counted), then by their first query, and cut to MAX_GROUPS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import AgglomerativeClustering

from kb.indexing.query_encoder import query_key
from kb.indexing.taxonomy_ranking import TaxonomyRanking
from kb.redaction import strip_pans

THRESHOLD = 0.5  # the least mean cosine between two groups' queries that merges them
MAX_QUERIES = 300  # distinct queries embedded per analysis, the most frequent first
MAX_GROUPS = 20  # groups returned
MAX_EXAMPLES = 5  # example queries per group
BATCH = 64  # queries per call to the encoder

Encode = Callable[[Sequence[str]], np.ndarray]  # texts -> unit vectors, one row each


@dataclass(frozen=True)
class GapQuery:
    """One distinct query with no good answer: its masked text, and how often (by source)."""

    query: str
    count: int
    sources: Mapping[str, int]  # "zero_results", "no_click", "unhelpful" -> how many


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def embed(queries: Sequence[GapQuery], encode: Encode) -> np.ndarray:
    """The unit vector of each query (card masks removed and normalised as the query cache keys a query)."""
    texts = [query_key(strip_pans(q.query)) or q.query for q in queries]
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    matrix = np.vstack(
        [np.asarray(encode(texts[i : i + BATCH]), dtype=np.float32) for i in range(0, len(texts), BATCH)]
    )
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def group(queries: Sequence[GapQuery], vectors: np.ndarray, threshold: float = THRESHOLD) -> list[list[int]]:
    """Average-linkage grouping by cosine; each group a list of query indexes by volume, groups by their first.

    Args:
        queries: the queries (their counts set the order).
        vectors: one unit vector per query.
        threshold: the least mean cosine between two groups' queries that merges them.
    """
    order = sorted(range(len(queries)), key=lambda i: (-queries[i].count, queries[i].query))
    if len(order) < 2:
        return [order] if order else []
    clustering = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=1.0 - threshold
    )
    labels = clustering.fit_predict(vectors[order])
    groups: dict[int, list[int]] = {}
    for index, label in zip(order, labels, strict=True):
        groups.setdefault(int(label), []).append(index)
    return sorted(groups.values(), key=lambda members: order.index(members[0]))


def nearest_category(
    vector: np.ndarray, taxonomy: TaxonomyRanking, names: Mapping[str, str]
) -> dict[str, object] | None:
    """The category whose closest phrasing is nearest the vector: {"id", "name", "similarity"} (None with none)."""
    found = taxonomy.nearest(vector)
    if found is None:
        return None
    category, similarity = found
    return {"id": category, "name": names.get(category, category), "similarity": round(similarity, 3)}


def content_gaps(
    queries: Sequence[GapQuery],
    encode: Encode,
    taxonomy: TaxonomyRanking | None,
    names: Mapping[str, str],
    threshold: float = THRESHOLD,
    max_groups: int = MAX_GROUPS,
) -> list[dict]:
    """Queries with no good answer grouped by meaning, by volume: each {"count", "queries", "examples", "sources",
    "category"}.

    Args:
        queries: distinct queries with counts; only the MAX_QUERIES most frequent are embedded.
        encode: the query encoder's encode (texts -> unit vectors).
        taxonomy: the served generation's taxonomy ranking (its phrasings), for the nearest category.
        names: category id -> name.
        threshold: see THRESHOLD.
        max_groups: the most groups returned.
    """
    kept = sorted(queries, key=lambda q: (-q.count, q.query))[:MAX_QUERIES]
    if not kept:
        return []
    vectors = embed(kept, encode)
    groups = []
    for indexes in group(kept, vectors, threshold):
        members = [kept[i] for i in indexes]  # already by volume, then text
        centroid = _unit(np.sum([q.count * vectors[i] for i, q in zip(indexes, members, strict=True)], axis=0))
        sources: dict[str, int] = {}
        for q in members:
            for source, n in q.sources.items():
                sources[source] = sources.get(source, 0) + n
        groups.append(
            {
                "count": sum(q.count for q in members),
                "queries": len(members),
                "examples": [{"query": q.query, "count": q.count} for q in members[:MAX_EXAMPLES]],
                "sources": dict(sorted(sources.items())),
                "category": nearest_category(centroid, taxonomy, names) if taxonomy is not None else None,
            }
        )
    groups.sort(key=lambda g: (-g["count"], g["examples"][0]["query"]))
    return groups[:max_groups]
