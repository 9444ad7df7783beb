"""What `kb bench` sends: distinct queries (BANKING77 training messages) handed out once each, so that no query
reaches one Searcher or server twice and none hits a query cache; the last REPEATED are cycled by the
repeated-query runs."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from urllib.parse import quote_plus

from kb.config import PROJECT_ROOT
from kb.errors import InputError

MODES = ("hybrid", "keyword", "semantic")  # kb.results.MODES, in the order measured
DEFAULT_QUERIES = PROJECT_ROOT.parent / "shared" / "benchmarks" / "banking77" / "train.csv"
REPEATED = 32  # queries cycled by the repeated-query runs
K = 5


def load_queries(path: Path) -> list[str]:
    """The distinct texts of a CSV file's "text" column, in a fixed shuffled order (the file is sorted by intent).

    Raises:
        InputError: the file cannot be read, has no "text" column, or holds no more than REPEATED texts.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            texts = list(dict.fromkeys(row["text"].strip() for row in csv.DictReader(handle) if row["text"].strip()))
    except (OSError, KeyError, UnicodeDecodeError) as error:
        raise InputError(f"queries file {path}: {error}", {"field": "queries"}) from None
    random.Random("kb-bench").shuffle(texts)
    if len(texts) <= REPEATED:
        raise InputError(f"queries file {path}: {len(texts)} distinct texts, need more than {REPEATED}")
    return texts


class QueryPool:
    """Distinct queries handed out once each."""

    def __init__(self, texts: list[str]):
        self.texts, self.used = texts, 0

    def share(self, runs_left: int) -> list[str]:
        """An equal share of what is left for one of runs_left runs."""
        count = (len(self.texts) - self.used) // max(1, runs_left)
        self.used += count
        return self.texts[self.used - count : self.used]


def search_path(text: str, mode: str) -> str:
    """The pre-encoded /api/v1/search path of one query in one mode (top K)."""
    return f"/api/v1/search?q={quote_plus(text)}&mode={mode}&k={K}"
