"""BEIR-format test collections: loaders, the mapping of a document to a section, and IR metrics.

A BEIR collection is ``corpus.jsonl`` (one ``{"_id", "title", "text"}`` per line),
``queries.jsonl`` (one ``{"_id", "text"}`` per line) and ``qrels/<split>.tsv``
(a ``query-id corpus-id score`` header, then one tab-separated judgment per line).
Malformed input raises :class:`kb.errors.DocumentError` listing every problem
with its file and line.

The metrics follow trec_eval as BEIR runs it (pytrec_eval ``ndcg_cut`` and
``recall``): nDCG gains are the relevance grades themselves with a log2(rank + 1)
discount, the ideal ranking comes from the judgments, and a document counts as
relevant when its grade is above 0. Pure functions over plain data, no I/O
beyond reading the given file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kb.errors import DocumentError, Problem
from kb.indexing.chunking import Section

QRELS_HEADER = ("query-id", "corpus-id", "score")
# Every BEIR document becomes one section with this anchor: its key is "<doc id>#abstract".
ANCHOR = "abstract"


@dataclass(frozen=True)
class BeirDocument:
    """One corpus document and the line it was read from."""

    id: str
    title: str
    text: str
    line: int


def _lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """Yield (1-based line number, text) for each non-blank line; text is None if it is not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DocumentError([Problem(str(path), 0, f"cannot read the file: {error.strerror or error}")]) from None
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            yield number, None
            continue
        if text.strip():
            yield number, text


def _id_of(value: object) -> str | None:
    """A BEIR id as a string: strings and whole numbers are accepted, anything else is not an id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def _json_objects(path: Path, problems: list[Problem]) -> Iterator[tuple[int, dict, str]]:
    """Yield (line, object, id) for each well-formed JSON-lines record with an "_id"; record problems."""
    seen: dict[str, int] = {}
    file = str(path)
    for number, text in _lines(path):
        if text is None:
            problems.append(Problem(file, number, "not valid UTF-8"))
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            problems.append(Problem(file, number, f"not valid JSON: {error.msg} (column {error.colno})"))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(file, number, f"expected a JSON object, got {type(record).__name__}"))
            continue
        if "_id" not in record:
            problems.append(Problem(file, number, "missing", field="_id"))
            continue
        ident = _id_of(record["_id"])
        if ident is None:
            problems.append(Problem(file, number, f"must be a non-empty string, got {record['_id']!r}", field="_id"))
            continue
        if ident in seen:
            problems.append(Problem(file, number, f"duplicate id {ident!r} (first on line {seen[ident]})", field="_id"))
            continue
        seen[ident] = number
        yield number, record, ident


def _string_field(record: dict, name: str, required: bool, file: str, line: int, problems: list[Problem]) -> str:
    """Return record[name] as a string, recording a problem if it is missing (when required) or not a string."""
    if name not in record or record[name] is None:
        if required:
            problems.append(Problem(file, line, "missing", field=name))
        return ""
    value = record[name]
    if not isinstance(value, str):
        problems.append(Problem(file, line, f"must be a string, got {type(value).__name__}", field=name))
        return ""
    return value


def load_corpus(path: Path) -> dict[str, BeirDocument]:
    """Read corpus.jsonl into documents by id, in file order ("title" may be absent; "text" may not).

    Raises:
        DocumentError: the file cannot be read, or lines are malformed (each problem names its line).
    """
    path = Path(path)
    problems: list[Problem] = []
    corpus: dict[str, BeirDocument] = {}
    for number, record, ident in _json_objects(path, problems):
        before = len(problems)
        title = _string_field(record, "title", False, str(path), number, problems)
        text = _string_field(record, "text", True, str(path), number, problems)
        if len(problems) == before:
            corpus[ident] = BeirDocument(ident, title, text, number)
    if problems:
        raise DocumentError(problems)
    return corpus


def load_queries(path: Path) -> dict[str, str]:
    """Read queries.jsonl into query text by id, in file order.

    Raises:
        DocumentError: the file cannot be read, or lines are malformed (each problem names its line).
    """
    path = Path(path)
    problems: list[Problem] = []
    queries: dict[str, str] = {}
    for number, record, ident in _json_objects(path, problems):
        before = len(problems)
        text = _string_field(record, "text", True, str(path), number, problems)
        if len(problems) == before and not text.strip():
            problems.append(Problem(str(path), number, "is empty", field="text"))
        if len(problems) == before:
            queries[ident] = text.strip()
    if problems:
        raise DocumentError(problems)
    return queries


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Read a qrels TSV (optional "query-id corpus-id score" header) into {query id: {doc id: grade}}.

    Raises:
        DocumentError: the file cannot be read, or rows are malformed (each problem names its line).
    """
    path = Path(path)
    file = str(path)
    problems: list[Problem] = []
    qrels: dict[str, dict[str, int]] = {}
    first_seen: dict[tuple[str, str], int] = {}
    for position, (number, text) in enumerate(_lines(path)):
        if text is None:
            problems.append(Problem(file, number, "not valid UTF-8"))
            continue
        fields = [f.strip() for f in text.split("\t")]
        if position == 0 and tuple(f.lower() for f in fields) == QRELS_HEADER:
            continue
        if len(fields) != 3:
            problems.append(
                Problem(
                    file, number, f"expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}"
                )
            )
            continue
        query_id, doc_id, raw_score = fields
        if not query_id or not doc_id:
            problems.append(Problem(file, number, "empty query-id or corpus-id"))
            continue
        try:
            score = int(raw_score)
        except ValueError:
            problems.append(Problem(file, number, f"score must be a whole number, got {raw_score!r}"))
            continue
        pair = (query_id, doc_id)
        if pair in first_seen:
            problems.append(
                Problem(
                    file, number, f"duplicate judgment of {doc_id!r} for query {query_id!r} (line {first_seen[pair]})"
                )
            )
            continue
        first_seen[pair] = number
        qrels.setdefault(query_id, {})[doc_id] = score
    if problems:
        raise DocumentError(problems)
    return qrels


