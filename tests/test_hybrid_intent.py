"""The hybrid content STAMP: learned vectors only for the articles it lists, text alone for every other one,
persistence of the hybrid parts, older saved models still loading, and the cold-start merge that keeps
articles added after training at their zero-shot rank."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from plugin import Article, HashingEncoder, SessionRecommender, STAMPConfig, SuggestSettings
from plugin.intent import ZERO_SHOT_TEMPERATURE, ContentSTAMP, ContentSTAMPConfig
from plugin.rules import Candidate, merge_cold_start


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _hybrid(**kw) -> ContentSTAMP:
    torch.manual_seed(0)
    cfg = ContentSTAMPConfig(
        input_dim=12, stamp=STAMPConfig(dim=6), item_keys=("a", "b"), catalogue=("a", "b", "c"), **kw
    )
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
    zero = ContentSTAMP.zero_shot(12, temperature=ZERO_SHOT_TEMPERATURE).intent(ITEMS)  # the config default
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
    assert [
        c.article.id for c in merge_cold_start(trained, zero, {"k1", "k2", "k3", "k4", "new1", "new2", "new3"})
    ] == ["k1", "new1", "k2", "k3", "k4"]  # nothing new: the trained ranking as it was


# --- learned candidate vectors (output side) and how the recommender serves them ---------------------------------


def _with_outputs(plain: bool = False) -> ContentSTAMP:
    torch.manual_seed(0)
    cfg = ContentSTAMPConfig(
        input_dim=12,
        stamp=STAMPConfig(dim=6),
        item_keys=("a", "b"),
        catalogue=("a", "b", "c"),
        output_vectors=True,
        plain_scoring=plain,
    )
    model = ContentSTAMP(cfg)
    with torch.no_grad():
        model.out_vectors.weight[1:].normal_()
    return model.eval()


def test_learned_candidate_scores_are_the_intent_against_the_output_vectors():
    model = _with_outputs()
    intent = model.intent(ITEMS, ["a", "c", "b"])
    assert intent.learned_ids == ("a", "b")
    expected = model.out_vectors.weight[1:].detach().numpy() @ intent.vector  # (2,)
    np.testing.assert_allclose(intent.learned_scores, expected, atol=1e-5)
    # the candidate table the trainer scores on: e_a + u_a for learned rows, e_a alone for row 0
    table = torch.from_numpy(_unit(np.random.RandomState(4).randn(3, 12)))
    cands = model.candidate_vectors(table, torch.tensor([1, 0, 2]))
    torch.testing.assert_close(cands[1], table[1])
    torch.testing.assert_close(cands[2], table[2] + model.out_vectors.weight[2])
    assert _hybrid().intent(ITEMS, ["a", "b", "c"]).learned_scores is None  # no output vectors: text alone


def test_output_vectors_and_scoring_survive_save_load(tmp_path):
    model = _with_outputs(plain=True)
    model.save(tmp_path)
    loaded = ContentSTAMP.load(tmp_path)
    assert loaded.config.output_vectors and loaded.config.plain_scoring
    np.testing.assert_allclose(
        model.intent(ITEMS, ["a", "b", "c"]).learned_scores,
        loaded.intent(ITEMS, ["a", "b", "c"]).learned_scores,
        atol=1e-6,
    )


TOPICS = {
    "json": "json serialization encode decode",
    "http": "http client request response",
    "sql": "sqlite database query table",
    "tk": "tkinter widget window button",
}


def _recommender(model) -> SessionRecommender:
    arts = [
        Article(f"{t}{i}", f"{t} {i}", f"https://kb.test/{t}{i}", f"{text} part {i} {text}")
        for t, text in TOPICS.items()
        for i in range(3)
    ]
    return SessionRecommender.build(
        arts,
        encoder=HashingEncoder(64),
        progress=False,
        intent_model=model,
        settings=SuggestSettings(min_score=None, mmr_lambda=1.0),
    )


def _learned_model(keys: tuple[str, ...], catalogue: tuple[str, ...], plain: bool) -> ContentSTAMP:
    torch.manual_seed(0)
    cfg = ContentSTAMPConfig(
        input_dim=64,
        stamp=STAMPConfig(dim=8),
        item_keys=keys,
        catalogue=catalogue,
        output_vectors=True,
        plain_scoring=plain,
    )
    return ContentSTAMP(cfg).eval()


@pytest.mark.parametrize("plain", [False, True])
def test_a_learned_candidate_vector_brings_a_far_next_page_to_the_top(plain):
    rec = _recommender(None)
    ids = tuple(rec.index.ids())
    model = _learned_model(ids, ids, plain)  # every article has a learned row, all zero so far: text alone
    rec.intent_model = model
    before = [s.article.id for s in rec.suggest_for(["json0"], k=12)]
    target = before[-1]  # the page the text ranks last
    vec = model.intent(rec.index.vectors(["json0"]), ["json0"]).vector
    with torch.no_grad():  # readers of this session go to the target: its learned half points at the intent
        model.out_vectors.weight[ids.index(target) + 1] = torch.from_numpy(3.0 * vec)
    after = rec.suggest_for(["json0"], k=12)
    assert after[0].article.id == target
    assert [s.article.id for s in after[1:]] == [a for a in before if a != target]  # nobody else moved
    if plain:  # the score trained: plain cosine to the text vector plus the learned part
        np.testing.assert_allclose(after[0].score, float(rec.index.vectors([target])[0] @ vec) + 3.0, atol=1e-4)


def test_plain_scoring_ranks_exactly_as_trained_and_articles_added_later_keep_their_zero_shot_rank():
    rec = _recommender(None)
    catalogue = tuple(a for a in rec.index.ids() if a != "sql1")  # sql1 came after training
    model = _learned_model(("json0", "sql0"), catalogue, plain=True)
    with torch.no_grad():
        model.out_vectors.weight[1:].normal_(std=0.5)
    rec.intent_model = model
    got = [s.article.id for s in rec.suggest_for(["json0", "sql2"], k=11)]
    intent = model.intent(rec.index.vectors(["json0", "sql2"]), ["json0", "sql2"])
    learned = dict(zip(intent.learned_ids, intent.learned_scores))
    unread = [a for a in catalogue if a not in ("json0", "sql2")]
    whole = {a: float(rec.index.vectors([a])[0] @ intent.vector) + learned.get(a, 0.0) for a in unread}
    zero = [s.article.id for s in _recommender(None).suggest_for(["json0", "sql2"], k=11)]
    assert got.index("sql1") == zero.index("sql1")  # the new article: where zero-shot (with its rules) puts it
    assert [a for a in got if a != "sql1"] == sorted(unread, key=lambda a: -whole[a])


def test_cold_start_merge_keeps_protected_slots_and_places_the_rest_at_zero_shot_rank():
    trained = _cands([("k1", 0.9), ("k2", 0.8), ("k3", 0.7), ("k4", 0.6)])
    zero = _cands([("new1", 0.95), ("k3", 0.9), ("new2", 0.8), ("k1", 0.5)])
    catalogue = {"k1", "k2", "k3", "k4"}
    plain = [c.article.id for c in merge_cold_start(trained, zero, catalogue)]
    assert plain == ["new1", "k1", "new2", "k2", "k3", "k4"]  # zero-shot's places 1 and 3
    # the log is confident about k1 and k2: they keep places 1 and 2; the new articles come right after them
    guarded = merge_cold_start(trained, zero, catalogue, protected={"k1", "k2"})
    assert [c.article.id for c in guarded] == ["k1", "k2", "new1", "new2", "k3", "k4"]
    scores = [c.score for c in guarded]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)  # MMR keeps the order
    # only a leading run is protected: k2 behind an unprotected k1 does not hold new1 back
    assert [c.article.id for c in merge_cold_start(trained, zero, catalogue, protected={"k2"})] == plain
    # a new article zero-shot ranks below the protected run takes its zero-shot rank
    late = _cands([("k3", 0.9), ("k1", 0.8), ("k2", 0.7), ("new1", 0.6)])
    assert [c.article.id for c in merge_cold_start(trained, late, catalogue, protected={"k1"})] == [
        "k1",
        "k2",
        "k3",
        "new1",
        "k4",
    ]
