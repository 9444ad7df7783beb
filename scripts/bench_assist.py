#!/usr/bin/env python
"""POST /api/v1/assist measured: latency, how often it says "not answerable", the classifier, the build's cost.

    .venv/bin/python scripts/bench_assist.py [--data INSTANCE] [--rounds 3] [--json]

Builds the shipped library (KB_CONTENT_DIR) into a temporary instance folder twice, reusing the model export
and embedding cache of INSTANCE (default KB_DATA_DIR; a cold cache embeds everything once), then measures on
the second build. Reads ../shared; copies nothing into the repository. CPU only, asserts nothing.

- build: a full build with the category classifier (training and calibration included), and one with the
  classifier's training replaced by an "untrained" record (the build otherwise unchanged), in seconds.
- latency: p50/p95/p99 of one ticket, the dev queries as ticket bodies: "first" the first time each is sent
  (embedded by the query encoder), "repeat" --rounds more rounds (query vectors from the worker's cache);
  "assistant" calls Assistant.assist directly, "http" posts to /api/v1/assist through Flask's test client
  (request checks, model validation, JSON, rate limiter, error handling included).
- large_ticket_ms: one ticket whose body fills the request limit (MAX_REQUEST_BYTES characters, with card
  numbers in it), through the Assistant.
- not_answerable: how many of each set answered "answerable": false: the dev queries
  (../shared/eval/dev-queries.jsonl), the BANKING77 test messages of intents mapped to SOPs
  (../shared/eval/banking77-dev-map.json), and the off-topic tickets in tests/data/off_topic_tickets.jsonl.
- sweep: the share of each set not answerable for other values of KB_ASSIST_MIN_SIMILARITY.
- signals: for each candidate search-confidence signal (best section cosine, best phrasing cosine, the larger
  of the two) its ROC AUC separating on-topic (dev + BANKING77) from off-topic, and the share of each set below
  KB_ASSIST_MIN_SIMILARITY; the classifier's calibrated top confidence the same way.
- classifier: the held-out accuracy, calibration error and reliability recorded by the build (each phrasing
  held out once), and top-1 category accuracy on the dev queries (right when the predicted category is one of
  the relevant SOPs' categories).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
DEV_QUERIES = SHARED / "eval" / "dev-queries.jsonl"
BANKING77_MAP = SHARED / "eval" / "banking77-dev-map.json"
BANKING77_TEST = SHARED / "benchmarks" / "banking77" / "test.csv"
OFF_TOPIC = ROOT / "tests" / "data" / "off_topic_tickets.jsonl"
SWEEP = (0.36, 0.38, 0.40, 0.42, 0.44, 0.46, 0.48)  # KB_ASSIST_MIN_SIMILARITY values tried


def jsonl(path: Path) -> list[dict]:
    """The objects of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def banking77() -> list[dict]:
    """BANKING77 test messages of the intents mapped to SOPs, as {"query", "relevant"}; [] without the data."""
    if not (BANKING77_MAP.exists() and BANKING77_TEST.exists()):
        return []
    mapping = {k: v for k, v in json.loads(BANKING77_MAP.read_text()).items() if not k.startswith("_")}
    with open(BANKING77_TEST, newline="", encoding="utf-8") as handle:
        return [
            {"query": r["text"], "relevant": mapping[r["category"]]}
            for r in csv.DictReader(handle)
            if r["category"] in mapping
        ]


def build(content: Path, source: Path, work: Path, classifier: bool) -> tuple[Path, float, dict]:
    """A full build of content in a new instance folder (source's model export and embedding cache reused)."""
    from kb.indexing import builder, category_model

    data = work / ("with" if classifier else "without")
    data.mkdir()
    if (source / "models").is_dir():
        shutil.copytree(source / "models", data / "models")
    if (source / "embeddings.sqlite").is_file():
        shutil.copy(source / "embeddings.sqlite", data / "embeddings.sqlite")
    original = builder._classifier
    if not classifier:

        def untrained(target, examples, vectors, reuse_from, training, progress, report):
            category_model.write_untrained(target, "measuring a build without the classifier", {})

        builder._classifier = untrained
    try:
        started = time.perf_counter()
        report = builder.build_index(content, data, full=True)
        seconds = time.perf_counter() - started
    finally:
        builder._classifier = original
    return data, seconds, report.classifier


