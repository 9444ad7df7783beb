#!/usr/bin/env python
"""kb's intent classifier (kb/indexing/intents.py) on BANKING77: accuracy, training time, latency per ticket.

    .venv/bin/python scripts/bench_intents.py [--data ../shared/benchmarks/banking77] [--shots 10] [--seed 0]
                                              [--json]

Trained on train.csv (77 intents, 10,003 messages) in full and with --shots examples per intent (drawn with
--seed), scored on test.csv (3,080). CPU only, one run, asserts nothing.

- train_s: embedding the training messages with kb's build encoder (torch, batched, as `kb index` embeds
  sections) plus fitting the classifier.
- ms_per_ticket: median time to embed one test message with kb's query encoder (KB_QUERY_ENCODER, as a
  search embeds a query) and classify it, one message at a time; p95 and p99 beside it in the table.
- accuracy: of the test messages, embedded that same way.

Published on the same split: fine-tuned BERT 93.66% and USE+ConveRT 93.36% (full), USE+ConveRT 85.19%
(10 per intent) (Casanueva et al. 2020); SetFit with 25 per intent 85.3%; all-MiniLM-L6-v2 embeddings with
logistic regression 80.0% (MTEB).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "benchmarks" / "banking77"
PUBLISHED = {
    "full": "fine-tuned BERT 93.66%, USE+ConveRT 93.36%",
    "10-shot": "USE+ConveRT 85.19% (10 per intent); SetFit 85.3% (25 per intent); MiniLM + LR (MTEB) 80.0%",
}


def read_split(folder: Path, split: str) -> tuple[list[str], list[str]]:
    """The texts and intents of one BANKING77 split."""
    with open(folder / f"{split}.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def few_shot(labels: list[str], shots: int, seed: int) -> list[int]:
    """Indices of `shots` examples per label, drawn with the seed, in file order."""
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    rng = random.Random(seed)
    return sorted(
        i for label in sorted(by_label) for i in rng.sample(by_label[label], min(shots, len(by_label[label])))
    )


def run(train_texts, train_labels, test_texts, test_labels, build_encoder, query_encoder) -> dict:
    """Train on one training set and score it; the figures of one row."""
    from kb.indexing.intents import IntentClassifier
    from kb.loadtest import percentiles

    started = time.perf_counter()
    vectors = build_encoder.encode(train_texts)
    classifier = IntentClassifier().fit(train_texts, vectors, train_labels)
    train_s = time.perf_counter() - started
    correct, times = 0, []
    for text, label in zip(test_texts, test_labels, strict=True):
        started = time.perf_counter()
        predicted = classifier.predict([text], query_encoder.encode([text]))[0]
        times.append((time.perf_counter() - started) * 1000)
        correct += predicted == label
    spread = percentiles(times)
    return {
        "accuracy": round(correct / len(test_texts), 4),
        "train_s": round(train_s, 2),
        "ms_per_ticket": round(statistics.median(times), 2),
        "p95_ms": spread["p95_ms"],
        "p99_ms": spread["p99_ms"],
        "n_train": len(train_texts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="Folder with train.csv and test.csv.")
    parser.add_argument("--shots", type=int, default=10, help="Examples per intent in the few-shot run.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the few-shot draw.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object: {full, N-shot}.")
    args = parser.parse_args()
    os.environ.setdefault("KB_LOG_LEVEL", "WARNING")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from kb.config import load_settings
    from kb.indexing.embeddings import torch_encoder
    from kb.indexing.query_encoder import query_encoder
    from kb.indexing.vector import set_threads

    set_threads(1)
    settings = load_settings()
    build = torch_encoder(settings["EMBEDDING_MODEL"])
    query = query_encoder(settings["DATA_DIR"], settings["EMBEDDING_MODEL"], settings["QUERY_ENCODER"])
    query.encode(["warm up"])
    train_texts, train_labels = read_split(args.data, "train")
    test_texts, test_labels = read_split(args.data, "test")
    shot = few_shot(train_labels, args.shots, args.seed)
    report = {
        "full": run(train_texts, train_labels, test_texts, test_labels, build, query),
        f"{args.shots}-shot": run(
            [train_texts[i] for i in shot],
            [train_labels[i] for i in shot],
            test_texts,
            test_labels,
            build,
            query,
        ),
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"BANKING77: {len(train_texts):,} training and {len(test_texts):,} test messages; query encoder {query.kind}")
    print(f"{'run':<9}{'train':>7}{'accuracy':>10}{'train s':>9}{'ms/ticket':>11}{'p95':>7}{'p99':>7}  published")
    for name, row in report.items():
        print(
            f"{name:<9}{row['n_train']:>7}{row['accuracy']:>10.2%}{row['train_s']:>9}{row['ms_per_ticket']:>11}"
            f"{row['p95_ms']:>7}{row['p99_ms']:>7}  {PUBLISHED.get(name, '')}"
        )


if __name__ == "__main__":
    main()
