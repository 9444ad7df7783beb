import numpy as np
import pytest

from kb.indexing.embeddings import OnnxEncoder, TorchEncoder, onnx_folder, query_encoder

TEXTS = [
    "customer charged twice",
    "dbl charged for coins",
    "refnd not recieved after 10 days",
    "CB 13.1 evidence deadline",
    "Hi team, ticket #48213: the buyer says the parcel never arrived. Thanks, Ana",
    "how do I cancel my premium plan on android",
    "creator payout still pending since friday",
    "card [card ending 1111] declined at checkout",
    "",
    "a " * 400,
]


@pytest.fixture(scope="module")
def torch_encoder():
    return TorchEncoder()


def test_onnx_query_vectors_match_the_torch_encoder(model_data, torch_encoder):
    onnx = OnnxEncoder(onnx_folder(model_data, ""))
    cosine = (onnx.encode(TEXTS) * torch_encoder.encode(TEXTS)).sum(axis=1)
    assert cosine.min() >= 0.9999


def test_vectors_are_unit_length(model_data):
    vectors = OnnxEncoder(onnx_folder(model_data, "")).encode(TEXTS[:3])
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_query_encoder_prefers_the_cached_onnx_export(model_data):
    assert query_encoder(model_data, "", "onnx").kind == "onnx"


def test_query_encoder_falls_back_to_torch_when_the_export_is_unusable(tmp_path, model_data, monkeypatch):
    import shutil

    folder = onnx_folder(tmp_path, "")
    shutil.copytree(onnx_folder(model_data, ""), folder)
    (folder / "model.onnx").write_bytes(b"not a model")
    encoder = query_encoder(tmp_path, "", "onnx")
    assert encoder.kind == "torch"
    assert encoder.encode(["hello"]).shape == (1, 384)
