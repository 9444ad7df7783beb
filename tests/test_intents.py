"""The intent classifier (kb/indexing/intents.py) on tiny literal data, and scripts/bench_intents.py end to end."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kb.indexing.intents import IntentClassifier

ROOT = Path(__file__).resolve().parent.parent

TEXTS = [
    "charged twice for one order",
    "double charge on my card",
    "two payments taken",
    "card declined at checkout",
    "payment refused by bank",
    "my visa keeps getting declined",
]
LABELS = ["duplicate", "duplicate", "duplicate", "declined", "declined", "declined"]
# Stand-ins for embeddings: unit vectors that point one way per label.
VECTORS = np.array([[1.0, 0.0], [0.96, 0.28], [0.99, 0.14], [0.0, 1.0], [0.28, 0.96], [0.14, 0.99]])


def test_the_classifier_learns_labels_from_words_and_vectors():
    classifier = IntentClassifier().fit(TEXTS, VECTORS, LABELS)
    assert classifier.labels == ("declined", "duplicate")
    assert classifier.predict(["charged twice", "declined again"], np.array([[1.0, 0.0], [0.0, 1.0]])) == [
        "duplicate",
        "declined",
    ]
    top = classifier.top("they took two payments", np.array([0.98, 0.2]), n=2)
    assert [p.label for p in top] == ["duplicate", "declined"]
    assert top[0].probability > top[1].probability and sum(p.probability for p in top) == pytest.approx(1.0)


def test_words_decide_when_the_vector_says_nothing():
    classifier = IntentClassifier().fit(TEXTS, VECTORS, LABELS)
    assert classifier.predict(["card declined"], np.array([[0.7071, 0.7071]])) == ["declined"]


@pytest.mark.parametrize(
    "texts, vectors, labels, message",
    [
        (TEXTS, VECTORS[:3], LABELS, "differ in length"),
        (TEXTS[:3], VECTORS[:3], LABELS[:3], "at least two labels"),
    ],
)
def test_bad_training_data_is_refused(texts, vectors, labels, message):
    with pytest.raises(ValueError, match=message):
        IntentClassifier().fit(texts, vectors, labels)


def test_an_untrained_classifier_says_so():
    with pytest.raises(RuntimeError, match="not trained"):
        IntentClassifier().predict(["x"], np.array([[1.0, 0.0]]))


def test_bench_intents_prints_one_json_object_with_both_runs(tmp_path, data_dir):
    rows = [(text, label) for text, label in zip(TEXTS * 3, LABELS * 3, strict=True)]
    for split in ("train", "test"):
        with open(tmp_path / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "category"])
            writer.writerows(rows)
    env = {**os.environ, "KB_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_intents.py"), "--data", str(tmp_path), "--shots", "2", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert set(report) == {"full", "2-shot"}
    assert report["full"]["n_train"] == 18 and report["2-shot"]["n_train"] == 4
    for row in report.values():
        assert {"accuracy", "train_s", "ms_per_ticket"} <= set(row)
        assert 0.5 <= row["accuracy"] <= 1 and row["train_s"] > 0 and row["ms_per_ticket"] > 0
