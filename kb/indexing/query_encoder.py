"""The query encoder: the ONNX export of the model, its int8 copy, which of them embeds queries, and recent
query vectors.

Queries go through ONNX Runtime: the model is exported once from the same weights
into the instance folder, checked against the torch encoder (cosine >= 0.9999),
and loaded from there in every server process, which then never imports torch.
If the export or the check fails, queries fall back to the torch encoder.

QUERY_ENCODER=onnx-int8 (the default) runs a copy of the export whose weights
are quantized to 8 bits (onnxruntime's quantize_dynamic, QInt8 per channel):
made once beside model.onnx under a file lock, checked against the fp32 model
(cosine >= 0.97) and moved into place, with a sidecar holding its sha256. A
quantized file that is damaged or fails to load leaves queries on the fp32
model, with a warning.

:class:`QueryVectorCache` keeps the vectors of recent queries in memory, keyed
by the normalised query text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import unicodedata
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from kb.errors import ConfigError, IndexError_
from kb.files import file_lock, fsync_folder
from kb.indexing.embeddings import FP32_MODEL, QUANTIZED_MODEL, OnnxEncoder, TorchEncoder, onnx_folder

log = logging.getLogger(__name__)

PARITY_MIN_COSINE = 0.9999
PARITY_TEXTS = (
    "customer charged twice for one order",
    "refnd not recieved after 10 days",
    "How do I cancel my premium plan on iOS? I was billed again this month and want my money back.",
)
QUANTIZED_META = "model-int8.json"  # sha256 and size of QUANTIZED_MODEL, written before it
QUANTIZED_MIN_COSINE = 0.97  # of each parity text, int8 against fp32; per-channel weights give about 0.99
DEFAULT_QUERY_CACHE_SIZE = 4096


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


def ensure_onnx(data_dir: Path, model: str, torch_encoder: TorchEncoder | None = None, quantized: bool = False) -> Path:
    """Return the cached ONNX export of the model, exporting it first if needed.

    Args:
        data_dir: the instance folder.
        model: the embedding model setting.
        torch_encoder: a loaded torch encoder to export from (default: a new one).
        quantized: also make the int8 copy (model-int8.onnx) if it is missing.

    Raises:
        IndexError_: the export (or the int8 copy) differs from what it was made from.
    """
    folder = onnx_folder(data_dir, model)
    if not (folder / "meta.json").exists():
        folder = export_onnx(torch_encoder or TorchEncoder(model), folder)
    if quantized:
        quantize_onnx(folder)
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Silence what the quantizer logs on the root logger below ERROR: a hundred INFO lines and advice to
    pre-process the model (which changes nothing for this one)."""
    package = f"{os.sep}onnxruntime{os.sep}"

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or package not in record.pathname

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def quantize_onnx(folder: Path) -> bool:
    """Make the int8 copy of an export folder's model, once, beside it (model-int8.onnx).

    Weights are quantized to QInt8 per output channel (per-tensor scales lose too much of this model: a mean
    cosine of 0.967 to fp32 on the dev queries, against 0.993). The copy is made in a staging folder under a
    file lock, checked against the fp32 model on the parity texts, and moved into place with os.replace after
    its sidecar (sha256 and size): another process waits for the lock, then finds the copy made.

    Args:
        folder: an export folder (export_onnx's).

    Returns:
        True when this call made the copy, False when it was already there.

    Raises:
        IndexError_: the quantized model's vectors differ too much from the fp32 model's.
    """
    target = folder / QUANTIZED_MODEL
    if target.is_file():
        return False
    with file_lock(folder.parent / f".{folder.name}.int8.lock"):
        if target.is_file():
            return False  # made by another process while this one waited
        from onnxruntime.quantization import QuantType, quantize_dynamic

        staging = Path(tempfile.mkdtemp(prefix=".quantize-", dir=folder.parent))
        try:
            made = staging / QUANTIZED_MODEL
            with _quiet_quantizer():
                quantize_dynamic(folder / FP32_MODEL, made, per_channel=True, weight_type=QuantType.QInt8)
            reference = OnnxEncoder(folder).encode(PARITY_TEXTS)
            quantized = OnnxEncoder(folder, model_file=made).encode(PARITY_TEXTS)
            cosine = float((reference * quantized).sum(axis=1).min())
            if cosine < QUANTIZED_MIN_COSINE:
                raise IndexError_(f"the int8 ONNX model differs from fp32 (min cosine {cosine:.4f})")
            meta = {"sha256": _sha256(made), "bytes": made.stat().st_size, "min_cosine": round(cosine, 6)}
            (staging / QUANTIZED_META).write_text(json.dumps(meta, indent=2))
            os.replace(staging / QUANTIZED_META, folder / QUANTIZED_META)
            os.replace(made, target)  # last: a model-int8.onnx in place always has its sidecar
            fsync_folder(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("made the int8 ONNX query model %s (min cosine to fp32 %.4f)", target, cosine)
    return True


def load_quantized(folder: Path) -> OnnxEncoder:
    """The int8 encoder of an export folder, after checking its file against the sidecar.

    Raises:
        IndexError_: the file is missing, its size or sha256 is not the sidecar's, or ONNX Runtime refuses it.
    """
    target = folder / QUANTIZED_MODEL
    try:
        meta = json.loads((folder / QUANTIZED_META).read_text())
        size, digest = target.stat().st_size, _sha256(target)
    except (OSError, ValueError) as error:
        raise IndexError_(f"{QUANTIZED_MODEL} cannot be checked: {error}") from error
    if size != meta.get("bytes") or digest != meta.get("sha256"):
        raise IndexError_(f"{QUANTIZED_MODEL} is damaged ({size:,} bytes, sha256 {digest[:12]}, not its sidecar's)")
    try:
        return OnnxEncoder(folder, model_file=QUANTIZED_MODEL)
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own classes for a bad model
        raise IndexError_(f"{QUANTIZED_MODEL} does not load: {error}") from error


def query_encoder(data_dir: Path, model: str, kind: str = "onnx"):
    """Return the encoder for queries: the kind asked for if it can be had, else the next best.

    Args:
        data_dir: the instance folder (the ONNX export lives in its models/ folder).
        model: the embedding model setting.
        kind: "onnx", "onnx-int8" (made on first use if missing) or "torch".

    Returns:
        An encoder with .kind and .encode(texts). onnx-int8 falls back to the fp32 ONNX model (a warning says
        why: the copy cannot be made, is damaged or does not load), and ONNX to torch.
    """
    if kind not in ("onnx", "onnx-int8"):
        return TorchEncoder(model)
    try:
        folder = ensure_onnx(data_dir, model)
        if kind == "onnx-int8":
            try:
                quantize_onnx(folder)
                return load_quantized(folder)
            except Exception as error:  # noqa: BLE001 - any failure means: fall back to fp32
                log.warning(
                    "int8 ONNX query encoder unavailable (%s); using the fp32 ONNX model (remove %s to remake it)",
                    error,
                    folder / QUANTIZED_MODEL,
                )
        return OnnxEncoder(folder)
    except Exception as error:  # noqa: BLE001 - any failure means: fall back
        log.warning("ONNX query encoder unavailable (%s); using the torch encoder", error)
    return TorchEncoder(model)


def query_key(text: str) -> str:
    """A query as the query vector cache keys it: NFKC, casefolded, whitespace runs as one space, trimmed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


class QueryVectorCache:
    """A thread-safe LRU of query vectors keyed by :func:`query_key`, bounded in entries, with hit/miss counters.

    One cache belongs to one encoder (its vectors are that encoder's). On a miss, :meth:`vector` embeds the
    key, not the text as typed, so a query's vector does not depend on which spelling of it came first; the
    model is uncased and ignores whitespace, so the key embeds as the text does. Vectors handed out are
    read-only. The lock is not held while embedding: two threads missing the same query both embed it.
    """

    def __init__(self, size: int = DEFAULT_QUERY_CACHE_SIZE):
        """Make an empty cache.

        Args:
            size: the most vectors kept (the setting QUERY_CACHE_SIZE); 0 keeps none.

        Raises:
            ConfigError: size is negative.
        """
        if size < 0:
            raise ConfigError(f"QUERY_CACHE_SIZE must be 0 or more, not {size}")
        self.size = size
        self.hits = 0
        self.misses = 0
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, text: str) -> np.ndarray | None:
        """The cached vector of a query (counted as a hit, made most recent), or None (counted as a miss)."""
        key = query_key(text)
        with self._lock:
            vector = self._vectors.get(key)
            if vector is None:
                self.misses += 1
                return None
            self._vectors.move_to_end(key)
            self.hits += 1
            return vector

    def put(self, text: str, vector: np.ndarray) -> np.ndarray:
        """Keep a query's vector (a read-only float32 copy), dropping the least recently used past the size.

        Returns:
            The copy kept (or that would have been, when the size is 0).
        """
        kept = np.array(vector, dtype=np.float32)
        kept.setflags(write=False)
        if self.size == 0:
            return kept
        key = query_key(text)
        with self._lock:
            self._vectors[key] = kept
            self._vectors.move_to_end(key)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return kept

    def vector(self, text: str, encode: Callable[[Sequence[str]], np.ndarray]) -> np.ndarray:
        """A query's vector from the cache, or encode([key])[0] kept for next time.

        Args:
            text: the query.
            encode: an encoder's encode (texts -> unit vectors); its errors pass through, nothing is kept.
        """
        found = self.get(text)
        if found is not None:
            return found
        return self.put(text, encode([query_key(text)])[0])

    def clear(self) -> None:
        """Drop every vector and zero the counters."""
        with self._lock:
            self._vectors.clear()
            self.hits = self.misses = 0

    def stats(self) -> dict[str, int]:
        """{"size", "entries", "hits", "misses"}."""
        with self._lock:
            return {"size": self.size, "entries": len(self._vectors), "hits": self.hits, "misses": self.misses}
