#!/usr/bin/env python
"""Benchmark the search core; prints figures, asserts nothing.

    .venv/bin/python scripts/bench_search.py [--queries FILE] [--repeat N] [--skip-serve] [--skip-index]

- search latency in process, per mode: median, p95, p99 over the query file (each query repeated);
- `kb serve` start to first answered search request (a real gunicorn on a free port);
- index build times in a scratch data folder: cold full build (empty caches), full rebuild with a warm
  embedding cache, and a no-change incremental build.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_QUERIES = ROOT.parent / "shared" / "eval" / "dev-queries.jsonl"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def bench_latency(queries: list[str], repeat: int) -> None:
    from kb.config import load_settings
    from kb.search import MODES, Searcher

    searcher = Searcher(load_settings())
    searcher.warm_up()
    print(f"search latency in process ({len(queries)} queries x {repeat}, k=10), ms:")
    print(f"  {'mode':<10}{'median':>8}{'p95':>8}{'p99':>8}")
    for mode in MODES:
        times = []
        for _ in range(repeat):
            for query in queries:
                started = time.perf_counter()
                searcher.search(query, 10, mode)
                times.append((time.perf_counter() - started) * 1000)
        print(f"  {mode:<10}{statistics.median(times):>8.2f}{percentile(times, 95):>8.2f}{percentile(times, 99):>8.2f}")


def bench_serve() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/v1/search?q=customer+charged+twice"
    started = time.perf_counter()
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "kb"), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    json.load(response)
                    break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit("kb serve exited before answering") from None
                time.sleep(0.05)
        print(f"kb serve start to first answered search: {time.perf_counter() - started:.2f} s")
    finally:
        server.terminate()
        server.wait(timeout=10)


def bench_index() -> None:
    from kb.config import load_settings
    from kb.indexing.builder import build_index

    content = load_settings()["CONTENT_DIR"]
    scratch = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    try:
        for label, full in (
            ("cold full build (empty caches, ONNX export)", True),
            ("full rebuild, warm embedding cache", True),
            ("no-change incremental build", False),
        ):
            started = time.perf_counter()
            report = build_index(content, scratch, full=full)
            print(
                f"{label}: {time.perf_counter() - started:.2f} s "
                f"({report.documents} documents, {report.sections} sections, {report.embedded} embedded)"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES, help="JSON lines with a 'query' field")
    parser.add_argument("--repeat", type=int, default=5, help="times each query is run per mode")
    parser.add_argument("--skip-serve", action="store_true", help="do not time kb serve start-up")
    parser.add_argument("--skip-index", action="store_true", help="do not time index builds")
    args = parser.parse_args()
    os.environ.setdefault("KB_LOG_LEVEL", "WARNING")
    queries = [json.loads(line)["query"] for line in args.queries.read_text().splitlines() if line.strip()]
    bench_latency(queries, args.repeat)
    if not args.skip_serve:
        bench_serve()
    if not args.skip_index:
        bench_index()


if __name__ == "__main__":
    main()
