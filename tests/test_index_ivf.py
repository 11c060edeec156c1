"""The ivf index kind at a small scale (20k clustered vectors): recall against exact search, add / update / delete
without a rebuild, memory-mapped save/load, and the builder choosing it."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from plugin import ArticleIndex, HashingEncoder, SessionRecommender
from plugin.index import IVF_NPROBE, auto_nlist
from plugin.knowledge_base import Article

N, D, K = 20_000, 384, 10  # 384-d like MiniLM


def _clustered(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around n / 100 topic centres (noise larger than the centre: cosine ~0.45 to it)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // 100, D)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    topic = rng.integers(0, len(centres), n)
    x = centres[topic] + rng.standard_normal((n, D)).astype(np.float32) * np.float32(2.0 / np.sqrt(D))
    return x / np.linalg.norm(x, axis=1, keepdims=True), topic


def _queries(x: np.ndarray, topic: np.ndarray, m: int = 200) -> np.ndarray:
    """Like suggest()'s intent: the mean of two articles read, one topic or (every other query) two."""
    rng = np.random.default_rng(1)
    q = []
    for i in range(m):
        a = int(rng.integers(0, len(x)))
        same = np.flatnonzero(topic == topic[a])
        b = int(rng.choice(same)) if i % 2 == 0 else int(rng.integers(0, len(x)))
        v = x[a] + x[b]
        q.append(v / np.linalg.norm(v))
    return np.stack(q).astype(np.float32)


def _recall(ix: ArticleIndex, q: np.ndarray, exact: np.ndarray) -> float:
    got = ix.search(q, K)
    return float(np.mean([len({int(a[1:]) for a, _ in g} & set(e.tolist())) / K for g, e in zip(got, exact)]))


@pytest.fixture(scope="module")
def data():
    faiss.omp_set_num_threads(1)
    x, topic = _clustered(N)
    q = _queries(x, topic)
    _, exact = faiss.knn(q, x, K, metric=faiss.METRIC_INNER_PRODUCT)
    return x, q, exact


def _trained(kind: str, x: np.ndarray) -> ArticleIndex:
    ix = ArticleIndex(D, kind, train_at=N)
    ix.upsert([f"a{i}" for i in range(N)], x)
    return ix


@pytest.fixture()
def ivf(data):
    return _trained("ivf", data[0])


def test_ivf_trains_once_at_its_size_and_keeps_recall_against_exact(data, ivf):
    _, q, exact = data
    assert ivf.trained and ivf.nlist == auto_nlist(N) == 512
    assert _recall(ivf, q, exact) >= 0.95
    faiss.extract_index_ivf(ivf._index).nprobe = 1  # the same index searching one list: approximate, so worse
    assert _recall(ivf, q, exact) < 0.9


