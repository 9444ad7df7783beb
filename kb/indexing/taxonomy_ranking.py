"""The taxonomy ranking: SOPs ranked by how close a query is to the example phrasings of their categories.

The third retriever of hybrid search. Each row of a generation's taxonomy.npy is
the embedding of one phrasing of one category (taxonomy_rows.json names the
category); an SOP ranks where the best phrasing of any category it serves ranks.
Retired SOPs serve no category.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kb.indexing.filters import Filters


class TaxonomyRanking:
    """Rank SOPs for a query vector through their categories' phrasings."""

    def __init__(self, phrasings: np.ndarray, rows: Sequence[str], documents: dict[str, dict]):
        """
        Args:
            phrasings: (n, d) unit vectors, one per category phrasing.
            rows: the category id of each row of phrasings.
            documents: id -> document record (status, categories, business_line, type).
        """
        self._phrasings = phrasings
        self._rows = list(rows)
        self._documents = documents
        self._serving: dict[str, list[str]] = {}
        for record in documents.values():
            if record["status"] != "retired":
                for category in record["categories"]:
                    self._serving.setdefault(category, []).append(record["id"])

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def rows(self) -> tuple[str, ...]:
        """The category id of each phrasing."""
        return tuple(self._rows)

    @property
    def consistent(self) -> bool:
        """Whether there is one category id per phrasing vector."""
        return len(self._phrasings) == len(self._rows)

    def similarity(self, vector: np.ndarray, category: str | None = None) -> float:
        """The query's best cosine with any phrasing (of category and its children, when given); 0.0 with none."""
        if category is None:
            return float((self._phrasings @ vector).max()) if self._rows else 0.0
        rows = [i for i, c in enumerate(self._rows) if c == category or c.startswith(category + "/")]
        return float((self._phrasings[rows] @ vector).max()) if rows else 0.0

    def serving(self, category: str) -> list[str]:
        """The SOPs (not retired) that serve a category."""
        return self._serving.get(category, [])

    def rank(
        self, vector: np.ndarray, filters: Filters | None = None, limit: int | None = None
    ) -> tuple[list[str], float]:
        """SOP ids, best first: by the closest phrasing of any category each serves, passing the filters; and
        the ranking's confidence, the query's best cosine with any phrasing (0.0 with none).

        Args:
            vector: the query's unit vector.
            filters: optional restrictions.
            limit: most SOPs to return (None: all). In a large library every category serves many SOPs, and
                ranking all of them cost 10 ms a query at 100,000 sections; fusion gives ranks past the
                retrievers' candidates almost nothing.
        """
        if not self._rows:
            return [], 0.0
        similarity = self._phrasings @ vector
        confidence = float(similarity.max())
        ranked: dict[str, None] = {}
        for row in np.argsort(-similarity, kind="stable"):
            for sop_id in self._serving.get(self._rows[row], ()):
                if filters is None or filters.matches(self._documents[sop_id]):
                    ranked.setdefault(sop_id)
                    if limit is not None and len(ranked) >= limit:
                        return list(ranked), confidence
        return list(ranked), confidence

    def nearest(self, vector: np.ndarray) -> tuple[str, float] | None:
        """The category of the phrasing closest to vector, and that cosine (None when there are no phrasings)."""
        if not self._rows:
            return None
        similarity = self._phrasings @ vector
        best = int(np.argmax(similarity))
        return self._rows[best], float(similarity[best])
