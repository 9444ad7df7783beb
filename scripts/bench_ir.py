#!/usr/bin/env python
"""Retrieval quality of kb's keyword, semantic and hybrid search on a BEIR collection; asserts nothing.

    .venv/bin/python scripts/bench_ir.py [--data ../shared/benchmarks/scifact] [--split test] [--work DIR] [--json]

Each BEIR document becomes one kb section (title as heading, abstract as body) and is indexed with kb's own
code: the whoosh BM25F index (kb.indexing.keyword), torch embeddings through kb's content-hash cache
(kb.indexing.embeddings), the faiss index (kb.indexing.vector) and, for hybrid, kb's fusion
(kb.indexing.fusion.fuse). Queries are embedded by kb's query encoder (ONNX unless KB_QUERY_ENCODER says
torch), one at a time as the server does. Settings come from kb.config (KB_EMBEDDING_MODEL, KB_RRF_K,
KB_CANDIDATES, ...).

Prints nDCG@10 and recall@100 per mode over the split's judged queries, beside the published nDCG@10 of
BM25 and all-MiniLM-L6-v2, with timings. The work folder (default <DATA_DIR>/bench/<dataset>) keeps the
embedding cache, the ONNX export and the indexes: a rerun embeds nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "benchmarks" / "scifact"
MODES = ("keyword", "semantic", "hybrid")
NDCG_K = 10
RECALL_K = 100
# Published nDCG@10 on the SciFact test queries, shown beside ours (None: nothing published).
PUBLISHED_NDCG = {
    "keyword": (0.665, "BM25, BEIR (Thakur et al. 2021)"),
    "semantic": (0.645, "all-MiniLM-L6-v2, MTEB"),
    "hybrid": None,
}


def hybrid(rankings: dict[str, list[tuple[str, float]]], settings: dict) -> list[tuple[str, float]]:
    """kb's hybrid fusion of section rankings (the taxonomy ranking needs categories, which BEIR has not)."""
    from kb.search import fuse_sections

    return fuse_sections(rankings, settings)


