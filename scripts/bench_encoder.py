#!/usr/bin/env python
"""The query encoders side by side: onnx (fp32), onnx-int8 and torch; latency and relevance. Asserts nothing.

    .venv/bin/python scripts/bench_encoder.py [--queries FILE] [--scifact DIR] [--work DIR] [--rounds 3]
                                              [--torch-threads 1] [--no-scifact] [--json]

For each encoder (kb.indexing.embeddings.query_encoder with that kind):

- latency: one query embedded at a time, as the server does, over 200 distinct queries: the labelled dev
  queries (default ../shared/eval/dev-queries.jsonl, 90 of them) and, to make up the number, their typo and
  ticket forms from scripts/bench_relevance.py (seeded). Encoders take turns each round, so a noisy
  neighbour on the machine slows all of them alike; median, p95 and p99 in ms. Also the cosine of each
  query's vector to the fp32 ONNX one, and the time to load the encoder (for onnx-int8 on a first run, the
  quantization too).
- relevance on the shipped SOPs: kb eval's hit@1, hit@3 and MRR (kb.evaluation.evaluate through a
  Searcher given the encoder, bench_relevance.searcher_for) on the dev, typos and tickets sets.
- SciFact (BEIR) nDCG@10 of semantic and hybrid search, with scripts/bench_ir.py's collection, index and
  query functions; the documents are embedded once with torch (cached), only queries change encoder.

The SOP index, the ONNX export with its int8 copy and the SciFact embeddings live in the work folder
(default <DATA_DIR>/bench/encoder): a rerun builds and embeds nothing. ONNX runs one intra-op thread
(as in kb); torch is timed with --torch-threads (default 1, the same).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_ir  # noqa: E402 - scripts/ is on the path only now
import bench_relevance  # noqa: E402

KINDS = ("onnx", "onnx-int8", "torch")
LATENCY_QUERIES = 200
SETS = ("dev", "typos", "tickets")
EVAL_MODES = ("hybrid", "semantic")
TOLERANCE = 0.01  # relevance this close to the best encoder's counts as equal when recommending


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (nearest rank) of values in ms, as kb bench reports it (kb.loadtest.percentiles)."""
    from kb.loadtest import percentiles

    return percentiles(values)[f"p{q}_ms"]


def latency_queries(sets: dict[str, list], n: int) -> tuple[list[str], dict[str, int]]:
    """The first n distinct query texts of the dev set, then its typo forms, then its ticket forms; and how many
    of them came from each set."""
    first: dict[str, str] = {}
    for label in SETS:
        for item in sets[label]:
            first.setdefault(item.query, label)
    texts = list(first)[:n]
    return texts, {label: sum(1 for t in texts if first[t] == label) for label in SETS}


def load_encoders(data_dir: Path, model: str) -> tuple[dict, dict[str, float]]:
    """Each kind's query encoder, warmed up; and the seconds each took to load."""
    from kb.indexing import query_encoder

    encoders, load_s = {}, {}
    for kind in KINDS:
        started = time.perf_counter()
        encoder = query_encoder.query_encoder(data_dir, model, kind)
        encoder.encode(["warm up"])
        load_s[kind] = time.perf_counter() - started
        if encoder.kind != kind:
            print(f"warning: {kind} unavailable, measuring {encoder.kind} in its place", file=sys.stderr)
        encoders[kind] = encoder
    return encoders, load_s


def measure_latency(encoders: dict, queries: list[str], rounds: int) -> dict[str, list[float]]:
    """ms per single-query encode, every encoder in turn each round (the order rotated)."""
    for encoder in encoders.values():
        for text in queries[:10]:
            encoder.encode([text])
    times: dict[str, list[float]] = {kind: [] for kind in encoders}
    kinds = list(encoders)
    for round_ in range(rounds):
        for kind in kinds[round_ % len(kinds) :] + kinds[: round_ % len(kinds)]:
            encode = encoders[kind].encode
            for text in queries:
                started = time.perf_counter()
                encode([text])
                times[kind].append((time.perf_counter() - started) * 1000)
    return times


def cosines_to_fp32(encoders: dict, queries: list[str]) -> dict[str, list[float]]:
    """The cosine of each query's vector to the fp32 ONNX encoder's, per encoder."""
    reference = encoders["onnx"].encode(queries)
    return {kind: (encoder.encode(queries) * reference).sum(axis=1).tolist() for kind, encoder in encoders.items()}


