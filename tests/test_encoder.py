import numpy as np
import pytest

from kb.indexing.embeddings import OnnxEncoder, TorchEncoder, onnx_folder
from kb.indexing.query_encoder import query_encoder

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


# -- the int8 (quantized) query encoder ---------------------------------------------------------------------


def _copy_export(model_data, data):
    """A data folder holding a copy of the session's fp32 ONNX export (no int8 copy yet)."""
    import shutil

    folder = onnx_folder(data, "")
    shutil.copytree(onnx_folder(model_data, ""), folder, ignore=shutil.ignore_patterns("model-int8*"))
    return folder


@pytest.fixture(scope="module")
def int8_data(model_data, tmp_path_factory):
    """A data folder whose export has its int8 copy, made once for the module."""
    from kb.indexing.query_encoder import quantize_onnx

    data = tmp_path_factory.mktemp("int8-data")
    assert quantize_onnx(_copy_export(model_data, data)) is True
    return data


def _dev_queries() -> list[str]:
    import json

    from tests.conftest import DEV_QUERIES

    if not DEV_QUERIES.exists():
        pytest.skip(f"shared evaluation data not found at {DEV_QUERIES}")
    return [json.loads(line)["query"] for line in DEV_QUERIES.read_text().splitlines() if line.strip()]


def test_int8_vectors_are_unit_length_and_close_to_fp32_on_every_dev_query(int8_data):
    from kb.indexing.embeddings import QUANTIZED_MODEL

    texts = [*_dev_queries(), *TEXTS]
    folder = onnx_folder(int8_data, "")
    int8 = OnnxEncoder(folder, model_file=QUANTIZED_MODEL)
    vectors = int8.encode(texts)
    cosine = (vectors * OnnxEncoder(folder).encode(texts)).sum(axis=1)
    assert int8.kind == "onnx-int8" and vectors.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosine.min() >= 0.97, [texts[i] for i in np.flatnonzero(cosine < 0.97)]
    assert cosine.mean() >= 0.98


def test_int8_copy_is_smaller_and_recorded_in_its_sidecar(int8_data):
    import hashlib
    import json

    from kb.indexing.embeddings import QUANTIZED_MODEL
    from kb.indexing.query_encoder import QUANTIZED_META

    folder = onnx_folder(int8_data, "")
    meta = json.loads((folder / QUANTIZED_META).read_text())
    raw = (folder / QUANTIZED_MODEL).read_bytes()
    assert meta["bytes"] == len(raw) and meta["sha256"] == hashlib.sha256(raw).hexdigest()
    assert len(raw) < (folder / "model.onnx").stat().st_size / 3
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".quantize-")]


def test_query_encoder_makes_the_int8_copy_on_first_use_and_reuses_it(tmp_path, model_data, monkeypatch):
    import onnxruntime.quantization

    from kb.indexing.embeddings import QUANTIZED_MODEL

    folder = _copy_export(model_data, tmp_path)
    encoder = query_encoder(tmp_path, "", "onnx-int8")
    assert encoder.kind == "onnx-int8" and encoder.encode(["refund"]).shape == (1, 384)
    before = (folder / QUANTIZED_MODEL).stat()

    def refuse(*args, **kwargs):
        raise AssertionError("quantized again")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", refuse)
    again = query_encoder(tmp_path, "", "onnx-int8")
    after = (folder / QUANTIZED_MODEL).stat()
    assert again.kind == "onnx-int8"
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert np.allclose(again.encode(TEXTS[:3]), encoder.encode(TEXTS[:3]))


def test_ensure_onnx_makes_the_int8_copy_when_asked(tmp_path, model_data):
    from kb.indexing.embeddings import QUANTIZED_MODEL
    from kb.indexing.query_encoder import ensure_onnx

    folder = _copy_export(model_data, tmp_path)
    assert ensure_onnx(tmp_path, "") == folder and not (folder / QUANTIZED_MODEL).exists()
    assert ensure_onnx(tmp_path, "", quantized=True) == folder and (folder / QUANTIZED_MODEL).is_file()


CREATE = """
import sys, time
from pathlib import Path
from kb.indexing.query_encoder import quantize_onnx
folder, go = Path(sys.argv[1]), Path(sys.argv[2])
(go.parent / f"ready-{sys.argv[3]}").touch()
while not go.exists():
    time.sleep(0.01)
print(quantize_onnx(folder))
"""


def test_two_processes_making_the_int8_copy_at_once_make_it_once(tmp_path, model_data):
    import subprocess
    import sys
    import time

    from kb.indexing.query_encoder import load_quantized

    folder = _copy_export(model_data, tmp_path / "data")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", CREATE, str(folder), str(go), str(n)], stdout=subprocess.PIPE, text=True
        )
        for n in range(2)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{n}").exists() for n in range(2)) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # both processes are imported and waiting: they call quantize_onnx together
    outputs = sorted(p.communicate(timeout=300)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == ["False", "True"]
    assert load_quantized(folder).encode(["refund"]).shape == (1, 384)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".quantize-")]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "one byte changed", "no sidecar"])
