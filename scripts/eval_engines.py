#!/usr/bin/env python
"""Relevance per keyword engine: `kb eval` figures on the dev queries and on BANKING77 messages mapped to SOPs,
and SciFact nDCG@10 (scripts/bench_ir.py); prints a table, asserts nothing.

    .venv/bin/python scripts/eval_engines.py [--engines tantivy,whoosh] [--query-encoder onnx] [--skip-scifact]

Each engine gets its own scratch data folder (the instance's model export and embedding cache copied in, so
nothing is embedded again) with the shipped library indexed by it. BANKING77: every test message whose intent
../shared/eval/banking77-dev-map.json maps to SOPs, labelled with those SOPs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
DEV = SHARED / "eval" / "dev-queries.jsonl"
BANKING_MAP = SHARED / "eval" / "banking77-dev-map.json"
BANKING_TEST = SHARED / "benchmarks" / "banking77" / "test.csv"
METRICS = ("hit@1", "hit@3", "hit@5", "mrr")


def banking77_queries() -> list:
    """BANKING77 test messages whose intent maps to SOPs, as labelled queries."""
    from kb.evaluation import LabelledQuery

    mapping = {k: v for k, v in json.loads(BANKING_MAP.read_text()).items() if not k.startswith("_")}
    with open(BANKING_TEST, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["category"] in mapping]
    return [LabelledQuery(row["text"], tuple(mapping[row["category"]]), i) for i, row in enumerate(rows, 2)]


def index_for(engine: str, settings: dict, scratch: Path) -> dict:
    """Settings for a scratch data folder holding the shipped library indexed with engine."""
    from kb.config import load_settings
    from kb.indexing.builder import build_index

    data = scratch / f"data-{engine}"
    data.mkdir()
    shutil.copytree(settings["DATA_DIR"] / "models", data / "models")
    shutil.copy(settings["DATA_DIR"] / "embeddings.sqlite", data / "embeddings.sqlite")
    build_index(settings["CONTENT_DIR"], data, settings["EMBEDDING_MODEL"], full=True, engine=engine)
    return load_settings({"CONTENT_DIR": settings["CONTENT_DIR"], "DATA_DIR": data, "KEYWORD_ENGINE": engine})


def scifact(engine: str, encoder: str) -> float | None:
    """SciFact hybrid nDCG@10 with this engine (scripts/bench_ir.py), or None when the collection is absent."""
    env = {**os.environ, "KB_KEYWORD_ENGINE": engine, "KB_QUERY_ENCODER": encoder}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_ir.py"), "--json"], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    result = json.loads(done.stdout[done.stdout.index("{") :])
    return {mode: row["ndcg@10"] for mode, row in result["modes"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="tantivy,whoosh")
    parser.add_argument("--query-encoder", default=None, help="onnx, onnx-int8 or torch (default: the setting)")
    parser.add_argument("--skip-scifact", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("KB_LOG_LEVEL", "WARNING")
    from kb.config import load_settings
    from kb.evaluation import evaluate, load_queries
    from kb.search import Searcher

    settings = load_settings()
    encoder = args.query_encoder or settings["QUERY_ENCODER"]
    sets = {"dev": load_queries(DEV), "banking77": banking77_queries()}
    table: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for engine in args.engines.split(","):
            engine_settings = {**index_for(engine, settings, Path(scratch)), "QUERY_ENCODER": encoder}
            searcher = Searcher(engine_settings)
            table[engine] = {name: evaluate(searcher, queries)[0] for name, queries in sets.items()}
            if not args.skip_scifact:
                table[engine]["scifact"] = scifact(engine, encoder)
    print(f"query encoder {encoder}")
    for name, queries in sets.items():
        n = next(iter(table.values()))[name]["n"]
        print(f"\n{name}: {n} of {len(queries)} queries (those whose SOPs ship)")
        print(f"{'engine':<9}{'mode':<10}" + "".join(f"{m:>8}" for m in METRICS))
        for engine, results in table.items():
            for mode, metrics in results[name]["modes"].items():
                print(f"{engine:<9}{mode:<10}" + "".join(f"{metrics[m]:>8.3f}" for m in METRICS))
    if not args.skip_scifact:
        print("\nSciFact nDCG@10")
        for engine, results in table.items():
            row = results["scifact"] or {}
            print(f"{engine:<9}" + "  ".join(f"{mode} {value:.3f}" for mode, value in row.items()))
    print("\n" + json.dumps(table))


if __name__ == "__main__":
    main()
