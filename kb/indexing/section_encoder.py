"""What embeds sections in an index build: the model's ONNX export when there is one, else torch.

The ONNX export (made once by kb.indexing.query_encoder from the torch model, checked to cosine >= 0.9999)
gives torch's vectors: every section of the shipped library embeds to a cosine of 0.9999999 or more either
way, and tests/test_section_encoder.py compares whole indexes built both ways. So a build embeds through
the export whenever it exists, and `kb index` never imports torch after the first build: an image whose
runtime carries no torch builds indexes with the export copied into it. Without an export, torch embeds and
the builder exports the model (the only step that needs torch). With neither, the build stops before
anything is written, with a message saying both ways out.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from kb.errors import ConfigError
from kb.indexing.embeddings import OnnxEncoder, onnx_folder, torch_encoder

log = logging.getLogger(__name__)

BUILD_THREADS = min(4, os.cpu_count() or 1)  # ONNX Runtime's intra-op threads while a build embeds
TORCH_MODULES = ("torch", "sentence_transformers")


def torch_available() -> bool:
    """True when torch and sentence-transformers can be imported (checked without importing them)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in TORCH_MODULES)
    except (ImportError, ValueError):  # a finder refusing the name, or a module without a spec
        return False


def has_export(data_dir: Path, model: str) -> bool:
    """True when the instance folder holds the model's ONNX export."""
    return (onnx_folder(data_dir, model) / "meta.json").is_file()


def section_encoder(data_dir: Path, model: str, threads: int = BUILD_THREADS):
    """The encoder a build embeds new sections with: the fp32 ONNX export, else torch.

    Args:
        data_dir: the instance folder (the export lives in its models/ folder).
        model: the embedding model setting.
        threads: ONNX Runtime's intra-op threads.

    Returns:
        An encoder with .kind and .encode(texts, progress).

    Raises:
        ConfigError: there is no usable export and torch is not installed.
    """
    folder = onnx_folder(data_dir, model)
    if has_export(data_dir, model):
        try:
            return OnnxEncoder(folder, threads=threads)
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own classes for a bad model
            if not torch_available():
                raise ConfigError(
                    f"the ONNX export in {folder} does not load ({error}) and torch is not installed: "
                    "copy a good export there, or install kb[torch] to export the model again"
                ) from error
            log.warning("the ONNX export in %s does not load (%s); embedding with torch", folder, error)
    elif not torch_available():
        raise ConfigError(
            f"kb index needs the model's ONNX export in {folder} or torch to embed sections: copy the "
            "instance's models/ folder from a machine that ran `kb index` with torch, or install kb[torch] "
            "(pip install torch==2.13.0 'kb[torch]')"
        )
    return torch_encoder(model)
