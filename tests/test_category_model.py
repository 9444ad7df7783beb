"""The category classifier of a generation (kb/indexing/category_model.py): trained at build time on phrasings and
labelled tickets, calibrated on held-out folds, stored as arrays and JSON (never a pickle), sealed and verified."""

from __future__ import annotations

import hashlib
import json
import zipfile

import numpy as np
import pytest

from kb.errors import IndexError_
from kb.indexing import category_model, embeddings
from kb.indexing import generation as layout
from kb.indexing.builder import build_index
from kb.indexing.category_model import CLASSIFIER_FILE, WEIGHTS_FILE, Example
from kb.indexing.generation import open_generation
from kb.indexing.intents import IntentClassifier
from kb.library import load_library
from tests.conftest import commit_all, init_repo

TICKETS = [
    ("the app took my money two times for one coin pack", "payments/duplicate-charge"),
    ("visa refused when i tried to buy the yearly plan", "payments/card-declined"),
    ("creator earnings from march still not in my bank", "payouts/delayed"),
]


def _live(data) -> object:
    return layout.index_root(data) / layout.read_manifest(data)["generation"]


def _examples_and_vectors(sops, data):
    """The tiny library's phrasings with their real embeddings (from the build's cache)."""
    library = load_library(sops)
    examples = [Example(t, c.id) for c in library.categories.values() if c.parent for t in c.search_texts]
    cache = embeddings.EmbeddingCache(data / "embeddings.sqlite", embeddings.model_identity(""))
    try:
        found = cache.get_many([hashlib.sha256(e.text.encode()).hexdigest() for e in examples])
    finally:
        cache.close()
    vectors = np.vstack([found[hashlib.sha256(e.text.encode()).hexdigest()] for e in examples])
    return examples, vectors


# -- persistence: arrays and JSON, rebuilt on load, predicting exactly as trained -------------------------


def test_a_saved_classifier_loads_and_predicts_exactly_as_the_trained_one(sop_repo, data_dir, tmp_path):
    sops = sop_repo / "sops"
    build_index(sops, data_dir)
    examples, vectors = _examples_and_vectors(sops, data_dir)
    trained = category_model.train(examples, vectors, "hash")
    trained.save(tmp_path)
    loaded = category_model.load(tmp_path)
    queries = ["charged twice for coins", "my card was refused", "payout missing", "zzz", "refnd plz"]
    rng = np.random.default_rng(3)
    probes = np.vstack([vectors[:3], rng.normal(size=(2, vectors.shape[1]))])
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    assert loaded.labels == trained.labels == ("payments/card-declined", "payments/duplicate-charge", "payouts/delayed")
    assert np.array_equal(loaded.confidences(queries, probes), trained.confidences(queries, probes))
    assert loaded.temperature == trained.temperature and loaded.record == trained.record


def test_the_files_hold_no_pickle(sop_repo, data_dir):
    build_index(sop_repo / "sops", data_dir)
    folder = _live(data_dir)
    with zipfile.ZipFile(folder / WEIGHTS_FILE) as archive:
        assert sorted(archive.namelist()) == ["chars_idf.npy", "coef.npy", "intercept.npy", "words_idf.npy"]
    with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as stored:  # object arrays would refuse to load
        assert all(stored[name].dtype == np.float64 for name in stored.files)
    meta = json.loads((folder / CLASSIFIER_FILE).read_text())
    assert meta["trained"] and set(meta["state"]["vocabularies"]) == {"words", "chars"}


