"""The vector engine: faiss inner product over unit vectors (cosine similarity).

Search sees only :class:`VectorIndex`: a query vector, a limit and filters in,
section keys with scores out. Row numbers stay inside this module. Below
HNSW_THRESHOLD sections the index is exact (IndexFlatIP: a scan, no training);
from it, an HNSW graph (IndexHNSWFlat). The constants come from
scripts/bench_vectors.py on one faiss thread (docs/relevance.md, "Vectors at
scale"): at k=100 a scan takes a median 1.6 ms at 20,000 sections, 3.9 ms at
30,000 and 14.7 ms at 100,000; the graph (M 16, efSearch 128) 0.36-0.61 ms,
recall@10 >= 0.999, for a build of 3.8 s at 30,000 sections and 22 s at
100,000, redone on every publish.

Filters become a faiss bitmap selector over the rows whose document passes,
made once per filter. The graph searched under a filter misses many of the
best passing rows when few pass or when they lie away from the query (recall@10
0.46 with 1% of rows passing, 0.38 for a business line unrelated to the query,
at 100,000 rows), so a filtered search of an HNSW index scans the passing rows
exactly when at most FILTERED_SCAN_ROWS pass (recall 1), and otherwise searches
the graph with efSearch raised by rows / passing rows.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from kb.indexing.filters import Filters

FILE_NAME = "vectors.faiss"
HNSW_THRESHOLD = 30_000  # sections from which the index is an HNSW graph instead of an exact scan
HNSW_M = 16  # graph neighbours per node (32: recall@10 1.0000 for ~0.1 ms more per query at 100,000)
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128  # candidates explored per query (faiss explores at least k)
FILTERED_SCAN_ROWS = 50_000  # a filtered search of an HNSW index scans the passing rows when at most this many pass
HNSW_EF_FILTERED_MAX = 1024  # efSearch of a filtered graph search, raised by rows / passing rows, at most this
_FILTER_CACHE = 64  # filter combinations whose allowed rows are kept


def set_threads(threads: int) -> None:
    """Limit faiss to this many OpenMP threads (1 in server processes)."""
    faiss.omp_set_num_threads(threads)


class _Passing:
    """The rows passing one filter: how many, and a faiss selector of them (a bitmap, one bit per row)."""

    def __init__(self, rows: np.ndarray, total: int):
        """
        Args:
            rows: the row numbers that pass.
            total: the number of rows in the index.
        """
        mask = np.zeros(total, dtype=bool)
        mask[rows] = True
        self.count = len(rows)
        self.bitmap = np.packbits(mask, bitorder="little")  # kept: the selector reads it in place
        self.selector = faiss.IDSelectorBitmap(self.bitmap)


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
        self._rows = {key: row for row, key in enumerate(self._keys)}
        self._passing: dict[Filters, _Passing] = {}
        self._lock = threading.Lock()
        self._graph = isinstance(index, faiss.IndexHNSW)
        # the rows themselves, scanned exactly: the flat index, or the HNSW graph's flat storage
        self._flat = faiss.downcast_index(index.storage) if self._graph else index
        if self._graph:
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
        """The index's kind: "hnsw" or "exact"."""
        return "hnsw" if self._graph else "exact"

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def _rows_passing(self, filters: Filters) -> _Passing:
        passing = self._passing.get(filters)
        if passing is None:
            rows = [i for i, doc in enumerate(self._documents) if filters.matches(doc)]
            passing = _Passing(np.array(rows, dtype=np.int64), len(self))
            with self._lock:
                if len(self._passing) >= _FILTER_CACHE:
                    self._passing.pop(next(iter(self._passing)), None)
                self._passing[filters] = passing
        return passing

    def search(self, vector: np.ndarray, limit: int, filters: Filters | None = None) -> list[tuple[str, float]]:
        """Return (section key, cosine) pairs, best first, only among sections passing the filters.

        An exact index scans the passing rows. An HNSW index searches its graph, except that it scans the
        passing rows exactly when they number at most FILTERED_SCAN_ROWS or the limit (a graph searched
        under a selective filter, or one passing rows far from the query, misses many of the best rows);
        a filtered graph search explores HNSW_EF_SEARCH x rows / passing rows candidates, up to
        HNSW_EF_FILTERED_MAX.

        Args:
            vector: the unit query vector.
            limit: the most pairs to return; below 1, none.
            filters: restrictions on the sections' documents, or None.
        """
        total = len(self)
        if total == 0 or limit < 1:
            return []
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        index, params, candidates = self._index, None, total
        if filters is not None:
            passing = self._rows_passing(filters)
            if passing.count == 0:
                return []
            candidates = passing.count
            params = faiss.SearchParameters(sel=passing.selector)
            if self._graph and candidates > max(FILTERED_SCAN_ROWS, limit):
                ef = min(HNSW_EF_FILTERED_MAX, max(HNSW_EF_SEARCH, -(-HNSW_EF_SEARCH * total // candidates)))
                params = faiss.SearchParametersHNSW(sel=passing.selector, efSearch=ef)
            else:
                index = self._flat
        elif self._graph and limit >= total:
            index = self._flat  # every row is asked for: a scan returns them all, which a graph need not
        scores, rows = index.search(query, min(limit, candidates), params=params)
        return [(self._keys[r], float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]

    def similarities(self, vector: np.ndarray, keys: Sequence[str]) -> list[float]:
        """The cosine of the query vector with each named section (its stored unit vector), in the keys' order.

        Args:
            vector: the unit query vector.
            keys: section keys of this index.

        Raises:
            KeyError: a key is not in the index.
        """
        if not keys:
            return []
        rows = np.array([self._rows[key] for key in keys], dtype=np.int64)
        stored = self._flat.reconstruct_batch(rows)
        return [float(s) for s in stored @ np.asarray(vector, dtype=np.float32).reshape(-1)]