def stderr_progress(label: str, total: int) -> Callable[[int], None]:
    """A progress callback taking increments: one updating line on a terminal, else a line per 10%."""
    done = 0
    step = max(1, total // 10)
    started = time.perf_counter()
    tty = sys.stderr.isatty()

    def tick(n: int) -> None:
        nonlocal done
        before, done = done, done + n
        elapsed = time.perf_counter() - started
        line = f"{label}: {done:,}/{total:,} ({elapsed:.0f} s)"
        if tty:
            print(f"\r{line}", end="\n" if done >= total else "", file=sys.stderr, flush=True)
        elif done >= total or done // step > before // step:
            print(line, file=sys.stderr, flush=True)

    return tick


def load_collection(data: Path, split: str) -> tuple[dict, dict[str, str], dict[str, dict[str, int]]]:
    """Read the corpus, the split's judgments and the text of each judged query."""
    from kb.beir import load_corpus, load_qrels, load_queries

    corpus = load_corpus(data / "corpus.jsonl")
    qrels = load_qrels(data / "qrels" / f"{split}.tsv")
    queries = load_queries(data / "queries.jsonl")
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise SystemExit(f"{len(missing)} judged queries have no text in queries.jsonl, e.g. {missing[:5]}")
    unknown = {doc for judged in qrels.values() for doc in judged} - set(corpus)
    if unknown:
        print(f"warning: {len(unknown)} judged documents are not in the corpus", file=sys.stderr)
    return corpus, {qid: queries[qid] for qid in qrels}, qrels


def embed_corpus(sections: list, work: Path, model: str, timings: dict) -> tuple[object, int, object | None]:
    """Embed every section with kb's cached torch embedding; return (matrix, number embedded now, torch encoder)."""
    import numpy as np

    from kb.indexing import embeddings

    started = time.perf_counter()
    texts = {s.content_hash: s.embedding_text for s in sections}
    cache = embeddings.EmbeddingCache(work / "embeddings.sqlite", embeddings.model_identity(model))
    holder: list = []

    def encoder():
        if not holder:
            holder.append(embeddings.TorchEncoder(model))
        return holder[0]

    try:
        missing = len(texts) - len(cache.get_many(list(texts)))
        tick = stderr_progress("embedding", missing) if missing else None
        vectors, embedded = embeddings.embed_with_cache(texts, encoder, cache, tick)
    finally:
        cache.close()
    matrix = np.vstack([vectors[s.content_hash] for s in sections])
    timings["embedding"] = time.perf_counter() - started
    return matrix, embedded, (holder[0] if holder else None)


def load_query_encoder(work: Path, settings: dict, torch_encoder, timings: dict):
    """kb's query encoder, exporting the ONNX model into the work folder first (reusing a loaded torch model)."""
    from kb.indexing import query_encoder

    started = time.perf_counter()
    model = settings["EMBEDDING_MODEL"]
    if settings["QUERY_ENCODER"] in ("onnx", "onnx-int8"):
        try:
            query_encoder.ensure_onnx(work, model, torch_encoder)
        except Exception as error:  # noqa: BLE001 - query_encoder falls back to torch and says so
            print(f"warning: ONNX export failed: {error}", file=sys.stderr)
    encoder = query_encoder.query_encoder(work, model, settings["QUERY_ENCODER"])
    encoder.encode(["warm up"])
    timings["query encoder"] = time.perf_counter() - started
    return encoder


def build_indexes(sections: list, matrix, work: Path, timings: dict, engine: str):
    """Build the keyword (KB_KEYWORD_ENGINE) and vector indexes in the work folder and open them."""
    from kb.indexing.keyword import IndexedSection, keyword_backend
    from kb.indexing.vector import VectorIndex

    backend = keyword_backend(engine)
    folder = work / f"keyword-{engine}"
    started = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    backend.build(folder, [IndexedSection(s, s.heading, (), (), "all", "sop") for s in sections])
    timings["keyword index build"] = time.perf_counter() - started
    started = time.perf_counter()
    VectorIndex.build(matrix, work / "vectors.faiss")
    timings["vector index build"] = time.perf_counter() - started
    keys = [s.key for s in sections]
    return backend.open(folder), VectorIndex.open(work / "vectors.faiss", keys, [{}] * len(keys))


def run_queries(queries: dict[str, str], keyword, vectors, encoder, settings: dict):
    """Run every query in every mode; return ({mode: {qid: doc ids}}, {mode: [ms per query]})."""
    from kb.beir import doc_id_of

    limit = settings["CANDIDATES"]

    def keyword_ranking(query: str) -> list[tuple[str, float]]:
        return keyword.search(query, limit)

    def semantic_ranking(query: str) -> list[tuple[str, float]]:
        vector = encoder.encode([query])[0]
        return vectors.search(vector, limit)

    rankers = {
        "keyword": keyword_ranking,
        "semantic": semantic_ranking,
        "hybrid": lambda q: hybrid({"keyword": keyword_ranking(q), "semantic": semantic_ranking(q)}, settings),
    }
    runs: dict[str, dict[str, list[str]]] = {}
    times: dict[str, list[float]] = {}
    for mode in MODES:
        runs[mode], times[mode] = {}, []
        for qid, query in queries.items():
            started = time.perf_counter()
            ranked = rankers[mode](query)
            times[mode].append((time.perf_counter() - started) * 1000)
            runs[mode][qid] = [doc_id_of(key) for key, _ in ranked]
    return runs, times


def print_table(result: dict) -> None:
    """The human-readable report."""
    print(
        f"{result['dataset']} ({result['split']}): {result['queries']} judged queries, {result['documents']:,} documents"
    )
    print(
        f"model {result['model_id']}, queries embedded with {result['query_encoder']}, "
        f"keyword engine {result['keyword_engine']}, "
        f"RRF k={result['rrf_k']}, {result['candidates']} candidates per retriever"
    )
    print()
    header = f"{'mode':<10}{'nDCG@10':>9}{'recall@100':>12}   {'published nDCG@10':<42}{'query ms (median)':>18}"
    print(header)
    print("-" * len(header))
    for mode, row in result["modes"].items():
        published = "-" if row["published_ndcg@10"] is None else f"{row['published_ndcg@10']:.3f} ({row['published']})"
        print(
            f"{mode:<10}{row['ndcg@10']:>9.3f}{row['recall@100']:>12.3f}   {published:<42}"
            f"{row['query_ms_median']:>18.2f}"
        )
    if result["keyword_empty"]:
        print(f"\nkeyword: {result['keyword_empty']} queries matched no document")
    print()
    embedded = result["embedded"]
    print(f"timings, s ({embedded:,} documents embedded now, {result['documents'] - embedded:,} from the cache):")
    for label, seconds in result["timings_s"].items():
        print(f"  {label:<22}{seconds:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR collection folder")
    parser.add_argument("--split", default="test", help="qrels/<split>.tsv to evaluate")
    parser.add_argument("--work", type=Path, help="embedding cache and indexes (default <DATA_DIR>/bench/<dataset>)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    started = time.perf_counter()
    os.environ.setdefault("KB_LOG_LEVEL", "WARNING")

    from kb.beir import evaluate_run, to_section
    from kb.config import load_settings
    from kb.errors import KbError
    from kb.indexing.embeddings import model_identity
    from kb.indexing.vector import set_threads

    settings = load_settings()
    set_threads(1)  # as in the server processes
    data = args.data.resolve()
    work = (args.work or settings["DATA_DIR"] / "bench" / data.name).resolve()
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    try:
        step = time.perf_counter()
        corpus, queries, qrels = load_collection(data, args.split)
        timings["load collection"] = time.perf_counter() - step
    except KbError as error:
        raise SystemExit(f"invalid BEIR collection:\n{error}") from None
    sections = [to_section(document) for document in corpus.values()]
    matrix, embedded, torch_encoder = embed_corpus(sections, work, settings["EMBEDDING_MODEL"], timings)
    encoder = load_query_encoder(work, settings, torch_encoder, timings)
    keyword, vectors = build_indexes(sections, matrix, work, timings, settings["KEYWORD_ENGINE"])
    step = time.perf_counter()
    runs, times = run_queries(queries, keyword, vectors, encoder, settings)
    timings["queries (all modes)"] = time.perf_counter() - step
    keyword.close()
    modes = {}
    for mode in MODES:
        scores = evaluate_run(runs[mode], qrels, NDCG_K, RECALL_K)
        published = PUBLISHED_NDCG[mode]
        modes[mode] = {
            "ndcg@10": round(scores[f"ndcg@{NDCG_K}"], 4),
            "recall@100": round(scores[f"recall@{RECALL_K}"], 4),
            "published_ndcg@10": published[0] if published else None,
            "published": published[1] if published else None,
            "query_ms_median": round(statistics.median(times[mode]), 3),
        }
    timings["total"] = time.perf_counter() - started
    result = {
        "dataset": data.name,
        "split": args.split,
        "queries": len(qrels),
        "documents": len(corpus),
        "model_id": model_identity(settings["EMBEDDING_MODEL"]),
        "query_encoder": getattr(encoder, "kind", type(encoder).__name__),
        "keyword_engine": settings["KEYWORD_ENGINE"],
        "rrf_k": settings["RRF_K"],
        "candidates": settings["CANDIDATES"],
        "embedded": embedded,
        "keyword_empty": sum(1 for ranked in runs["keyword"].values() if not ranked),
        "work": str(work),
        "modes": modes,
        "timings_s": {label: round(seconds, 3) for label, seconds in timings.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