def test_ivf_stays_exact_until_trained(data):
    x, q, _ = data
    ix = ArticleIndex(D, "ivf", train_at=N)
    ix.upsert([f"a{i}" for i in range(N // 2)], x[: N // 2])
    assert not ix.trained
    _, exact_half = faiss.knn(q, x[: N // 2], K, metric=faiss.METRIC_INNER_PRODUCT)
    assert _recall(ix, q, exact_half) == 1.0


def test_ivf_add_update_delete_without_retraining(data, ivf):
    x, _, _ = data
    centroids = faiss.extract_index_ivf(ivf._index).quantizer.reconstruct_n(0, ivf.nlist).copy()
    far = -x[7]
    ivf.upsert(["a7", "new"], np.stack([far, x[3]]))  # update one, add one
    assert ivf.remove(["a3", "a99999"]) == 1
    assert len(ivf) == N and ivf.trained
    np.testing.assert_allclose(ivf.vectors(["a7"])[0], far, atol=1e-6)
    top = [a for a, _ in ivf.search(x[3][None, :], 3)[0]]
    assert top[0] == "new" and "a3" not in top
    assert "a7" not in [a for a, _ in ivf.search(x[7][None, :], K)[0]]
    after = faiss.extract_index_ivf(ivf._index).quantizer.reconstruct_n(0, ivf.nlist)
    np.testing.assert_array_equal(after, centroids)  # no retraining, no rebuild


def test_ivf_saved_index_loads_memory_mapped_and_a_change_copies_it(data, ivf, tmp_path):
    x, q, _ = data
    ivf.save(tmp_path)
    before = ivf.search(q[:20], K)
    mapped = ArticleIndex.load(tmp_path)
    lists = faiss.extract_index_ivf(mapped._index).invlists
    assert isinstance(faiss.downcast_InvertedLists(lists), faiss.OnDiskInvertedLists)
    assert mapped.search(q[:20], K) == before and mapped.nprobe == IVF_NPROBE
    copy = ArticleIndex.load(tmp_path, mmap=False)
    assert isinstance(
        faiss.downcast_InvertedLists(faiss.extract_index_ivf(copy._index).invlists), faiss.ArrayInvertedLists
    )
    file_bytes = (tmp_path / "index.faiss").read_bytes()
    mapped.upsert(["fresh"], x[11][None, :])
    mapped.remove(["a11"])
    assert (tmp_path / "index.faiss").read_bytes() == file_bytes  # the mapped file is never written through
    assert mapped.search(x[11][None, :], 1)[0][0][0] == "fresh"
    mapped.save(tmp_path / "next")
    again = ArticleIndex.load(tmp_path / "next")
    assert again.search(x[11][None, :], 1)[0][0][0] == "fresh" and "a11" not in again and len(again) == N


def test_rebuild_retrains_ivf_on_what_the_index_holds(data, ivf):
    x, _, _ = data
    centroids = faiss.extract_index_ivf(ivf._index).quantizer.reconstruct_n(0, ivf.nlist).copy()
    ivf.remove([f"a{i}" for i in range(0, N, 2)])
    other, _ = _clustered(N // 2, seed=5)  # the KB changed shape: half its articles replaced by other topics
    ivf.upsert([f"b{i}" for i in range(N // 2)], other)
    ivf.rebuild()
    assert ivf.trained and len(ivf) == N
    after = faiss.extract_index_ivf(ivf._index).quantizer.reconstruct_n(0, ivf.nlist)
    assert not np.allclose(after, centroids)
    assert ivf.search(x[1][None, :], 1)[0][0][0] == "a1" and ivf.search(other[3][None, :], 1)[0][0][0] == "b3"


def test_builder_picks_ivf_above_the_threshold_and_the_version_keeps_it(monkeypatch, tmp_path):
    from plugin import recommender

    monkeypatch.setattr(recommender, "_AUTO_IVF_ABOVE", 30)
    arts = [
        Article(id=f"a{i}", title=f"topic {i % 5} page {i}", text=f"words about subject {i % 5}") for i in range(40)
    ]
    small = SessionRecommender.build(arts[:20], encoder=HashingEncoder(64), progress=False)
    assert small.index.kind == "flat"
    rec = SessionRecommender.build(arts, encoder=HashingEncoder(64), progress=False)
    assert rec.index.kind == "ivf" and not rec.index.trained  # 40 vectors are too few to cluster: exact
    rec.save(tmp_path)
    back = SessionRecommender.load(tmp_path)
    assert back.index.kind == "ivf" and back.suggest_for(["a1"], k=3)


# ------------------------------------------------------------ ivfpq: PQ fast scan + exact re-rank


@pytest.fixture()
def ivfpq(data):
    return _trained("ivfpq", data[0])


def test_ivfpq_scans_codes_and_reranks_exactly(data, ivfpq):
    _, q, exact = data
    assert ivfpq.trained and ivfpq._scan is not None and ivfpq._scan.ntotal == N
    reranked = _recall(ivfpq, q, exact)
    assert reranked >= 0.95
    got = ivfpq.search(q[:5], K)
    for hits, query in zip(got, q[:5]):  # re-ranked: the scores are the exact inner products, best first
        vecs = ivfpq.vectors([a for a, _ in hits])
        np.testing.assert_allclose([s for _, s in hits], vecs @ query, rtol=1e-5, atol=1e-6)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    ivfpq.rerank = K  # re-scoring only as many rows as asked for leaves the choice to the 4-bit codes: worse
    assert _recall(ivfpq, q, exact) < reranked - 0.02


def test_ivfpq_add_update_delete_reach_both_sets_of_lists(data, ivfpq):
    x, _, _ = data
    far = -x[7]
    ivfpq.upsert(["a7", "new"], np.stack([far, x[3]]))
    assert ivfpq.remove(["a3", "a99999"]) == 1
    assert len(ivfpq) == N and ivfpq._scan.ntotal == ivfpq._index.ntotal == N
    np.testing.assert_allclose(ivfpq.vectors(["a7"])[0], far, atol=1e-6)
    top = [a for a, _ in ivfpq.search(x[3][None, :], 3)[0]]
    assert top[0] == "new" and "a3" not in top
    assert ivfpq.search(far[None, :], 1)[0][0][0] == "a7"
    assert "a7" not in [a for a, _ in ivfpq.search(x[7][None, :], K)[0]]


def test_ivfpq_saves_both_lists_and_loads_the_exact_ones_memory_mapped(data, ivfpq, tmp_path):
    x, q, _ = data
    ivfpq.set_nprobe(16)
    ivfpq.rerank = 64
    ivfpq.save(tmp_path)
    before = ivfpq.search(q[:20], K)
    back = ArticleIndex.load(tmp_path)
    assert back.kind == "ivfpq" and back.nprobe == 16 and back.rerank == 64 and back._scan.nprobe == 16
    assert isinstance(
        faiss.downcast_InvertedLists(faiss.extract_index_ivf(back._index).invlists), faiss.OnDiskInvertedLists
    )
    assert back.search(q[:20], K) == before
    back.upsert(["fresh"], x[11][None, :])
    back.remove(["a11"])
    assert back.search(x[11][None, :], 1)[0][0][0] == "fresh"
    (tmp_path / "scan.faiss").write_bytes(b"not an index")
    from plugin.errors import IndexFormatError

    with pytest.raises(IndexFormatError):
        ArticleIndex.load(tmp_path)


def test_ivfpq_rebuild_retrains_both(data, ivfpq):
    x, _, _ = data
    ivfpq.remove([f"a{i}" for i in range(0, N, 2)])
    other, _ = _clustered(N // 2, seed=5)
    ivfpq.upsert([f"b{i}" for i in range(N // 2)], other)
    old_scan = ivfpq._scan
    ivfpq.rebuild()
    assert ivfpq.trained and ivfpq._scan is not old_scan and ivfpq._scan.ntotal == len(ivfpq) == N
    assert ivfpq.search(x[1][None, :], 1)[0][0][0] == "a1" and ivfpq.search(other[3][None, :], 1)[0][0][0] == "b3"


def test_ivfpq_checks_its_settings():
    from plugin.errors import ConfigError

    with pytest.raises(ConfigError, match="pq_m"):
        ArticleIndex(D, "ivfpq", pq_m=5)
    with pytest.raises(ConfigError, match="rerank"):
        ArticleIndex(D, "ivfpq", rerank=0)


def test_builder_picks_ivfpq_above_its_threshold_with_its_own_nprobe(monkeypatch):
    from plugin import recommender
    from plugin.index import PQ_NPROBE

    monkeypatch.setattr(recommender, "_AUTO_IVF_ABOVE", 10)
    monkeypatch.setattr(recommender, "_AUTO_IVFPQ_ABOVE", 30)
    arts = [Article(id=f"a{i}", title=f"page {i}", text=f"words about subject {i % 5}") for i in range(40)]
    assert SessionRecommender.build(arts[:20], encoder=HashingEncoder(64), progress=False).index.kind == "ivf"
    rec = SessionRecommender.build(arts, encoder=HashingEncoder(64), progress=False)
    assert rec.index.kind == "ivfpq" and rec.index.nprobe == PQ_NPROBE and rec.suggest_for(["a1"], k=3)
