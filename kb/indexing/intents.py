"""Ticket intent classifier: which issue category a customer's message belongs to.

One linear model (multinomial logistic regression, scikit-learn) over two views
of a text: kb's own sentence embedding, scaled by EMBEDDING_WEIGHT, beside TF-IDF
of its words (unigrams and bigrams) and of its character 2-5-grams (which
forgive typos such as "refnd"). The embedding carries meaning; the n-grams carry
the product words and codes an embedding blurs. Measured on BANKING77 with
all-MiniLM-L6-v2 (scripts/bench_intents.py): 93.7% with the full training set,
about 86% with 10 examples per intent; the embedding alone gave 93.0% and 85.5%.

The caller embeds (kb/indexing/embeddings.py); this module never loads a model,
so it is tested with tiny literal vectors. Texts are expected already redacted.

A trained classifier is saved as plain data, never as a pickle (loading a pickle
runs code): :meth:`IntentClassifier.state` gives its arrays (the model's weights,
each vectorizer's idf) and a JSON-ready mapping (labels, parameters, each
vectorizer's vocabulary in column order); :meth:`IntentClassifier.from_state`
rebuilds the scikit-learn estimators from them, predicting exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

EMBEDDING_WEIGHT = 2.0  # chosen on BANKING77: 1.0 was 0.5 points better with every example, 2.6 worse with ten
REGULARISATION_C = 20.0
MAX_ITERATIONS = 3000
STATE_VERSION = 1  # bump when state() changes shape
# The two n-gram views; their parameters are saved with a trained classifier and must round-trip through JSON.
VECTORIZERS = {
    "words": {"ngram_range": (1, 2), "sublinear_tf": True},
    "chars": {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True, "min_df": 2},
}


@dataclass(frozen=True)
class Prediction:
    """One label with its probability."""

    label: str
    probability: float


class IntentClassifier:
    """Fit on (text, embedding, label) triples; predict label probabilities for new texts and embeddings."""

    def __init__(self, embedding_weight: float = EMBEDDING_WEIGHT, c: float = REGULARISATION_C):
        self.embedding_weight = embedding_weight
        self.c = c
        self._ngrams: dict[str, TfidfVectorizer] = {}
        self._model: LogisticRegression | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels the classifier knows, in the order of its probability columns."""
        return tuple(self._model.classes_) if self._model is not None else ()

    def _features(self, texts: Sequence[str], vectors: np.ndarray):
        ngrams = [vectorizer.transform(texts) for vectorizer in self._ngrams.values()]
        return hstack([*ngrams, csr_matrix(np.asarray(vectors, dtype=np.float32) * self.embedding_weight)]).tocsr()

    def fit(self, texts: Sequence[str], vectors: np.ndarray, labels: Sequence[str]) -> IntentClassifier:
        """Train on texts, their unit embeddings (one row each) and labels.

        Raises:
            ValueError: lengths differ, or fewer than two labels.
        """
        if not len(texts) == len(vectors) == len(labels):
            raise ValueError(f"texts, vectors and labels differ in length: {len(texts)}, {len(vectors)}, {len(labels)}")
        if len(set(labels)) < 2:
            raise ValueError("a classifier needs at least two labels")
        self._ngrams = {name: TfidfVectorizer(**params).fit(texts) for name, params in VECTORIZERS.items()}
        self._model = LogisticRegression(C=self.c, max_iter=MAX_ITERATIONS)
        self._model.fit(self._features(texts, vectors), list(labels))
        return self

    def probabilities(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """(len(texts), len(labels)) probabilities, rows summing to 1."""
        if self._model is None:
            raise RuntimeError("the classifier is not trained")
        return self._model.predict_proba(self._features(texts, vectors))

    def predict(self, texts: Sequence[str], vectors: np.ndarray) -> list[str]:
        """The most probable label of each text."""
        probabilities = self.probabilities(texts, vectors)
        return [self.labels[i] for i in probabilities.argmax(axis=1)]

    def top(self, text: str, vector: np.ndarray, n: int = 3) -> list[Prediction]:
        """The n most probable labels of one text, best first."""
        row = self.probabilities([text], np.asarray(vector).reshape(1, -1))[0]
        order = np.argsort(-row, kind="stable")[:n]
        return [Prediction(self.labels[i], float(row[i])) for i in order]

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """The trained classifier as plain data: (arrays for numpy's npz, a JSON-ready mapping).

        Raises:
            RuntimeError: the classifier is not trained.
        """
        if self._model is None:
            raise RuntimeError("the classifier is not trained")
        arrays = {"coef": self._model.coef_, "intercept": self._model.intercept_}
        vocabularies = {}
        for name, vectorizer in self._ngrams.items():
            arrays[f"{name}_idf"] = vectorizer.idf_
            terms = [""] * len(vectorizer.vocabulary_)
            for term, column in vectorizer.vocabulary_.items():
                terms[column] = term
            vocabularies[name] = terms
        meta = {
            "version": STATE_VERSION,
            "labels": list(self.labels),
            "embedding_weight": self.embedding_weight,
            "c": self.c,
            "vocabularies": vocabularies,
        }
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict) -> IntentClassifier:
        """Rebuild a trained classifier from :meth:`state`'s arrays and mapping.

        Raises:
            ValueError: the data is of another version or its parts disagree in size.
        """
        if meta.get("version") != STATE_VERSION:
            raise ValueError(f"classifier state version {meta.get('version')!r}, {STATE_VERSION} expected")
        classifier = cls(float(meta["embedding_weight"]), float(meta["c"]))
        width = 0
        for name, params in VECTORIZERS.items():
            terms = meta["vocabularies"][name]
            vectorizer = TfidfVectorizer(**params, vocabulary={term: i for i, term in enumerate(terms)})
            vectorizer.idf_ = np.asarray(arrays[f"{name}_idf"], dtype=np.float64)  # checks the vocabulary's size
            classifier._ngrams[name] = vectorizer
            width += len(terms)
        labels = np.asarray(meta["labels"])
        coef, intercept = np.asarray(arrays["coef"]), np.asarray(arrays["intercept"])
        rows = 1 if len(labels) == 2 else len(labels)
        if len(labels) < 2 or coef.ndim != 2 or coef.shape[0] != rows or intercept.shape != (rows,):
            raise ValueError(f"classifier weights of shape {coef.shape} do not fit {len(labels)} labels")
        if coef.shape[1] <= width:
            raise ValueError(f"classifier weights have {coef.shape[1]} columns for {width} n-grams and an embedding")
        model = LogisticRegression(C=classifier.c, max_iter=MAX_ITERATIONS)
        model.classes_, model.coef_, model.intercept_ = labels, coef, intercept
        model.n_features_in_ = coef.shape[1]
        model.n_iter_ = np.zeros(1, dtype=np.int32)
        classifier._model = model
        return classifier
