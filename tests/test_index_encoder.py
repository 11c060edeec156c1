from __future__ import annotations

import numpy as np
import pytest

from plugin import (
    ArticleIndex,
    CachedEncoder,
    ConfigError,
    DimensionMismatchError,
    EmbeddingCache,
    HashingEncoder,
    IndexFormatError,
)
from plugin.encoder import Encoder, l2_normalize
from plugin.index import VectorIndex


def _vecs(n, d=16, seed=0):
    return l2_normalize(np.random.RandomState(seed).randn(n, d))


# "ivf" as built small (still exact) and "ivf1": trained on its first 40 vectors into one list, so it is exact
# and every result is comparable, while add, update, remove and save/load go through the inverted lists.
_KINDS = {
    "flat": {},
    "hnsw": {},
    "ivf": {},
    "ivf1": {"nlist": 1, "train_at": 40},
    "ivfpq": {},
    "ivfpq1": {"nlist": 1, "train_at": 40},
}


def _base(kind):
    return kind.rstrip("1")


def _index(kind, dim=16, **kw):
    return ArticleIndex(dim, _base(kind), **_KINDS[kind], **kw)


@pytest.mark.parametrize("kind", list(_KINDS))
class TestIndexContract:
    def test_search_finds_itself_and_respects_updates(self, kind):
        ix = _index(kind)
        assert isinstance(ix, VectorIndex)
        v = _vecs(50)
        ids = [f"a{i}" for i in range(50)]
        ix.upsert(ids, v)
        hits = ix.search(v[:5], 3)
        assert [h[0][0] for h in hits] == ids[:5]
        assert all(abs(h[0][1] - 1.0) < 1e-5 for h in hits)
        ix.upsert(["a0"], -v[:1])  # moved far away
        assert ix.search(v[:1], 1)[0][0][0] != "a0"
        assert ix.remove(["a1", "missing"]) == 1
        assert "a1" not in [i for i, _ in ix.search(v[1:2], 10)[0]] and len(ix) == 49
        np.testing.assert_allclose(ix.vectors(["a2"])[0], v[2], atol=1e-6)
        assert ix.trained == (kind in ("ivf1", "ivfpq1"))

    def test_save_load_roundtrip(self, kind, tmp_path):
        ix = _index(kind, encoder_name="hashing:16")
        v = _vecs(50)
        ix.upsert([str(i) for i in range(50)], v)
        ix.remove(["3"])
        ix.save(tmp_path)
        back = ArticleIndex.load(tmp_path, expect_dim=16)
        assert back.kind == _base(kind) and len(back) == 49 and back.encoder_name == "hashing:16"
        assert back.trained == ix.trained
        assert back.search(v[:4], 2) == ix.search(v[:4], 2)
        with pytest.raises(DimensionMismatchError, match="16-d"):
            ArticleIndex.load(tmp_path, expect_dim=384)


def test_index_input_validation(tmp_path):
    ix = ArticleIndex(8)
    with pytest.raises(DimensionMismatchError):
        ix.upsert(["a"], np.ones((1, 4), np.float32))
    with pytest.raises(ConfigError, match="duplicate ids"):
        ix.upsert(["a", "a"], _vecs(2, 8))
    with pytest.raises(ConfigError, match="NaN"):
        ix.upsert(["a"], np.full((1, 8), np.nan, np.float32))
    with pytest.raises(ConfigError, match="Valid kinds are: flat, ivf, ivfpq, hnsw"):
        ArticleIndex(8, "ivf-pq")
    assert ix.search(_vecs(2, 8), 3) == [[], []]
    with pytest.raises(IndexFormatError, match="index.json missing"):
        ArticleIndex.load(tmp_path)
    ix.upsert(["a"], _vecs(1, 8))
    ix.save(tmp_path)
    (tmp_path / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexFormatError):
        ArticleIndex.load(tmp_path)


def test_hashing_encoder_is_deterministic_normalised_and_topical():
    enc = HashingEncoder(512)
    assert isinstance(enc, Encoder)
    a, b, c = enc.encode(["pickle serializes objects", "serialization of objects with pickle", "turtle graphics"])
    assert np.allclose(enc.encode(["pickle serializes objects"])[0], a)
    assert np.isclose(np.linalg.norm(a), 1.0)
    assert a @ b > 0.5 > a @ c
    assert enc.encode([]).shape == (0, 512) and np.isclose(np.linalg.norm(enc.encode([""])[0]), 1.0)


def test_cached_encoder_encodes_each_text_once_and_persists(tmp_path):
    calls = []

    class Counting(HashingEncoder):
        def encode(self, texts):
            calls.append(list(texts))
            return super().encode(texts)

    enc = CachedEncoder(Counting(32))
    first = enc.encode(["x", "y", "x"])
    again = enc.encode(["y", "x"])
    assert calls == [["x", "y"]] and np.allclose(first[0], again[1]) and (enc.hits, enc.misses) == (3, 2)
    enc.cache.save(tmp_path / "emb.npz")
    loaded = CachedEncoder(Counting(32), EmbeddingCache.load(tmp_path / "emb.npz", 32, "hashing:32"))
    loaded.encode(["x", "y"])
    assert calls == [["x", "y"]]
    # a cache written by another model is ignored, not misused
    assert len(EmbeddingCache.load(tmp_path / "emb.npz", 32, "other-model")) == 0
    with pytest.raises(DimensionMismatchError):
        EmbeddingCache.load(tmp_path / "emb.npz", 64, "hashing:32")
    with pytest.raises(DimensionMismatchError):
        CachedEncoder(HashingEncoder(64), EmbeddingCache(32, "hashing:64"))


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
@pytest.mark.parametrize("declared", [2**31, 2**36, 2**39])
def test_crafted_index_file_is_an_index_format_error_never_an_allocation(tmp_path, kind, declared):
    """A vector size field inflated in index.faiss (index.json's checksum updated to match, as an attacker who
    can write both would): refused before faiss allocates, as IndexFormatError."""
    import hashlib
    import json
    import struct

    rng = np.random.default_rng(0)
    vecs = l2_normalize(rng.standard_normal((40, 8)).astype(np.float32))
    ix = ArticleIndex(8, kind)
    ix.upsert([f"a{i}" for i in range(40)], vecs)
    ix.save(tmp_path)
    assert ArticleIndex.load(tmp_path).search(vecs[:1], 1)[0][0][0] == "a0"  # the bound lets honest files in
    raw = (tmp_path / "index.faiss").read_bytes()
    field = struct.pack("<Q", 40)  # the id map's length: the last vector in the file
    at = raw.rindex(field)
    bad = raw[:at] + struct.pack("<Q", declared) + raw[at + 8 :]
    (tmp_path / "index.faiss").write_bytes(bad)
    meta = json.loads((tmp_path / "index.json").read_text())
    meta["sha256"] = hashlib.sha256(bad).hexdigest()
    (tmp_path / "index.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFormatError, match="unreadable"):
        ArticleIndex.load(tmp_path)
