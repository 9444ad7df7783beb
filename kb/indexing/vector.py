"""The vector engine: faiss inner product over unit vectors (cosine similarity).

Search sees only :class:`VectorIndex`: a query vector, a limit and filters in,
section keys with scores out. Row numbers stay inside this module. Below
HNSW_THRESHOLD sections the index is exact (IndexFlatIP: a scan, no training,
~1 ms at 10,000 sections); from it, an HNSW graph (IndexHNSWFlat), whose
recall@10 against exact search was measured at 100,000 sections
(scripts/bench_vectors.py, docs/relevance.md). Filters become a faiss ID
selector over the rows whose document passes, computed once per filter.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from kb.indexing.filters import Filters

FILE_NAME = "vectors.faiss"
HNSW_THRESHOLD = 50_000  # sections from which the index is an HNSW graph instead of an exact scan
HNSW_M = 32  # graph neighbours per node
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128  # candidates explored per query (faiss searches at least k)
_FILTER_CACHE = 64  # filter combinations whose allowed rows are kept


def set_threads(threads: int) -> None:
    """Limit faiss to this many OpenMP threads (1 in server processes)."""
    faiss.omp_set_num_threads(threads)


class VectorIndex:
    """Nearest sections to a query vector, as (section key, cosine) pairs."""

    def __init__(self, index: faiss.Index, keys: Sequence[str], documents: Sequence[dict]):
        """
        Args:
            index: the faiss index, row i for keys[i].
            keys: the section key of each row.
            documents: the document record (business_line, type, categories) of each row, for filters.
        """
        self._index = index
        self._keys = list(keys)
        self._documents = documents
        self._allowed: dict[Filters, np.ndarray] = {}
        self._lock = threading.Lock()
        if isinstance(index, faiss.IndexHNSW):
            index.hnsw.efSearch = HNSW_EF_SEARCH

    @classmethod
    def build(cls, vectors: np.ndarray, path: Path, threshold: int = HNSW_THRESHOLD) -> None:
        """Write an index of the row vectors to path: exact below threshold rows, HNSW from it.

        Args:
            vectors: (n, d) float32 unit vectors, row i for section i.
            path: the file to write.
            threshold: the number of rows from which to build an HNSW graph.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dimension = vectors.shape[1]
        if len(vectors) >= threshold:
            index = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            index = faiss.IndexFlatIP(dimension)
        if len(vectors):
            index.add(vectors)
        faiss.write_index(index, str(path))

    @classmethod
    def open(cls, path: Path, keys: Sequence[str], documents: Sequence[dict]) -> VectorIndex:
        """Load an index written by build, with the key and document record of each row."""
        return cls(faiss.read_index(str(path)), keys, documents)

    @property
    def kind(self) -> str:
        """"hnsw" or "exact"."""
        return "hnsw" if isinstance(self._index, faiss.IndexHNSW) else "exact"

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def _rows_passing(self, filters: Filters) -> np.ndarray:
        allowed = self._allowed.get(filters)
        if allowed is None:
            allowed = np.array([i for i, doc in enumerate(self._documents) if filters.matches(doc)], dtype=np.int64)
            with self._lock:
                if len(self._allowed) >= _FILTER_CACHE:
                    self._allowed.pop(next(iter(self._allowed)))
                self._allowed[filters] = allowed
        return allowed

    def search(self, vector: np.ndarray, limit: int, filters: Filters | None = None) -> list[tuple[str, float]]:
        """Return (section key, cosine) pairs, best first, only among sections passing the filters."""
        if len(self) == 0 or limit < 1:
            return []
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        params = None
        if filters is not None:
            allowed = self._rows_passing(filters)
            if len(allowed) == 0:
                return []
            selector = faiss.IDSelectorBatch(allowed)
            if isinstance(self._index, faiss.IndexHNSW):
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=HNSW_EF_SEARCH)
            else:
                params = faiss.SearchParameters(sel=selector)
        scores, rows = self._index.search(query, min(limit, len(self)), params=params)
        return [(self._keys[r], float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]