def to_section(document: BeirDocument) -> Section:
    """The one section a BEIR document becomes: the title as heading and heading path, the text as body."""
    return Section(
        sop_id=document.id,
        anchor=ANCHOR,
        heading=document.title,
        level=2,
        heading_path=(document.title,),
        text=document.text,
        line=document.line,
    )


def doc_id_of(key: str) -> str:
    """The BEIR document id of a section key made by to_section."""
    doc_id, sep, anchor = key.rpartition("#")
    if not sep or anchor != ANCHOR:
        raise ValueError(f"not a BEIR section key: {key!r}")
    return doc_id


def _first_occurrences(ranked_ids: Sequence[str], k: int) -> list[str]:
    """The first k distinct ids of a ranking (a repeated id counts only where it first appears)."""
    out: list[str] = []
    seen: set[str] = set()
    for doc_id in ranked_ids:
        if doc_id not in seen:
            seen.add(doc_id)
            out.append(doc_id)
            if len(out) == k:
                break
    return out


def ndcg_at_k(ranked_ids: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains (the grade) and a log2(rank + 1) discount; 0.0 if nothing is relevant."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    dcg = sum(
        max(relevant.get(doc_id, 0), 0) / math.log2(rank + 1)
        for rank, doc_id in enumerate(_first_occurrences(ranked_ids, k), start=1)
    )
    ideal_gains = sorted((grade for grade in relevant.values() if grade > 0), reverse=True)[:k]
    ideal = sum(grade / math.log2(rank + 1) for rank, grade in enumerate(ideal_gains, start=1))
    return dcg / ideal if ideal > 0 else 0.0


def recall_at_k(ranked_ids: Sequence[str], relevant: Mapping[str, int], k: int = 100) -> float:
    """Fraction of the relevant documents (grade > 0) found in the top k; 0.0 if nothing is relevant."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    wanted = {doc_id for doc_id, grade in relevant.items() if grade > 0}
    if not wanted:
        return 0.0
    return len(wanted.intersection(_first_occurrences(ranked_ids, k))) / len(wanted)


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean of at least one value."""
    if not values:
        raise ValueError("mean of no values")
    return math.fsum(values) / len(values)


def evaluate_run(
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    ndcg_k: int = 10,
    recall_k: int = 100,
) -> dict[str, float]:
    """Mean nDCG@ndcg_k and recall@recall_k over every judged query; a query missing from run scores 0."""
    if not qrels:
        raise ValueError("no judged queries to evaluate")
    ndcg = [ndcg_at_k(run.get(qid, ()), relevant, ndcg_k) for qid, relevant in qrels.items()]
    recall = [recall_at_k(run.get(qid, ()), relevant, recall_k) for qid, relevant in qrels.items()]
    return {f"ndcg@{ndcg_k}": mean(ndcg), f"recall@{recall_k}": mean(recall)}