def test_a_multiclass_state_round_trips_through_json():
    texts = ["charged twice", "two payments", "card declined", "bank said no", "payout late", "no payout yet"]
    labels = ["dup", "dup", "dec", "dec", "pay", "pay"]
    vectors = np.eye(3)[[0, 0, 1, 1, 2, 2]]
    classifier = IntentClassifier().fit(texts, vectors, labels)
    arrays, meta = classifier.state()
    rebuilt = IntentClassifier.from_state(arrays, json.loads(json.dumps(meta)))
    probes = np.array([[0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    assert np.array_equal(
        rebuilt.probabilities(["twice declined", "payout"], probes),
        classifier.probabilities(["twice declined", "payout"], probes),
    )


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda a, m: m.update(version=99), "state version"),
        (lambda a, m: a.update(coef=a["coef"][:, :5]), "columns"),
        (lambda a, m: a.update(words_idf=a["words_idf"][:-1]), "idf length"),
    ],
    ids=["other version", "weights too narrow", "idf of another vocabulary"],
)
def test_a_damaged_state_is_refused(damage, message):
    texts = ["charged twice", "two payments", "card declined", "bank said no"]
    classifier = IntentClassifier().fit(texts, np.eye(2)[[0, 0, 1, 1]], ["dup", "dup", "dec", "dec"])
    arrays, meta = classifier.state()
    damage(arrays, meta)
    with pytest.raises(ValueError, match=message):
        IntentClassifier.from_state(arrays, meta)


# -- calibration ------------------------------------------------------------------------------------------


def test_temperature_scaling_tempers_overconfident_predictions():
    # 200 predictions, each 0.98 sure of its top label and right half of the time
    probabilities = np.tile([0.98, 0.01, 0.01], (200, 1))
    truth = np.array([0, 1] * 100)
    temperature = category_model._fit_temperature(probabilities, truth)
    tempered = category_model._temper(probabilities, temperature)
    assert temperature > 1
    assert tempered.max(axis=1) == pytest.approx(np.full(200, 0.5), abs=0.02)
    assert tempered.sum(axis=1) == pytest.approx(np.ones(200))


def test_folds_hold_out_every_example_once_within_each_category():
    labels = ["a"] * 7 + ["b"] * 3 + ["c"]
    folds = category_model._folds(labels, 5, seed=0)
    assert folds[-1] == -1  # one example: always trained on, never held out
    for label in ("a", "b"):
        mine = folds[[i for i, x in enumerate(labels) if x == label]]
        assert (mine >= 0).all() and len(set(mine)) == min(5, len(mine))
    assert np.array_equal(folds, category_model._folds(labels, 5, seed=0))  # deterministic


def test_the_build_records_held_out_accuracy_and_calibration(sop_repo, data_dir):
    report = build_index(sop_repo / "sops", data_dir)
    record = category_model.read_record(_live(data_dir))
    calibration = record["calibration"]
    assert report.classifier["trained"] and not report.classifier["reused"]
    assert report.classifier["examples"] == record["training"]["examples"] == 27  # 3 x (name + 8 phrasings)
    assert calibration["method"] == "temperature" and calibration["temperature"] > 0
    assert calibration["held_out"] == 27 and calibration["folds"] == 5
    assert 0 <= calibration["accuracy"] <= 1 and 0 <= calibration["ece_calibrated"] <= 1
    assert [row["threshold"] for row in calibration["reliability"]] == list(category_model.RELIABILITY_THRESHOLDS)


# -- at index time: sealed, verified, reused, retrained -------------------------------------------------------


def test_the_classifier_is_sealed_and_verified_with_the_generation(sop_repo, data_dir):
    build_index(sop_repo / "sops", data_dir)
    folder = _live(data_dir)
    sealed = json.loads((folder / layout.BUILD_FILE).read_text())["files"]
    assert {CLASSIFIER_FILE, WEIGHTS_FILE} <= set(sealed)
    loaded = open_generation(folder, "tantivy")
    assert loaded.classifier is not None and len(loaded.classifier.labels) == 3
    weights = folder / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(IndexError_, match=r"classifier.npz changed since the build"):
        open_generation(folder, "tantivy")


