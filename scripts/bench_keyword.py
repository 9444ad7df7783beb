#!/usr/bin/env python
"""Benchmark the keyword engines (keyword.ENGINES) side by side; prints figures, asserts nothing.

    .venv/bin/python scripts/bench_keyword.py [--sections N] [--queries FILE] [--repeat R] [--engines a,b]

For each engine, over the shipped library's sections and then over N synthetic sections (default 10,000;
0 skips them): build time, open time, and search latency in process (median, p95, p99, ms) for 200 distinct
queries, each prepared as kb's search prepares it (typo correction, abbreviations, glossary synonyms as
weighted expansions) and searched R times at limit 100 (CANDIDATES: what hybrid search asks for) and at
limit 10. The time includes building the query and reading the section keys of the hits.

Queries: the dev queries (field "query"), then distinct banking77 test questions up to 200. Synthetic
sections reuse the shipped sections' fields with bodies drawn from the library's own words at their
frequencies and at the shipped body lengths (seeded), so term statistics look like a larger library.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
DEFAULT_QUERIES = SHARED / "eval" / "dev-queries.jsonl"
BANKING77_TEST = SHARED / "benchmarks" / "banking77" / "test.csv"
QUERY_COUNT = 200


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (nearest rank) of values in ms, as kb bench reports it (kb.loadtest.percentiles)."""
    from kb.loadtest import percentiles

    return percentiles(values)[f"p{q}_ms"]


def load_queries(path: Path) -> list[str]:
    """200 distinct queries: the dev queries, then banking77 test questions."""
    queries = [json.loads(line)["query"] for line in path.read_text().splitlines() if line.strip()]
    with open(BANKING77_TEST, newline="") as handle:
        queries += [row["text"] for row in csv.DictReader(handle)]
    return list(dict.fromkeys(q.strip() for q in queries if q.strip()))[:QUERY_COUNT]


def shipped_items():
    from kb.indexing.chunking import chunk_document
    from kb.indexing.keyword import items_for
    from kb.library import load_library

    library = load_library(ROOT / "sops")
    sections = [s for doc_id in sorted(library.documents) for s in chunk_document(library.documents[doc_id])]

    def category_text(cid: str) -> str:
        return " ".join(library.categories[cid].search_texts) if cid in library.categories else ""

    return library, items_for(sections, library.documents, category_text)


def synthetic_items(items, count: int, seed: int = 11):
    """count sections shaped like the shipped ones, bodies drawn from the library's words."""
    rng = random.Random(seed)
    words = [w for i in items for w in re.findall(r"\w+", i.section.text)]
    out = []
    for n in range(count):
        base = items[n % len(items)]
        length = len(re.findall(r"\w+", base.section.text)) or 20
        body = " ".join(rng.choices(words, k=length))
        section = replace(base.section, sop_id=f"syn-{n // 8:05d}", anchor=f"s{n % 8}", text=body)
        out.append(replace(base, section=section))
    return out


def bench(name: str, items, library, queries: list[str], repeat: int, scratch: Path) -> None:
    from kb.indexing.keyword import keyword_backend
    from kb.querytext import QueryRewriter, vocabulary

    engine = keyword_backend(name)
    folder = scratch / f"{name}-{len(items)}"
    started = time.perf_counter()
    engine.build(folder, items)
    built = time.perf_counter() - started
    started = time.perf_counter()
    index = engine.open(folder)
    opened = time.perf_counter() - started
    rewriter = QueryRewriter(library.glossary, vocabulary(i.section.text for i in items), index.analyze)
    prepared = [rewriter.prepare(q) for q in queries]
    terms = statistics.median(
        len({t for text, _ in [(p.text, 1.0), *p.expansions] for _, _, t in index.analyze(text)}) for p in prepared
    )
    figures = []
    for limit in (100, 10):
        for p in prepared:  # warm: caches, pages
            index.search(p.text, limit, None, p.expansions)
        times, hits = [], []
        for _ in range(repeat):
            for p in prepared:
                began = time.perf_counter()
                found = index.search(p.text, limit, None, p.expansions)
                times.append((time.perf_counter() - began) * 1000)
                hits.append(len(found))
        figures.append((limit, times, statistics.median(hits)))
    print(
        f"  {name:<8} {len(index):>6} sections  build {built:7.2f} s  open {opened * 1000:7.1f} ms  terms/query {terms:g}"
    )
    for limit, times, found in figures:
        print(
            f"  {'':<8} limit {limit:>3} (median {found:g} hits): median {statistics.median(times):6.3f}"
            f"  p95 {percentile(times, 95):6.3f}  p99 {percentile(times, 99):6.3f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", type=int, default=10_000, help="synthetic sections (0: none)")
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES)
    parser.add_argument("--repeat", type=int, default=5, help="times each query is searched")
    parser.add_argument("--engines", default="tantivy,whoosh")
    args = parser.parse_args()
    queries = load_queries(args.queries)
    library, items = shipped_items()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    print(f"{len(queries)} distinct queries x {args.repeat}, in process, times per search call")
    with tempfile.TemporaryDirectory(prefix="kb-bench-keyword-") as scratch:
        collections = [("shipped library", items)]
        if args.sections:
            collections.append((f"{args.sections} synthetic sections", synthetic_items(items, args.sections)))
        for title, chosen in collections:
            print(f"{title}:")
            for name in engines:
                bench(name, chosen, library, queries, args.repeat, Path(scratch))


if __name__ == "__main__":
    main()
