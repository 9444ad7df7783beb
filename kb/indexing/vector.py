"""The vector index: faiss inner product over unit vectors (cosine similarity).

Row i of the index is section i of the generation's sections.json. The index is
exact (IndexFlatIP): at the size of an SOP library an exhaustive scan is well
under a millisecond and needs no training.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

FILE_NAME = "vectors.faiss"


def set_threads(threads: int) -> None:
    """Limit faiss to this many OpenMP threads (1 in server processes)."""
    faiss.omp_set_num_threads(threads)


class VectorIndex:
    """Exact inner-product search over unit vectors."""

    def __init__(self, index: faiss.Index):
        self._index = index

    @classmethod
    def build(cls, vectors: np.ndarray, path: Path) -> None:
        """Write an index of the row vectors to path.

        Args:
            vectors: (n, d) float32 unit vectors, row i for section i.
            path: the file to write.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = faiss.IndexFlatIP(vectors.shape[1])
        if len(vectors):
            index.add(vectors)
        faiss.write_index(index, str(path))

    @classmethod
    def open(cls, path: Path) -> VectorIndex:
        """Load an index written by build."""
        return cls(faiss.read_index(str(path)))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def search(self, vector: np.ndarray, limit: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Return (row, cosine) pairs, best first, optionally only among allowed rows."""
        if len(self) == 0 or limit < 1:
            return []
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        params = None
        if allowed is not None:
            if len(allowed) == 0:
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        scores, rows = self._index.search(query, min(limit, len(self)), params=params)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]