def sop_relevance(encoders: dict, data_dir: Path, sets: dict[str, list]) -> dict[str, dict]:
    """kb eval's metrics per encoder, query set and mode, on the SOP index in data_dir."""
    from kb.evaluation import evaluate

    results = {}
    for kind, encoder in encoders.items():
        searcher = bench_relevance.searcher_for(bench_relevance.VARIANTS["all"], data_dir, encoder)
        results[kind] = {label: evaluate(searcher, sets[label], EVAL_MODES)[0] for label in SETS}
        print(f"SOP relevance, {kind}: done", file=sys.stderr)
    return results


def scifact_relevance(encoders: dict, data: Path, work: Path, settings: dict) -> dict:
    """SciFact test nDCG@10 and recall@100 of semantic and hybrid search per encoder (bench_ir's machinery)."""
    from kb.beir import evaluate_run, to_section

    timings: dict[str, float] = {}
    corpus, queries, qrels = bench_ir.load_collection(data, "test")
    sections = [to_section(document) for document in corpus.values()]
    work.mkdir(parents=True, exist_ok=True)
    matrix, _, _ = bench_ir.embed_corpus(sections, work, settings["EMBEDDING_MODEL"], timings)
    keyword, vectors = bench_ir.build_indexes(sections, matrix, work, timings, settings["KEYWORD_ENGINE"])
    results: dict = {"queries": len(qrels), "documents": len(corpus), "encoders": {}}
    try:
        for kind, encoder in encoders.items():
            runs, times = bench_ir.run_queries(queries, keyword, vectors, encoder, settings)
            by_mode = {}
            for mode in EVAL_MODES:
                scores = evaluate_run(runs[mode], qrels, bench_ir.NDCG_K, bench_ir.RECALL_K)
                by_mode[mode] = {
                    "ndcg@10": round(scores[f"ndcg@{bench_ir.NDCG_K}"], 4),
                    "recall@100": round(scores[f"recall@{bench_ir.RECALL_K}"], 4),
                    "query_ms_median": round(statistics.median(times[mode]), 3),
                }
            results["encoders"][kind] = by_mode
            print(f"SciFact, {kind}: done", file=sys.stderr)
    finally:
        keyword.close()
    return results


def recommend(result: dict) -> tuple[str, str]:
    """The fastest encoder whose relevance is within TOLERANCE of the best on every figure, and why."""
    figures: dict[str, dict[str, float]] = {kind: {} for kind in result["encoders"]}
    for kind, row in result["encoders"].items():
        for label in SETS:
            figures[kind][f"{label} hybrid MRR"] = row["sops"][label]["modes"]["hybrid"]["mrr"]
        if "scifact" in row:
            for mode in EVAL_MODES:
                figures[kind][f"SciFact {mode} nDCG@10"] = row["scifact"][mode]["ndcg@10"]
    best = {name: max(f[name] for f in figures.values()) for name in next(iter(figures.values()))}
    by_speed = sorted(result["encoders"], key=lambda kind: result["encoders"][kind]["latency_ms"]["median"])
    for kind in by_speed:
        short = [name for name, value in figures[kind].items() if value < best[name] - TOLERANCE]
        if not short:
            return kind, f"the fastest whose relevance is within {TOLERANCE} of the best on {', '.join(best)}"
    return by_speed[-1], "none is within tolerance everywhere"


