"""The hybrid content STAMP: learned vectors only for the articles it lists, text alone for every other one,
persistence of the hybrid parts, older saved models still loading, and the cold-start merge that keeps
articles added after training at their zero-shot rank."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from plugin import Article, STAMPConfig
from plugin.intent import ContentSTAMP, ContentSTAMPConfig
from plugin.rules import Candidate, merge_cold_start


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _hybrid(**kw) -> ContentSTAMP:
    torch.manual_seed(0)
    cfg = ContentSTAMPConfig(input_dim=12, stamp=STAMPConfig(dim=6), item_keys=("a", "b"), catalogue=("a", "b", "c"), **kw)
    model = ContentSTAMP(cfg)
    with torch.no_grad():  # rows of a and b; row 0 stays the "no learned vector" zero
        model.item_vectors.weight[1:].normal_()
        model.next_vectors.weight[1:].normal_()
    return model.eval()


ITEMS = _unit(np.random.RandomState(3).randn(3, 12))


def test_learned_vectors_change_only_the_articles_they_belong_to():
    model = _hybrid()
    text_only = model.intent(ITEMS, ["c", None, "new"]).vector
    assert np.allclose(text_only, model.intent(ITEMS).vector)  # unlisted ids and no ids read the same: text alone
    assert not np.allclose(text_only, model.intent(ITEMS, ["a", None, "new"]).vector)  # a read earlier
    assert not np.allclose(text_only, model.intent(ITEMS, [None, None, "b"]).vector)  # b as the last click
    with pytest.raises(Exception, match="3 session items"):
        model.intent(ITEMS, ["a"])


def test_trained_intent_carries_the_zero_shot_intent_for_new_articles():
    intent = _hybrid().intent(ITEMS, ["a", "b", "c"])
    zero = ContentSTAMP.zero_shot(12, temperature=2.0).intent(ITEMS)
    np.testing.assert_allclose(intent.cold_vector, zero.vector, atol=1e-5)
    assert intent.catalogue == frozenset({"a", "b", "c"})
    assert ContentSTAMP.zero_shot(12).intent(ITEMS).cold_vector is None  # zero-shot ranks everything itself


def test_hybrid_save_load_roundtrip(tmp_path):
    model = _hybrid()
    model.save(tmp_path)
    loaded = ContentSTAMP.load(tmp_path)
    assert loaded.config == model.config
    for keys in (["a", "b", "c"], [None, "zzz", "b"]):
        np.testing.assert_allclose(model.intent(ITEMS, keys).vector, loaded.intent(ITEMS, keys).vector, atol=1e-6)


def test_a_model_saved_before_the_hybrid_still_loads(tmp_path):
    torch.manual_seed(1)
    old = ContentSTAMP(ContentSTAMPConfig(input_dim=12, stamp=STAMPConfig(dim=6))).eval()
    old.save(tmp_path)
    meta = json.loads((tmp_path / "intent_model.json").read_text())
    for key in ("item_keys", "catalogue", "zero_shot_temperature"):
        del meta["config"][key]  # the JSON an older version wrote
    (tmp_path / "intent_model.json").write_text(json.dumps(meta))
    loaded = ContentSTAMP.load(tmp_path)
    np.testing.assert_allclose(old.intent(ITEMS).vector, loaded.intent(ITEMS, ["a", "b", "c"]).vector, atol=1e-6)
    assert loaded.intent(ITEMS).cold_vector is None


def _cands(pairs):
    return [Candidate(Article(a, a), s, s) for a, s in pairs]


def test_cold_start_merge_puts_new_articles_at_their_zero_shot_rank():
    trained = _cands([("k1", 0.9), ("new1", 0.85), ("k2", 0.8), ("k3", 0.7), ("k4", 0.6)])
    zero = _cands([("k3", 0.95), ("new2", 0.9), ("k1", 0.8), ("new1", 0.5), ("k2", 0.4), ("k4", 0.3), ("new3", 0.2)])
    merged = [c.article.id for c in merge_cold_start(trained, zero, {"k1", "k2", "k3", "k4"})]
    # new2 is 2nd for zero-shot, new1 4th: they get those places; the trained order fills the others.
    assert merged[:6] == ["k1", "new2", "k2", "new1", "k3", "k4"]
    assert merged[-1] == "new3"  # below every trained candidate, as far down as zero-shot put it
    scores = [c.score for c in merge_cold_start(trained, zero, {"k1", "k2", "k3", "k4"})]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)  # MMR keeps the order
    assert [c.article.id for c in merge_cold_start(trained, zero, {"k1", "k2", "k3", "k4", "new1", "new2", "new3"})] == [
        "k1", "new1", "k2", "k3", "k4"]  # nothing new: the trained ranking as it was
