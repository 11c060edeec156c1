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


def _hnsw(n=200, d=16, seed=0):
    ix = ArticleIndex(d, "hnsw", hnsw_m=8, ef_search=64)
    v = _vecs(n, d, seed)
    ix.upsert([f"a{i}" for i in range(n)], v)
    return ix, v


def test_hnsw_tombstones_are_filtered_inside_the_search_and_k_rows_still_come_back():
    ix, v = _hnsw()
    gone = [f"a{i}" for i in range(0, 40)]  # 40 of 200: below the compaction threshold (0.25 of 160 live)
    assert ix.remove(gone) == 40 and ix._tombstones == 40 and len(ix) == 160
    for hits in ix.search(v[:40], 10):  # each query's own row is dead: it and the other dead rows never come back
        assert len(hits) == 10 and not {a for a, _ in hits} & set(gone)
    # the same hits as an exact search over the live rows (a small graph at ef 64 is exact here)
    live = v[40:]
    want = np.argsort(-(v[:5] @ live.T), axis=1)[:, :10] + 40
    assert [[a for a, _ in h] for h in ix.search(v[:5], 10)] == [[f"a{i}" for i in row] for row in want]


def test_hnsw_update_is_visible_in_the_next_search_and_the_old_vector_is_not():
    ix, v = _hnsw()
    ix.upsert(["a7"], v[9:10])  # a7 now sits where a9 is
    hits = ix.search(v[9:10], 2)[0]
    assert {a for a, _ in hits} == {"a7", "a9"} and all(abs(s - 1.0) < 1e-5 for _, s in hits)
    assert "a7" not in [a for a, _ in ix.search(v[7:8], 1)[0]]  # the old row is a tombstone
    assert ix._tombstones == 1
    ix.upsert(["new"], -v[3:4])
    assert ix.search(-v[3:4], 1)[0][0][0] == "new"


def test_hnsw_rebuilds_the_graph_when_tombstones_pass_the_threshold(monkeypatch):
    from plugin import index as index_mod

    ix, v = _hnsw()
    ix.remove([f"a{i}" for i in range(30)])  # 30 tombstones, 170 live: under 0.25 * 170
    assert ix._tombstones == 30
    ix.remove([f"a{i}" for i in range(30, 50)])  # 50 > 0.25 * 150 = 37.5: rebuilt
    assert ix._tombstones == 0 and not ix._dead and ix._index.ntotal == 150 and len(ix) == 150
    assert ix.search(v[60:61], 1)[0][0][0] == "a60"
    assert not {a for a, _ in ix.search(v[:50], 5)[0]} & {f"a{i}" for i in range(50)}
    monkeypatch.setattr(index_mod, "HNSW_COMPACT_AT", 10.0)  # under a higher threshold updates stay tombstones
    ix.upsert([f"a{i}" for i in range(50, 100)], v[50:100])
    assert ix._tombstones == 50


def test_hnsw_loads_memory_mapped_removes_without_copying_and_copies_before_an_add(tmp_path):
    ix, v = _hnsw()
    ix.remove(["a1", "a2"])
    ix.save(tmp_path)
    mapped = ArticleIndex.load(tmp_path)
    assert mapped._mapped and mapped._dead == ix._dead and mapped.search(v[:5], 5) == ix.search(v[:5], 5)
    assert ArticleIndex.load(tmp_path, mmap=False)._mapped is False
    mapped.remove(["a3"])  # a tombstone: the mapped vectors are not touched
    assert mapped._mapped and "a3" not in [a for a, _ in mapped.search(v[3:4], 5)[0]]
    mapped.upsert(["a4"], -v[4:5])  # an add: copied into memory first (faiss cannot grow a mapped array)
    assert not mapped._mapped and mapped.search(-v[4:5], 1)[0][0][0] == "a4"
    np.testing.assert_allclose(mapped.vectors(["a5"])[0], v[5], atol=1e-6)
    again = ArticleIndex.load(tmp_path)  # a mapped index saves as it is
    again.save(tmp_path / "copy")
    assert ArticleIndex.load(tmp_path / "copy").search(v[:5], 5) == ix.search(v[:5], 5)


@pytest.mark.parametrize("kind", list(_KINDS))
def test_rows_and_vectors_at_equal_holding_and_vectors(kind):
    from plugin import UnknownArticleError

    ix = _index(kind)
    v = _vecs(50)
    ix.upsert([f"a{i}" for i in range(50)], v)
    ix.remove(["a3"])
    asked = ["a1", "a3", "nope", "a49", "a0"]
    rows = ix.rows(asked)
    assert [r >= 0 for r in rows.tolist()] == [a in ix.holding(asked) for a in asked]
    held = rows[rows >= 0]
    np.testing.assert_array_equal(ix.vectors_at(held), ix.vectors(["a1", "a49", "a0"]))
    assert ix.vectors_at(held[:0]).shape == (0, 16)
    with_rows = ix.search_rows(v[:6], 5)  # the same hits as search(), each with its row
    assert [[(a, s) for a, s, _ in h] for h in with_rows] == ix.search(v[:6], 5)
    assert all([r for _, _, r in h] == ix.rows([a for a, _, _ in h]).tolist() for h in with_rows)
    ix.remove(["a49"])  # removed after its row was read: refused, not a stale or foreign vector
    with pytest.raises(UnknownArticleError):
        ix.vectors_at(held)