def test_a_publish_like_incremental_build_reuses_the_classifier(sop_repo, data_dir):
    sops = sop_repo / "sops"
    build_index(sops, data_dir)
    first = _live(data_dir)
    path = sops / "all" / "pay-duplicate-charge.md"
    path.write_text(path.read_text() + "\n## Notes\nCheck the settlement date too.\n")
    commit_all(sop_repo, "notes")
    report = build_index(sops, data_dir)
    assert report.changed == ["pay-duplicate-charge"] and report.classifier["reused"]
    assert (_live(data_dir) / WEIGHTS_FILE).read_bytes() == (first / WEIGHTS_FILE).read_bytes()
    assert build_index(sops, data_dir, full=True).classifier["reused"]  # same examples, same model: nothing to learn


def test_labelled_tickets_alone_make_a_new_generation_that_learns_them(sop_repo, data_dir):
    sops = sop_repo / "sops"
    build_index(sops, data_dir)
    report = build_index(sops, data_dir, tickets=TICKETS)
    assert report.generation is not None and report.changed == []
    assert report.classifier["tickets"] == 3 and not report.classifier["reused"]
    assert build_index(sops, data_dir, tickets=TICKETS).up_to_date  # the same tickets again: nothing to do
    assert build_index(sops, data_dir, tickets=TICKETS[:2]).classifier["tickets"] == 2  # one removed: retrained


def test_tickets_of_categories_the_taxonomy_lacks_are_left_out_with_a_warning(sop_repo, data_dir):
    report = build_index(sop_repo / "sops", data_dir, tickets=[*TICKETS, ("where is my parcel", "shipping/late")])
    assert report.classifier["tickets"] == 3
    warnings = [p for p in report.problems if p.file == "(tickets)"]
    assert len(warnings) == 1 and "shipping/late" in warnings[0].message and warnings[0].severity == "warning"


def test_card_number_masks_in_tickets_do_not_train_the_classifier(sop_repo, data_dir):
    masked = ("paid twice with [card ending 1111] for one order", "payments/duplicate-charge")
    build_index(sop_repo / "sops", data_dir, tickets=[masked])
    vocabulary = category_model.read_record(_live(data_dir))["state"]["vocabularies"]["words"]
    assert "1111" not in vocabulary and "ending" not in vocabulary and "paid twice" in vocabulary


def test_a_taxonomy_of_one_category_has_no_classifier(tmp_path, data_dir):
    one = """\
categories:
  - id: payments
    name: Payments
    description: Charges.
    children:
      - id: payments/duplicate-charge
        name: Duplicate charge
        description: Charged twice.
        examples: ["charged twice", "two payments", "double charge", "billed 2x", "paid two times",
                   "same amount taken twice", "duplicate payment", "charged twice for coins"]
"""
    from tests.conftest import TINY_DOCS

    sops = init_repo(tmp_path / "one", {"all/pay-duplicate-charge.md": TINY_DOCS["all/pay-duplicate-charge.md"]}, one)
    report = build_index(sops, data_dir)
    assert report.classifier == {"trained": False, "reused": False, "examples": 9}
    assert open_generation(_live(data_dir), "tantivy").classifier is None


def test_above_the_limit_one_fold_is_held_out(monkeypatch):
    monkeypatch.setattr(category_model, "CALIBRATION_FULL_BELOW", 5)
    texts = ["charged twice", "two payments", "double charge", "billed 2x", "declined", "bank said no"]
    texts += ["card refused", "visa rejected", "payout late", "no payout", "where is my money", "payout missing"]
    labels = ["dup"] * 4 + ["dec"] * 4 + ["pay"] * 4
    examples = [Example(t, c) for t, c in zip(texts, labels, strict=True)]
    ticks = []
    model = category_model.train(examples, np.eye(3)[[0] * 4 + [1] * 4 + [2] * 4], "h", tick=ticks.append)
    calibration = model.record["calibration"]
    assert calibration["folds"] == 1 and 0 < calibration["held_out"] < len(examples) and len(ticks) == 2
