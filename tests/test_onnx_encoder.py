"""The ONNX Runtime backend of the packaged MiniLM: the same vectors as torch (fp32) or close to them (int8),
exported once into a cache folder, chosen by name when an index is loaded."""

from __future__ import annotations

import numpy as np
import pytest

from plugin import ConfigError
from plugin.encoder import (
    ENCODER_BACKENDS,
    LazyEncoder,
    backend_of,
    default_encoder_name,
    resolve_backend,
    sentence_encoder,
)

TEXTS = [
    "How do I configure the database connection pool?",
    "Model forms validate user input and save it. " * 40,  # longer than the 256-piece window: truncated alike
    "x",
    "",
    "  leading and trailing spaces  ",
    "VACUUM reclaims storage occupied by dead tuples.",
]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def onnx_encoders(onnx_cache):
    from plugin.onnx_encoder import OnnxEncoder

    return {v: OnnxEncoder(variant=v, cache=onnx_cache) for v in ("fp32", "int8")}


@pytest.mark.real_model
def test_onnx_fp32_gives_the_torch_vectors_and_int8_stays_close(real_encoder, onnx_encoders):
    ref = real_encoder.encode(TEXTS)  # (n, 384)
    fp32 = onnx_encoders["fp32"].encode(TEXTS)
    int8 = onnx_encoders["int8"].encode(TEXTS)
    assert fp32.shape == int8.shape == ref.shape and fp32.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert (fp32 * ref).sum(1).min() > 0.9999
    cos = (int8 * ref).sum(1)
    assert cos.min() > 0.95 and cos.mean() > 0.98
    # the order of texts in a call does not change a vector (length-sorted batches are unsorted again)
    np.testing.assert_allclose(onnx_encoders["int8"].encode(TEXTS[::-1])[::-1], int8, atol=1e-5)
    enc = onnx_encoders["int8"]
    assert enc.count_tokens(["hello world"]) == real_encoder.count_tokens(["hello world"])
    assert (enc.window_tokens, enc.max_chars) == (real_encoder.window_tokens, real_encoder.max_chars)


@pytest.mark.real_model
def test_export_is_cached_and_not_redone(onnx_cache, onnx_encoders):
    from plugin.onnx_encoder import OnnxEncoder

    files = sorted(onnx_cache.rglob("*.onnx"))
    assert [f.name for f in files] == sorted(["model.onnx", files[-1].name]) and "int8" in files[-1].name
    stamps = [f.stat().st_mtime_ns for f in files]
    OnnxEncoder(variant="int8", cache=onnx_cache)
    assert [f.stat().st_mtime_ns for f in files] == stamps


@pytest.mark.real_model
def test_names_record_the_backend_and_an_index_gets_its_own_back(onnx_encoders):
    from plugin.persistence import encoder_for

    assert onnx_encoders["int8"].name == default_encoder_name("onnx-int8") == default_encoder_name() + "@onnx-int8"
    assert onnx_encoders["fp32"].name == default_encoder_name("onnx")
    for backend in ("torch", "onnx", "onnx-int8"):
        name = default_encoder_name(backend)
        assert backend_of(name) == backend
        lazy = encoder_for(name, 384)
        assert isinstance(lazy, LazyEncoder) and lazy.name == name and not lazy.loaded


def test_backend_choice_is_validated_and_auto_is_onnx_int8_where_onnxruntime_is():
    assert ENCODER_BACKENDS == ("auto", "torch", "onnx", "onnx-int8")
    assert resolve_backend("auto") == "onnx-int8" and resolve_backend("torch") == "torch"
    with pytest.raises(ConfigError, match="Valid backends are: auto, torch, onnx, onnx-int8"):
        sentence_encoder("tensorrt")
    assert backend_of("hashing:64") is None
