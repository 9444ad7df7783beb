"""The category classifier of a generation: trained at build time, calibrated on held-out examples, stored as data.

A build trains kb.indexing.intents.IntentClassifier on the taxonomy's phrasings
(each category's name and description, then its example phrasings) and on the
labelled tickets imported with ``kb tickets import``, both embedded with kb's own
model. Its probabilities are calibrated by temperature scaling: every example is
held out once (CALIBRATION_FOLDS folds, drawn per category, so each fold holds
some of every category with two or more examples; above CALIBRATION_FULL_BELOW
examples only the first fold is held out, to bound the time), predicted by a
classifier trained on the other folds, and one temperature T is fitted to those held-out
predictions (least negative log-likelihood). A confidence is then
softmax(log p / T): still a distribution over the categories, summing to 1, and
on held-out examples about as often right as it claims. The record
(classifier.json) keeps T, the held-out accuracy, the expected calibration error
before and after (each fold's T fitted on the other folds' predictions, so the
figure is not flattered), and a reliability table: for each threshold, the share
of held-out examples whose top confidence reaches it and how often those were
right; KB_ASSIST_MIN_CONFIDENCE is chosen against it.

Files (in the generation folder, sealed and verified with the rest): CLASSIFIER_FILE
(classifier.json: labels, vocabularies, calibration, training record) and
WEIGHTS_FILE (classifier.npz: weights and idf arrays, read with allow_pickle=False).
Nothing is pickled: loading rebuilds the estimators from the data. With fewer than
two categories there is no classifier: classifier.json says why and no npz is written.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from kb.indexing.intents import STATE_VERSION, IntentClassifier

CLASSIFIER_FILE = "classifier.json"
WEIGHTS_FILE = "classifier.npz"
MODEL_VERSION = 1  # bump when training or calibration changes: a build then retrains instead of reusing
CALIBRATION_FOLDS = 5
# Above this many examples only the first fold is held out (a fifth of them, enough to fit one temperature):
# training then costs about 1.8 fits instead of 5.
CALIBRATION_FULL_BELOW = 5_000
SEED = 0
TEMPERATURE_BOUNDS = (0.05, 20.0)
RELIABILITY_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
ECE_BINS = 10
_FLOOR = 1e-300  # probabilities are clipped here before their logarithm


@dataclass(frozen=True)
class Example:
    """One training text with its category; source is "phrasing" (the taxonomy) or "ticket" (imported)."""

    text: str
    category: str
    source: str = "phrasing"


def training_hash(examples: Sequence[Example], model_id: str) -> str:
    """What a trained classifier depends on: its examples, the embedding model, and this code's versions.

    A build whose hash equals the live generation's copies the classifier instead of training it again.
    """
    payload = json.dumps(
        [MODEL_VERSION, STATE_VERSION, model_id, sorted((e.category, e.text, e.source) for e in examples)],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _temper(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) per row."""
    logits = np.log(np.clip(probabilities, _FLOOR, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def _fit_temperature(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of the true labels."""
    rows = np.arange(len(truth))

    def loss(temperature: float) -> float:
        return float(-np.log(np.clip(_temper(probabilities, temperature)[rows, truth], _FLOOR, 1.0)).mean())

    found = minimize_scalar(loss, bounds=TEMPERATURE_BOUNDS, method="bounded")
    return float(found.x)


def _ece(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Expected calibration error of top confidences: |confidence - accuracy| over ECE_BINS bins, weighted."""
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    total = 0.0
    for b in range(ECE_BINS):
        inside = bins == b
        if inside.any():
            total += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(total)


def _folds(labels: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """A fold per example, dealt round-robin within each category after a seeded shuffle; -1 (never held out)
    for a category with a single example."""
    assigned = np.full(len(labels), -1)
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    rng = random.Random(seed)
    for label in sorted(by_label):
        members = by_label[label]
        if len(members) < 2:
            continue
        rng.shuffle(members)
        offset = rng.randrange(folds)  # small categories do not all land in the first folds
        for position, index in enumerate(members):
            assigned[index] = (position + offset) % folds
    return assigned


class CategoryModel:
    """A trained, calibrated category classifier: top categories with confidences for a ticket."""

    def __init__(self, classifier: IntentClassifier, temperature: float, record: dict):
        self.classifier = classifier
        self.temperature = temperature
        self.record = record  # the training and calibration record, as stored in classifier.json

    @property
    def labels(self) -> tuple[str, ...]:
        """The categories the classifier knows, in the order of its columns."""
        return tuple(str(label) for label in self.classifier.labels)

    def confidences(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """(len(texts), len(labels)) calibrated confidences, rows summing to 1."""
        return _temper(self.classifier.probabilities(texts, vectors), self.temperature)

    def top(self, text: str, vector: np.ndarray, n: int = 3) -> list[tuple[str, float]]:
        """The n most likely categories of one text with their calibrated confidences, best first."""
        row = self.confidences([text], np.asarray(vector).reshape(1, -1))[0]
        order = np.argsort(-row, kind="stable")[:n]
        return [(self.labels[i], float(row[i])) for i in order]

    # -- persistence -------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write WEIGHTS_FILE and CLASSIFIER_FILE into a generation folder."""
        arrays, state = self.classifier.state()
        with open(folder / WEIGHTS_FILE, "wb") as handle:
            np.savez(handle, **arrays)
        meta = {"trained": True, "temperature": self.temperature, "state": state, **self.record}
        (folder / CLASSIFIER_FILE).write_text(json.dumps(meta, ensure_ascii=False))


def write_untrained(folder: Path, reason: str, record: dict) -> None:
    """Record in a generation folder that it has no classifier, and why."""
    (folder / CLASSIFIER_FILE).write_text(json.dumps({"trained": False, "reason": reason, **record}))


def read_record(folder: Path) -> dict:
    """A generation's classifier.json as data (training record, calibration), without loading the weights."""
    return json.loads((folder / CLASSIFIER_FILE).read_bytes())


def load(folder: Path) -> CategoryModel | None:
    """The classifier of a generation folder, rebuilt from its arrays and JSON; None if it has none.

    Raises:
        ValueError, KeyError, OSError: the files are damaged or of another version (the caller turns these
            into an IndexError_ naming the generation).
    """
    meta = read_record(folder)
    if not meta.get("trained"):
        return None
    with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    classifier = IntentClassifier.from_state(arrays, meta["state"])
    record = {k: v for k, v in meta.items() if k not in ("trained", "temperature", "state")}
    return CategoryModel(classifier, float(meta["temperature"]), record)


def copy_files(source: Path, target: Path) -> None:
    """Reuse a generation's classifier in a new generation (same training hash: same examples and model)."""
    for name in (CLASSIFIER_FILE, WEIGHTS_FILE):
        if (source / name).is_file():
            (target / name).write_bytes((source / name).read_bytes())


# -- training ----------------------------------------------------------------
def train(
    examples: Sequence[Example],
    vectors: np.ndarray,
    training: str,
    folds: int = CALIBRATION_FOLDS,
    tick: Callable[[int], None] | None = None,
) -> CategoryModel:
    """Train on every example and calibrate on held-out folds.

    Args:
        examples: texts (redacted) with their categories.
        vectors: one unit embedding per example.
        training: the training hash (recorded, compared by the next build).
        folds: calibration folds (each example held out once).
        tick: called with 1 after each fold and after the final fit (folds + 1 calls with CALIBRATION_FULL_BELOW
            examples or fewer, 2 above).

    Raises:
        ValueError: fewer than two categories, or examples and vectors differ in length.
    """
    started = time.perf_counter()
    texts = [e.text for e in examples]
    labels = [e.category for e in examples]
    names = sorted(set(labels))
    if len(names) < 2:
        raise ValueError("a classifier needs at least two categories")
    vectors = np.asarray(vectors)
    column = {label: i for i, label in enumerate(names)}
    truth = np.array([column[label] for label in labels])
    assigned = _folds(labels, folds, SEED)
    if len(examples) > CALIBRATION_FULL_BELOW:
        assigned[assigned > 0] = -1  # only fold 0 is held out
    held = np.full((len(examples), len(names)), 0.0)
    for fold in range(folds if len(examples) <= CALIBRATION_FULL_BELOW else 1):
        test = np.flatnonzero(assigned == fold)
        train_rows = np.flatnonzero(assigned != fold)
        if len(test) and len({labels[i] for i in train_rows}) >= 2:
            model = IntentClassifier().fit([texts[i] for i in train_rows], vectors[train_rows], truth[train_rows])
            found = model.probabilities([texts[i] for i in test], vectors[test])
            held[np.ix_(test, [int(c) for c in model.labels])] = found  # a category absent from training gets 0
        if tick:
            tick(1)
    scored = np.flatnonzero(assigned >= 0)
    calibration = _calibrate(held[scored], truth[scored], assigned[scored], [examples[i].source for i in scored])
    classifier = IntentClassifier().fit(texts, vectors, labels)
    if tick:
        tick(1)
    record = {
        "training": {
            "hash": training,
            "examples": len(examples),
            "phrasings": sum(e.source == "phrasing" for e in examples),
            "tickets": sum(e.source == "ticket" for e in examples),
            "categories": len(names),
            "seconds": round(time.perf_counter() - started, 2),
        },
        "calibration": calibration,
    }
    return CategoryModel(classifier, calibration["temperature"], record)


def _calibrate(probabilities: np.ndarray, truth: np.ndarray, fold: np.ndarray, sources: list[str]) -> dict:
    """Fit the temperature on held-out predictions; measure accuracy, calibration error and reliability."""
    if not len(truth):
        return {"temperature": 1.0, "held_out": 0, "method": "temperature", "folds": 0}
    temperature = _fit_temperature(probabilities, truth)
    crossed = np.zeros(len(truth))  # each fold's confidence under a temperature fitted on the other folds
    for f in np.unique(fold):
        inside, rest = fold == f, fold != f
        t = _fit_temperature(probabilities[rest], truth[rest]) if rest.any() else temperature
        crossed[inside] = _temper(probabilities[inside], t).max(axis=1)
    correct = probabilities.argmax(axis=1) == truth
    from_phrasings = np.array([s == "phrasing" for s in sources])
    calibrated = _temper(probabilities, temperature).max(axis=1)
    reliability = []
    for threshold in RELIABILITY_THRESHOLDS:
        above = calibrated >= threshold
        reliability.append(
            {
                "threshold": threshold,
                "coverage": round(float(above.mean()), 4),
                "precision": round(float(correct[above].mean()), 4) if above.any() else None,
            }
        )
    return {
        "method": "temperature",
        "temperature": temperature,
        "folds": len(np.unique(fold)),
        "held_out": len(truth),
        "accuracy": round(float(correct.mean()), 4),
        "accuracy_phrasings": round(float(correct[from_phrasings].mean()), 4) if from_phrasings.any() else None,
        "accuracy_tickets": round(float(correct[~from_phrasings].mean()), 4) if (~from_phrasings).any() else None,
        "ece_raw": round(_ece(probabilities.max(axis=1), correct), 4),
        "ece_calibrated": round(_ece(crossed, correct), 4),
        "reliability": reliability,
    }