def test_a_damaged_int8_copy_falls_back_to_the_fp32_model_with_a_warning(tmp_path, int8_data, caplog, damage):
    import logging
    import shutil

    from kb.indexing.embeddings import QUANTIZED_MODEL
    from kb.indexing.query_encoder import QUANTIZED_META

    folder = onnx_folder(tmp_path, "")
    shutil.copytree(onnx_folder(int8_data, ""), folder)
    target = folder / QUANTIZED_MODEL
    raw = target.read_bytes()
    if damage == "garbage":
        target.write_bytes(b"not a model")
    elif damage == "truncated":
        target.write_bytes(raw[: len(raw) // 2])
    elif damage == "one byte changed":
        middle = len(raw) // 2
        target.write_bytes(raw[:middle] + bytes([raw[middle] ^ 0xFF]) + raw[middle + 1 :])
    else:
        (folder / QUANTIZED_META).unlink()
    with caplog.at_level(logging.WARNING, logger="kb"):
        encoder = query_encoder(tmp_path, "", "onnx-int8")
    assert encoder.kind == "onnx"
    assert encoder.encode(["refund"]).shape == (1, 384)
    assert any("int8 ONNX query encoder unavailable" in r.getMessage() for r in caplog.records)


def test_an_int8_copy_too_far_from_fp32_is_not_installed(tmp_path, model_data, monkeypatch, caplog):
    import logging

    from kb.errors import IndexError_
    from kb.indexing import embeddings
    from kb.indexing import query_encoder as encoding

    folder = _copy_export(model_data, tmp_path)
    monkeypatch.setattr(encoding, "QUANTIZED_MIN_COSINE", 1.01)
    with pytest.raises(IndexError_, match="differs from fp32"):
        encoding.quantize_onnx(folder)
    assert not (folder / embeddings.QUANTIZED_MODEL).exists()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".quantize-")]
    with caplog.at_level(logging.WARNING, logger="kb"):
        assert query_encoder(tmp_path, "", "onnx-int8").kind == "onnx"
    assert any("differs from fp32" in r.getMessage() for r in caplog.records)


# -- the query vector cache ---------------------------------------------------------------------------------


def test_query_key_is_nfkc_casefolded_and_whitespace_collapsed():
    from kb.indexing.query_encoder import query_key

    assert query_key("  Refund\tNOT\n received  ") == "refund not received"
    assert query_key("ﬁnal ＲＥＦＵＮＤ") == "final refund"  # ligature and full-width letters
    assert query_key("Straße") == query_key("STRASSE") == "strasse"
    assert query_key("a\u00a0b\u2003c") == "a b c"  # no-break and em spaces


def test_query_cache_counts_hits_and_misses_and_keys_by_the_normalised_text():
    from kb.indexing.query_encoder import QueryVectorCache

    cache = QueryVectorCache(8)
    calls = []

    def encode(texts):
        calls.append(list(texts))
        return np.ones((len(texts), 4), dtype=np.float32) / 2

    first = cache.vector("Refund  not received", encode)
    second = cache.vector("refund not RECEIVED ", encode)
    assert calls == [["refund not received"]]
    assert second is first and not first.flags.writeable
    assert cache.stats() == {"size": 8, "entries": 1, "hits": 1, "misses": 1}
    assert cache.get("other") is None and cache.misses == 2


def test_query_cache_drops_the_least_recently_used_past_its_size():
    from kb.indexing.query_encoder import QueryVectorCache

    cache = QueryVectorCache(2)
    for n, text in enumerate(["a", "b"]):
        cache.put(text, np.full(3, n))
    assert cache.get("a") is not None  # a is now the most recent: b goes first
    cache.put("c", np.full(3, 2))
    assert len(cache) == 2 and cache.get("b") is None
    assert cache.get("a")[0] == 0 and cache.get("c")[0] == 2
    cache.clear()
    assert len(cache) == 0 and cache.stats()["hits"] == 0


def test_query_cache_of_size_zero_keeps_nothing_and_a_negative_size_is_refused():
    from kb.errors import ConfigError
    from kb.indexing.query_encoder import DEFAULT_QUERY_CACHE_SIZE, QueryVectorCache

    assert QueryVectorCache().size == DEFAULT_QUERY_CACHE_SIZE == 4096
    cache = QueryVectorCache(0)
    assert cache.vector("a", lambda texts: np.ones((1, 3))).shape == (3,)
    assert len(cache) == 0 and cache.get("a") is None
    with pytest.raises(ConfigError):
        QueryVectorCache(-1)


def test_query_cache_keeps_nothing_when_the_encoder_fails():
    from kb.indexing.query_encoder import QueryVectorCache

    cache = QueryVectorCache(4)

    def fail(texts):
        raise RuntimeError("encoder down")

    with pytest.raises(RuntimeError):
        cache.vector("refund", fail)
    assert len(cache) == 0 and cache.misses == 1


def test_query_cache_is_safe_across_threads():
    import threading

    from kb.indexing.query_encoder import QueryVectorCache, query_key

    cache = QueryVectorCache(16)
    errors = []

    def encode(texts):
        return np.array([[float(len(t))] for t in texts], dtype=np.float32)

    def work(seed):
        try:
            for n in range(2000):
                text = "q" * ((seed * 7 + n) % 40 + 1)
                assert cache.vector(text, encode)[0] == len(query_key(text))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= 16 and cache.hits + cache.misses == 8 * 2000