def print_table(result: dict) -> None:
    """The human-readable report."""
    latency = result["latency"]
    print(
        f"{latency['queries']} distinct queries ({latency['composition']}), {latency['rounds']} rounds, "
        f"one query per encode; ONNX 1 thread, torch {result['torch_threads']} thread(s)\n"
    )
    header = (
        f"{'encoder':<11}{'load s':>8}{'median ms':>11}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'cos fp32 mean':>15}{'min':>8}{'model MB':>10}"
    )
    print(header)
    print("-" * len(header))
    for kind, row in result["encoders"].items():
        lat, cos = row["latency_ms"], row["cosine_to_fp32"]
        size = f"{row['model_mb']:.1f}" if row["model_mb"] is not None else "-"
        print(
            f"{kind:<11}{row['load_s']:>8.2f}{lat['median']:>11.2f}{lat['p95']:>9.2f}{lat['p99']:>9.2f}"
            f"{cos['mean']:>15.4f}{cos['min']:>8.4f}{size:>10}"
        )
    print()
    n = result["encoders"]["onnx"]["sops"]["dev"]["n"]
    print(f"SOP relevance (kb eval over the shipped SOPs, {n} labelled queries per set): hit@1 / hit@3 / MRR")
    header = f"{'encoder':<11}" + "".join(f"{f'{label} {mode}':>24}" for label in SETS for mode in EVAL_MODES)
    print(header)
    print("-" * len(header))
    for kind, row in result["encoders"].items():
        cells = []
        for label in SETS:
            for mode in EVAL_MODES:
                m = row["sops"][label]["modes"][mode]
                cells.append(f"{m['hit@1']:.3f} {m['hit@3']:.3f} {m['mrr']:.3f}")
        print(f"{kind:<11}" + "".join(f"{c:>24}" for c in cells))
    if "scifact" in result:
        print()
        sci = result["scifact"]
        print(f"SciFact test ({sci['queries']} queries, {sci['documents']:,} documents): nDCG@10 / recall@100")
        header = f"{'encoder':<11}{'semantic':>18}{'hybrid':>18}{'semantic ms':>14}"
        print(header)
        print("-" * len(header))
        for kind, row in result["encoders"].items():
            s, h = row["scifact"]["semantic"], row["scifact"]["hybrid"]
            print(
                f"{kind:<11}{s['ndcg@10']:>9.3f} / {s['recall@100']:.3f}{h['ndcg@10']:>9.3f} / {h['recall@100']:.3f}"
                f"{s['query_ms_median']:>14.2f}"
            )
    kind, why = result["recommendation"]
    print(f"\nrecommended QUERY_ENCODER: {kind} ({why})")
    print(f"run time: {result['run_s']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=Path, default=bench_relevance.DEFAULT_QUERIES)
    parser.add_argument("--scifact", type=Path, default=bench_ir.DEFAULT_DATA, help="BEIR SciFact folder")
    parser.add_argument("--no-scifact", action="store_true", help="skip SciFact")
    parser.add_argument("--work", type=Path, help="indexes, export and caches (default <DATA_DIR>/bench/encoder)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the latency queries per encoder")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch's intra-op threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args()
    started = time.perf_counter()
    os.environ.setdefault("KB_LOG_LEVEL", "WARNING")

    import torch

    from kb.config import load_settings
    from kb.indexing import embeddings
    from kb.indexing.builder import build_index
    from kb.indexing.vector import set_threads

    set_threads(1)  # as in the server processes
    settings = load_settings()
    model = settings["EMBEDDING_MODEL"]
    work = (args.work or settings["DATA_DIR"] / "bench" / "encoder").resolve()
    sops = work / "sops"
    sops.mkdir(parents=True, exist_ok=True)
    build_index(settings["CONTENT_DIR"], sops, model)  # up to date on a rerun: nothing is built
    encoders, load_s = load_encoders(sops, model)

    sets = bench_relevance.query_sets(args.queries)
    queries, counts = latency_queries(sets, LATENCY_QUERIES)
    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.torch_threads)  # for the latency only: documents embed with every core
    times = measure_latency(encoders, queries, args.rounds)
    torch.set_num_threads(default_threads)
    cosines = cosines_to_fp32(encoders, queries)
    sop_scores = sop_relevance(encoders, sops, sets)
    scifact = (
        None if args.no_scifact else scifact_relevance(encoders, args.scifact.resolve(), work / "scifact", settings)
    )

    folder = embeddings.onnx_folder(sops, model)
    files = {"onnx": folder / embeddings.FP32_MODEL, "onnx-int8": folder / embeddings.QUANTIZED_MODEL}
    result: dict = {
        "model_id": embeddings.model_identity(model),
        "torch_threads": args.torch_threads,
        "latency": {
            "queries": len(queries),
            "composition": ", ".join(f"{counts[label]} {label}" for label in SETS),
            "rounds": args.rounds,
        },
        "encoders": {},
        "work": str(work),
    }
    for kind in KINDS:
        path = files.get(kind)
        result["encoders"][kind] = {
            "measured": encoders[kind].kind,
            "load_s": round(load_s[kind], 3),
            "latency_ms": {
                "median": round(statistics.median(times[kind]), 3),
                "p95": round(percentile(times[kind], 95), 3),
                "p99": round(percentile(times[kind], 99), 3),
            },
            "cosine_to_fp32": {
                "mean": round(statistics.fmean(cosines[kind]), 5),
                "min": round(min(cosines[kind]), 5),
            },
            "model_mb": round(path.stat().st_size / 1e6, 1) if path and path.exists() else None,
            "sops": sop_scores[kind],
            **({"scifact": scifact["encoders"][kind]} if scifact else {}),
        }
    if scifact:
        result["scifact"] = {"queries": scifact["queries"], "documents": scifact["documents"]}
    result["recommendation"] = recommend(result)
    result["run_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