def auc(positive: list[float], negative: list[float]) -> float | None:
    """The chance that a random positive scores above a random negative (ties count half)."""
    if not positive or not negative:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return round(wins / (len(positive) * len(negative)), 4)


def latency(call, tickets: list[dict], rounds: int) -> dict:
    """Percentiles of call(ticket): "first", each ticket's first time (its text embedded), then "repeat", the
    same tickets rounds more times (their query vectors from the per-worker cache, as a repeated ticket gets);
    after one warm-up ticket outside the set (the index, encoder and classifier loaded)."""
    from kb.loadtest import percentiles

    call({"subject": "warm up", "body": "loading the index and the encoder"})
    times: list[list[float]] = []
    for _ in range(1 + rounds):
        times.append([])
        for ticket in tickets:
            started = time.perf_counter()
            call(ticket)
            times[-1].append((time.perf_counter() - started) * 1000)
    repeat = [t for row in times[1:] for t in row]
    return {"first": {"n": len(times[0]), **percentiles(times[0])}, "repeat": {"n": len(repeat), **percentiles(repeat)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="Instance folder whose model and cache to reuse.")
    parser.add_argument("--rounds", type=int, default=3, help="Timed rounds over the dev queries.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()
    os.environ.setdefault("KB_LOG_LEVEL", "WARNING")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from kb.assist import Assistant
    from kb.config import load_settings
    from kb.search import Searcher
    from kb.web import create_app

    settings = load_settings()
    source = args.data or settings["DATA_DIR"]
    dev = jsonl(DEV_QUERIES)
    off_topic = jsonl(OFF_TOPIC)
    bank = banking77()
    with tempfile.TemporaryDirectory(prefix="kb-bench-assist-") as folder:
        work = Path(folder)
        _, without_s, _ = build(settings["CONTENT_DIR"], source, work, classifier=False)
        data, with_s, trained = build(settings["CONTENT_DIR"], source, work, classifier=True)
        served = load_settings({**settings, "DATA_DIR": data, "RATE_LIMIT_SEARCH": "1000000/minute"}, environ={})
        searcher = Searcher(served)
        assistant = Assistant(searcher)
        gen = searcher.generation
        record = gen.classifier.record if gen.classifier else {}

        def assess(ticket: dict):
            return assistant.assess(ticket.get("subject", ""), ticket.get("body", ticket.get("query", "")))

        sets = {"dev": dev, "banking77": bank, "off_topic": off_topic}
        assessed = {name: [assess(t) for t in tickets] for name, tickets in sets.items()}
        minimum = served["ASSIST_MIN_SIMILARITY"]
        not_answerable = {
            name: {
                "n": len(rows),
                "not_answerable": sum(not r.answerable for r in rows),
                "rate": round(sum(not r.answerable for r in rows) / len(rows), 4) if rows else None,
                "search_only": sum(r.answerable and not r.classifier_sure for r in rows),
                "classifier_only": sum(r.answerable and r.similarity < minimum for r in rows),
            }
            for name, rows in assessed.items()
        }
        sweep = [
            {
                "min_similarity": t,
                **{
                    name: round(sum(not (r.similarity >= t or r.classifier_sure) for r in rows) / len(rows), 4)
                    for name, rows in assessed.items()
                    if rows
                },
            }
            for t in SWEEP
        ]
        candidates = {
            "section": lambda r: r.section_similarity,
            "phrasing": lambda r: r.phrasing_similarity,
            "max(section, phrasing)": lambda r: r.similarity,
            "classifier confidence": lambda r: r.categories[0]["confidence"] if r.categories else 0.0,
        }
        signals = {}
        for name, value in candidates.items():
            on = [value(r) for r in assessed["dev"] + assessed["banking77"]]
            off = [value(r) for r in assessed["off_topic"]]
            threshold = served["ASSIST_MIN_CONFIDENCE"] if name == "classifier confidence" else minimum
            signals[name] = {
                "auc": auc(on, off),
                "threshold": threshold,
                **{
                    f"{s}_below": round(sum(value(r) < threshold for r in rows) / len(rows), 4)
                    for s, rows in assessed.items()
                    if rows
                },
            }
        dev_right = [
            bool(r.categories)
            and any(
                r.categories[0]["id"] in gen.documents[s]["categories"] for s in q["relevant"] if s in gen.documents
            )
            for q, r in zip(dev, assessed["dev"], strict=True)
        ]
        tickets = [{"subject": "", "body": q["query"]} for q in dev]
        fresh = Assistant(Searcher(served))  # its own caches: the assessments above embedded the dev queries
        direct = latency(lambda t: fresh.assist(**t), tickets, args.rounds)
        app = create_app({**served, "TESTING": True})
        client = app.test_client()

        def post(ticket: dict) -> None:
            response = client.post("/api/v1/assist", json=ticket)
            if response.status_code != 200:
                raise SystemExit(f"/api/v1/assist answered {response.status_code}: {response.get_data(as_text=True)}")

        http = latency(post, tickets, args.rounds)
        card = " 4111 1111 1111 1111 "
        filler = ("my coins never arrived after I paid" + card) * (served["MAX_REQUEST_BYTES"] // (36 + len(card)))
        started = time.perf_counter()
        large = assistant.assess("coins missing", filler[: served["MAX_REQUEST_BYTES"] - 20])
        large_ms = (time.perf_counter() - started) * 1000
    calibration = record.get("calibration", {})
    report = {
        "build": {
            "with_classifier_s": round(with_s, 2),
            "without_classifier_s": round(without_s, 2),
            "classifier_s": trained.get("seconds"),
            "examples": trained.get("examples"),
        },
        "latency": {"assistant": direct, "http": http},
        "large_ticket": {
            "chars": served["MAX_REQUEST_BYTES"] - 20,
            "ms": round(large_ms, 1),
            "redactions": large.redactions,
        },
        "not_answerable": not_answerable,
        "signals": signals,
        "sweep": sweep,
        "classifier": {
            "held_out_accuracy": calibration.get("accuracy"),
            "held_out": calibration.get("held_out"),
            "folds": calibration.get("folds"),
            "temperature": round(calibration.get("temperature", 0.0), 4),
            "ece_raw": calibration.get("ece_raw"),
            "ece_calibrated": calibration.get("ece_calibrated"),
            "reliability": calibration.get("reliability"),
            "dev_top1": round(statistics.mean(dev_right), 4) if dev_right else None,
        },
        "settings": {"ASSIST_MIN_CONFIDENCE": served["ASSIST_MIN_CONFIDENCE"], "ASSIST_MIN_SIMILARITY": minimum},
    }
    if args.json:
        print(json.dumps(report))
        return
    _print(report)


def _print(report: dict) -> None:
    b, c = report["build"], report["classifier"]
    print(
        f"build (full, warm embedding cache): {b['with_classifier_s']} s with the classifier, "
        f"{b['without_classifier_s']} s without; training and calibration {b['classifier_s']} s "
        f"on {b['examples']} examples"
    )
    print(
        f"classifier: held-out accuracy {c['held_out_accuracy']} ({c['held_out']} examples, {c['folds']} folds), "
        f"ECE {c['ece_raw']} raw -> {c['ece_calibrated']} calibrated (T={c['temperature']}); "
        f"dev queries top-1 category {c['dev_top1']}"
    )
    for row in c["reliability"] or []:
        print(f"  confidence >= {row['threshold']:<5} coverage {row['coverage']:<7} precision {row['precision']}")
    for name, rows in report["latency"].items():
        for kind, row in rows.items():
            print(
                f"latency {name:<9} {kind:<6} n={row['n']}: p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, "
                f"p99 {row['p99_ms']} ms"
            )
    large = report["large_ticket"]
    print(f"a {large['chars']:,}-character ticket: {large['ms']} ms ({large['redactions']:,} card numbers masked)")
    for name, row in report["not_answerable"].items():
        print(
            f"not answerable: {name:<10} {row['not_answerable']}/{row['n']} ({row['rate']}); answerable by search "
            f"alone {row['search_only']}, by the classifier alone {row['classifier_only']}"
        )
    print("share not answerable by KB_ASSIST_MIN_SIMILARITY (classifier as set):")
    for row in report["sweep"]:
        print("  " + "  ".join(f"{k} {v}" for k, v in row.items()))
    print("signals (AUC on-topic vs off-topic; share below the threshold per set):")
    for name, row in report["signals"].items():
        below = ", ".join(f"{k[:-6]} {v}" for k, v in row.items() if k.endswith("_below"))
        print(f"  {name:<24} AUC {row['auc']}  threshold {row['threshold']}: {below}")


if __name__ == "__main__":
    main()
