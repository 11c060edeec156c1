"""Hubness reduction (CSLS): articles close to everything stop crowding out the ones close to the session."""

from __future__ import annotations

import numpy as np
import pytest

from plugin import Article, SessionRecommender, SuggestSettings, hubness
from plugin.hubness import HubnessIndex, neighbourhood_similarity

OPEN = dict(min_score=None, mmr_lambda=1.0, lexical_weight=0.0, link_weight=0.0, topic_split=None, title_weight=0.0)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class TableEncoder:
    """A dense model given as a table: each text's vector is looked up by its last line (the article's id)."""

    name = "table:24"
    dim = 24

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def encode(self, texts):
        return np.stack([self.table[t.split(chr(10))[-1]] for t in texts]).astype(np.float32)


def _bridged_kb(seed: int = 0) -> tuple[list[Article], TableEncoder]:
    """6 topics of 8 pages, plus 'bridge' pages halfway between two topics: each bridge is among the nearest
    neighbours of both topics' pages, so it is a hub in the kNN sense."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((6, 24)))
    table: dict[str, np.ndarray] = {}
    for t in range(6):
        for i in range(8):
            table[f"t{t}-{i}"] = _unit(centres[t] + 0.9 * _unit(rng.standard_normal(24)))
    for t in range(6):
        for u in range(t + 1, 6):
            table[f"bridge-{t}{u}"] = _unit(centres[t] + centres[u] + 0.3 * _unit(rng.standard_normal(24)))
    return [Article(a, a, text=a) for a in table], TableEncoder(table)


def test_neighbourhood_similarity_is_the_mean_of_each_rows_k_best_other_cosines():
    x = _unit(np.random.default_rng(1).standard_normal((40, 8)))
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    expected = np.sort(sims, axis=1)[:, -5:].mean(1)
    np.testing.assert_allclose(neighbourhood_similarity(x, 5), expected, atol=1e-6)
    assert neighbourhood_similarity(x[:1], 5).tolist() == [0.0]  # no neighbours: no discount
    with pytest.raises(ValueError, match="k must be at least 1"):
        neighbourhood_similarity(x, 0)


def test_a_large_kb_is_estimated_against_a_sample_close_to_the_exact_values(monkeypatch):
    rng = np.random.default_rng(2)  # 10 clusters, from tight to loose: r differs a lot between them
    centres = _unit(rng.standard_normal((10, 16)))
    x = _unit(
        np.repeat(centres, 60, axis=0)
        + np.repeat(np.linspace(0.2, 2.0, 10), 60)[:, None] * _unit(rng.standard_normal((600, 16)))
    )
    exact = neighbourhood_similarity(x, 20)
    monkeypatch.setattr(hubness, "_EXACT_MAX", 300)  # sample half the KB, k scaled to 10
    approx = neighbourhood_similarity(x, 20)
    assert np.corrcoef(exact, approx)[0, 1] > 0.9
    assert abs(float(approx.mean() - exact.mean())) < 0.05


def test_bridge_pages_stop_crowding_out_the_topic_being_read():
    def slots(weight: float) -> tuple[int, int]:
        """(slots given to bridges, slots given to the topic read) over 6 sessions on each of 3 seeded KBs."""
        bridges = on_topic = 0
        for seed in range(3):
            arts, enc = _bridged_kb(seed)
            rec = SessionRecommender.build(
                arts, encoder=enc, progress=False, settings=SuggestSettings(**OPEN, hubness_weight=weight)
            )
            for t in range(6):
                sid = f"s{t}"
                rec.track(sid, article_id=f"t{t}-0")
                rec.track(sid, article_id=f"t{t}-1")
                got = [s.article.id for s in rec.suggest(sid, k=5)]
                bridges += sum(a.startswith("bridge") for a in got)
                on_topic += sum(a.startswith(f"t{t}-") for a in got)
        return bridges, on_topic

    (plain_b, plain_t), (disc_b, disc_t) = slots(0.0), slots(0.5)
    assert plain_b >= 20, plain_b  # of 90 slots: bridges are real hubs here
    assert disc_b <= plain_b * 0.8, (plain_b, disc_b)
    assert disc_t >= plain_t + 5, (plain_t, disc_t)


def test_discounts_follow_changes_to_the_kb():
    ids = ["a", "b", "c"]
    vecs = {"a": _unit(np.array([1.0, 0.0])), "b": _unit(np.array([1.0, 0.1])), "c": _unit(np.array([0.0, 1.0]))}
    hub = HubnessIndex(lambda limit: (list(ids), np.stack([vecs[i] for i in ids])), k=1)
    before = hub.get(["a", "c", "zz"])
    assert before[0] > 0.99 and before[2] == 0.0  # a's nearest is b; an unknown article gets no discount
    ids.remove("b")
    assert hub.get(["a"])[0] == before[0]  # kept until invalidated
    hub.invalidate()
    assert hub.get(["a"])[0] == pytest.approx(0.0, abs=1e-6)  # a's nearest is now c, orthogonal to it


def test_the_recommender_recomputes_discounts_after_upserts(articles, fake_encoder):
    rec = SessionRecommender.build(articles, encoder=fake_encoder, progress=False)
    rec.warm()
    first = rec.hubness.get([articles[0].id])[0]
    rec.upsert_articles([Article("near-dup", "dup", text=articles[0].text)])
    assert rec.hubness.get([articles[0].id])[0] > first  # it now has an identical neighbour


def test_a_kb_over_the_limit_goes_without_the_discount_and_without_reading_its_vectors(
    articles, fake_encoder, monkeypatch
):
    rec = SessionRecommender.build(articles, encoder=fake_encoder, progress=False)
    monkeypatch.setattr(hubness, "MAX_ARTICLES", len(articles) - 1)
    read = []
    monkeypatch.setattr(rec.index, "vectors", lambda ids: read.append(len(ids)) or np.zeros((len(ids), 1)))
    rec.hubness.invalidate()
    assert rec.hubness.get([a.id for a in articles]).tolist() == [0.0] * len(articles)
    assert read == []


def test_a_saved_version_carries_r_and_a_load_does_not_recompute_it(articles, fake_encoder, tmp_path, monkeypatch):
    rec = SessionRecommender.build(articles, encoder=fake_encoder, progress=False)
    ids = [a.id for a in articles]
    expected = rec.hubness.get(ids)
    rec.save(tmp_path)
    calls = []
    real = hubness.neighbourhood_similarity
    monkeypatch.setattr(hubness, "neighbourhood_similarity", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    back = SessionRecommender.load(tmp_path, encoder=fake_encoder)
    np.testing.assert_array_equal(back.hubness.get(ids), expected)
    assert calls == []  # read from hubness.npz
    back.upsert_articles([Article("near-dup", "dup", text=articles[0].text)])
    assert back.hubness.get([articles[0].id])[0] > expected[0] and calls == [1]  # a change recomputes it


def test_a_saved_r_that_does_not_fit_is_recomputed(articles, fake_encoder, tmp_path):
    from plugin.versions import resolve_version

    rec = SessionRecommender.build(articles, encoder=fake_encoder, progress=False)
    ids = [a.id for a in articles]
    expected = rec.hubness.get(ids)
    rec.save(tmp_path)
    d, _ = resolve_version(tmp_path)
    np.savez(d / "hubness.npz", ids=np.array(ids[:2]), r=np.zeros(5, np.float32), centre=np.array(True))
    back = SessionRecommender.load(tmp_path, encoder=fake_encoder)
    np.testing.assert_allclose(back.hubness.get(ids), expected, rtol=1e-6)
