"""The transition component of the trained intent (plugin/transitions.py): its maths, its persistence beside
the intent model, the blend chosen on train-intent's validation split (never on what it was fitted on), one CLI
call that trains and installs it, hot reload picking it up, and articles without clicks (new ones included)
still suggested as before."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from plugin import Article, HashingEncoder, SessionRecommender, SuggestSettings
from plugin.cli import main as plugin_main
from plugin.content_training import (
    ContentTrainConfig,
    _fold_mrr,
    _plain_mrr,
    _served_mrr,
    _validation_steps,
    choose_transitions,
    train_content_stamp,
    with_scoring,
)
from plugin.errors import ConfigError, IndexFormatError
from plugin.event_log import EventLog
from plugin.events import make_event
from plugin.intent import ContentSTAMP
from plugin.persistence import is_trained
from plugin.reload import ReloadingRecommender
from plugin.transitions import ItemTransitions, TransitionConfig

TOPICS = ("json serialization", "http networking", "sqlite database", "turtle graphics", "unit testing")
PAGES = 6
PURE = SuggestSettings(min_score=None, mmr_lambda=1.0)


def _articles() -> list[Article]:
    # A page-specific word repeated p + 1 times keeps the pages of a topic from tying in cosine.
    return [
        Article(
            f"t{t}p{p}",
            f"{topic.title()} part {p}",
            f"https://kb.test/t{t}p{p}",
            f"{topic} {topic} guide chapter " + f"t{t}p{p} " * (p + 1) + " ".join(f"{topic} notes" for _ in range(3)),
        )
        for t, topic in enumerate(TOPICS)
        for p in range(PAGES)
    ]


def _cross(i: int) -> list[str]:
    """Readers go on to the same part of the next topic: a path that the text cannot see."""
    t, p = divmod(i, PAGES)
    return [f"t{(t + s) % len(TOPICS)}p{p}" for s in range(3)]


def _within(i: int) -> list[str]:
    """Readers stay in the topic: the path the text sees."""
    t, p = divmod(i, PAGES)
    return [f"t{t}p{(p + s) % PAGES}" for s in range(3)]


def _content_model(rec: SessionRecommender) -> ContentSTAMP:
    """A 'trained' content model that reads like the zero-shot intent (identity projection, similarity
    attention), over the index's catalogue, served plain: what the transition blend is added to."""
    torch.manual_seed(0)
    zero = ContentSTAMP.zero_shot(rec.index.dim)
    model = ContentSTAMP(replace(zero.config, zero_shot=False, catalogue=tuple(rec.index.ids()), plain_scoring=True))
    model.load_state_dict(zero.state_dict())
    return model.eval()


@pytest.fixture(scope="module")
def rec() -> SessionRecommender:
    torch.set_num_threads(1)
    return SessionRecommender.build(_articles(), encoder=HashingEncoder(256), progress=False, settings=PURE)


# ------------------------------------------------------------------ the maths


def test_probabilities_are_smoothed_counts_of_consecutive_clicks():
    t = ItemTransitions.fit([["a", "b", "c"], ["a", "b"], ["a", "c"], ["b", "b", "a"]])  # alpha 1
    ids, scores = t.scores(["a"])
    assert dict(zip(ids, scores.tolist())) == pytest.approx({"b": 2 / 4, "c": 1 / 4})  # a: 3 transitions + alpha
    # b -> b is not a transition; b's row is {c: 1/3, a: 1/3}. decay 0.5: the page before the last speaks at half.
    blend = t.with_config(TransitionConfig(weight=2.0, decay=0.5))
    ids, scores = blend.scores(["zzz", "b", "a"])  # an unknown page adds nothing
    assert dict(zip(ids, scores.tolist())) == pytest.approx({"a": 2 * 0.5 / 3, "b": 2 * 0.5, "c": 2 * (0.25 + 0.5 / 3)})
    assert blend.scores(["zzz", None]) == ([], pytest.approx(np.zeros(0)))
    assert t.with_config(TransitionConfig(weight=0.0)).scores(["a"])[0] == []
    assert ItemTransitions.fit([]).scores(["a"])[0] == []


def test_the_popularity_prior_is_the_log_scaled_clicks_of_the_most_read(monkeypatch):
    sessions = [["a", "b"], ["a", "b"], ["c", "b"]]  # clicks: b 3, a 2, c 1
    t = ItemTransitions.fit(sessions, TransitionConfig(weight=0.0, popularity=2.0))
    ids, scores = t.scores(["zzz"])  # a page the counts do not know: the prior alone speaks
    expected = {"b": 2.0, "a": 2.0 * np.log(3) / np.log(4), "c": 2.0 * np.log(2) / np.log(4)}
    assert dict(zip(ids, scores.tolist())) == pytest.approx(expected)
    # with counts too: weight * T + popularity * pop, over the union of the articles either speaks for
    both = t.with_config(TransitionConfig(weight=1.0, popularity=2.0))
    ids, scores = both.scores(["a"])
    assert dict(zip(ids, scores.tolist())) == pytest.approx({**expected, "b": 2.0 + 2 / 3})
    monkeypatch.setattr("plugin.transitions.MAX_POPULAR", 2)  # only the most read carry it
    capped = ItemTransitions.fit(sessions, TransitionConfig(weight=0.0, popularity=2.0))
    assert sorted(capped.scores(["zzz"])[0]) == ["a", "b"]


@pytest.mark.parametrize(
    "bad", [{"weight": -1.0}, {"decay": 1.0}, {"history": 0}, {"alpha": -0.5}, {"popularity": -0.1}]
)
def test_a_bad_blend_setting_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        TransitionConfig(**bad)


def test_saved_and_loaded_with_the_intent_model_and_a_damaged_file_is_refused(tmp_path, rec):
    model = _content_model(rec)
    model.transitions = ItemTransitions.fit([_cross(i) for i in range(30)], TransitionConfig(weight=3.0, decay=0.3))
    rec2 = SessionRecommender(rec.kb, rec.encoder, rec.index, intent_model=model, settings=PURE)
    version = rec2.save(tmp_path / "ix")
    assert json.loads((version / "transitions.json").read_text())["config"]["weight"] == 3.0
    with np.load(version / "transitions.npz", allow_pickle=False) as z:  # plain arrays, no pickled objects
        assert sorted(z.files) == ["clicks", "data", "indices", "indptr"]
    loaded = SessionRecommender.load(tmp_path / "ix", encoder=rec.encoder.inner)
    t = loaded.intent_model.transitions
    assert t is not None and t.config == model.transitions.config and t.keys == model.transitions.keys
    np.testing.assert_array_equal(t.data, model.transitions.data)
    np.testing.assert_array_equal(t.clicks, model.transitions.clicks)
    viewed = ["t0p0", "t0p1"]
    assert [s.article.id for s in loaded.suggest_for(viewed, k=5)] == [
        s.article.id for s in rec2.suggest_for(viewed, k=5)
    ]

    # Saved again without the component: it is gone from the folder, not left behind to be loaded.
    model.transitions = None
    model.save(version)
    assert ContentSTAMP.load(version).transitions is None

    model.transitions = loaded.intent_model.transitions
    model.save(tmp_path / "flat")
    (tmp_path / "flat" / "transitions.npz").write_bytes(b"not the arrays the metadata names")
    with pytest.raises(IndexFormatError, match="sha256"):
        ContentSTAMP.load(tmp_path / "flat")


def test_the_config_and_click_counts_round_trip_and_an_older_file_reads_as_no_clicks(tmp_path):
    sessions = [_cross(i) for i in range(30)]
    t = ItemTransitions.fit(sessions, TransitionConfig(weight=4.0, decay=0.3, popularity=0.8))
    t.save(tmp_path / "new")
    back = ItemTransitions.load(tmp_path / "new")
    assert back.config == t.config and back.keys == t.keys
    np.testing.assert_array_equal(back.clicks, t.clicks)
    session = ["t0p0", "t1p0"]
    assert back.scores(session)[0] == t.scores(session)[0]
    np.testing.assert_allclose(back.scores(session)[1], t.scores(session)[1])

    # a folder saved before the click counts were kept: its arrays without them, its config without popularity
    old = tmp_path / "old"
    old.mkdir()
    buf = io.BytesIO()
    np.savez(buf, indptr=t.indptr, indices=t.indices, data=t.data)
    (old / "transitions.npz").write_bytes(buf.getvalue())
    config = {"weight": 4.0, "decay": 0.3, "history": 3, "alpha": 1.0}
    meta = {"type": "item-transitions", "config": config, "keys": list(t.keys)}
    (old / "transitions.json").write_text(json.dumps({**meta, "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}))
    legacy = ItemTransitions.load(old)
    assert legacy.config.popularity == 0.0 and not legacy.clicks.any()
    plain = t.with_config(TransitionConfig(weight=4.0, decay=0.3))
    assert legacy.scores(session)[0] == plain.scores(session)[0]


def test_with_the_counts_first_every_page_leads_to_its_markov_successor(rec):
    """The grid's heaviest weight is the Markov-1 limit: for every page with counts the hybrid's first
    suggestion is the page its readers went to most, whatever the text says; the content orders the rest."""
    sessions = [_cross(i) for i in range(len(TOPICS) * PAGES)]  # t p -> t+1 p -> t+2 p
    model = _content_model(rec)
    alone = [
        s.article.id
        for s in SessionRecommender(rec.kb, rec.encoder, rec.index, intent_model=model, settings=PURE).suggest_for(
            ["t0p0"], k=5
        )
    ]
    model.transitions = ItemTransitions.fit(sessions, TransitionConfig(weight=64.0))
    served = SessionRecommender(rec.kb, rec.encoder, rec.index, intent_model=model, settings=PURE)
    counts = ItemTransitions.fit(sessions)
    for page in rec.index.ids():
        ids, probs = counts.scores([page])
        if not ids:
            continue
        markov = ids[int(np.argmax(probs))]
        assert [s.article.id for s in served.suggest_for([page], k=1)] == [markov]
    top = [s.article.id for s in served.suggest_for(["t0p0"], k=5)]
    assert (
        alone[0] != "t1p0" and top[0] == "t1p0" and top[1:] == [a for a in alone if a != "t1p0"][:4]
    )  # the text orders the others


def test_a_page_without_counts_is_ranked_by_the_content_alone(rec):
    """Back-off: a session whose pages the counts do not know gets no transition part; without the popularity
    prior its ranking is exactly the content model's."""
    model = _content_model(rec)
    alone = SessionRecommender(rec.kb, rec.encoder, rec.index, intent_model=model, settings=PURE)
    expected = [s.article.id for s in alone.suggest_for(["t4p5"], k=8)]
    blended = _content_model(rec)
    blended.transitions = ItemTransitions.fit(
        [_cross(i) for i in range(6)], TransitionConfig(weight=8.0)
    )  # topic 0 only
    assert blended.transitions.scores(["t4p5"]) == ([], pytest.approx(np.zeros(0)))
    served = SessionRecommender(rec.kb, rec.encoder, rec.index, intent_model=blended, settings=PURE)
    assert [s.article.id for s in served.suggest_for(["t4p5"], k=8)] == expected


def test_the_intent_adds_the_transition_scores_to_the_learned_ones(rec):
    model = _content_model(rec)
    items = rec.index.vectors(["t0p0"])
    assert model.intent(items, ["t0p0"]).learned_scores is None  # no learned part: every article reads as text
    model.transitions = ItemTransitions.fit([["t0p0", "t1p0"]] * 3, TransitionConfig(weight=2.0))
    intent = model.intent(items, ["t0p0"])
    assert intent.learned_ids == ("t1p0",) and intent.learned_scores.tolist() == pytest.approx([2.0 * 3 / 4])


# ------------------------------------------------------------------ chosen on validation


def test_the_blend_is_chosen_on_the_held_out_sessions(rec):
    sessions = [_cross(i % (len(TOPICS) * PAGES)) for i in range(100)]  # 90 fitted, the last 10 held out
    model = _content_model(rec)
    served, mrr = choose_transitions(rec, model, sessions)
    assert served.transitions is not None and max(mrr.values()) > mrr["none"] + 0.3, mrr
    assert served.config.plain_scoring and model.transitions is None  # the model handed in is left as it was
    r = SessionRecommender(rec.kb, rec.encoder, rec.index, intent_model=served, settings=PURE)
    assert [s.article.id for s in r.suggest_for(["t0p2"], k=1)] == ["t1p2"]  # the text alone says "t0p…"

    assert choose_transitions(rec, model, sessions, item_model="none")[0].transitions is None
    with pytest.raises(ConfigError, match="Valid item models are: auto, none, markov"):
        choose_transitions(rec, model, sessions, item_model="vsknn-ish")


def test_the_fast_validation_ranks_exactly_as_the_recommender_serves(rec):
    """choose_transitions scores every blend in one pass for a plain-scored model; it must agree with serving
    through the recommender, and the fused path (no shortcut) must run too."""
    n = len(TOPICS) * PAGES
    sessions = [_cross(i % n) for i in range(60)] + [_within(i % n) for i in range(40)]
    model = _content_model(rec)
    counts = ItemTransitions.fit(sessions[:90])
    blends = [counts.with_config(TransitionConfig(weight=w, decay=0.5)) for w in (0.5, 2.0)]
    blends.append(counts.with_config(TransitionConfig(weight=1.0, decay=0.5, popularity=0.3)))
    _, steps = _validation_steps(rec, sessions, ContentTrainConfig(), 1000)
    served = [_served_mrr(rec, model, steps, 10)]
    for blend in blends:
        model.transitions = blend
        served.append(_served_mrr(rec, model, steps, 10))
    model.transitions = None
    assert _plain_mrr(rec.index, model, steps, 10, blends) == pytest.approx(served)
    assert len(set(served)) > 1  # the blends change the ranking, so the agreement says something

    fused, mrr = choose_transitions(rec, with_scoring(model, False), sessions, grid=((0.0, 1.0),))
    assert set(mrr) == {"none", "markov decay=0 weight=1"} and not fused.config.plain_scoring


def test_folds_judge_each_block_by_a_model_and_counts_fitted_on_the_other_blocks(rec):
    """With folds, every block of sessions (by time) is ranked by a content model trained on the others and
    counts fitted on the others, and the MRRs are pooled over all the blocks' steps."""
    n = len(TOPICS) * PAGES
    sessions = [_cross(i % n) for i in range(40)]
    model = _content_model(rec)
    cfg = ContentTrainConfig(epochs=2, dim=8, min_clicks=0)
    configs = [TransitionConfig(weight=4.0), TransitionConfig(weight=1.0, popularity=0.5)]
    pooled = _fold_mrr(rec.index, model, sessions, cfg, configs, 2, False)
    total, steps_seen = np.zeros(3), 0
    for held, rest in ((sessions[:20], sessions[20:]), (sessions[20:], sessions[:20])):
        fold_model, _ = train_content_stamp(rest, rec.index, cfg, progress=False)
        counts = ItemTransitions.fit(rest)
        steps = [(s[:j], s[j]) for s in held for j in range(1, len(s))]
        blends = [counts.with_config(c) for c in configs]
        total += len(steps) * np.array(_plain_mrr(rec.index, with_scoring(fold_model, True), steps, 10, blends))
        steps_seen += len(steps)
    assert pooled == pytest.approx((total / steps_seen).tolist())
    # every block crosses topics the same way: the counts of the other block know it, the text does not
    served, mrr = choose_transitions(rec, model, sessions, cfg, folds=2)
    assert served.transitions is not None and max(mrr.values()) > mrr["none"] + 0.3, mrr
    # too few sessions for the folds asked (10 a fold): the validation split decides, as without folds
    assert choose_transitions(rec, model, sessions, cfg, folds=5)[1] == choose_transitions(rec, model, sessions, cfg)[1]


def test_counts_are_judged_on_sessions_they_were_not_fitted_on(rec):
    """Training sessions cross topics, the held-out ones stay in the topic: counts fitted on the held-out
    sessions too would look perfect there; fitted on the training part only, they mislead, so auto leaves them
    out and `markov` forces them in."""
    n = len(TOPICS) * PAGES
    sessions = [_cross(i % n) for i in range(90)] + [_within(i % n) for i in range(10)]
    model = _content_model(rec)
    served, mrr = choose_transitions(rec, model, sessions)
    blends = [v for k, v in mrr.items() if k != "none"]
    assert served.transitions is None and max(blends) <= mrr["none"] and min(blends) < mrr["none"] - 0.1, mrr
    forced, _ = choose_transitions(rec, model, sessions, item_model="markov")
    assert forced.transitions is not None


def test_an_article_without_clicks_keeps_its_place(rec):
    """Transition counts only speak for articles readers went to: a new article (added after training) keeps
    its zero-shot rank, and an article of the catalogue nobody clicked is still ranked by its text."""
    model = _content_model(rec)
    model.transitions = ItemTransitions.fit([_cross(i) for i in range(30)], TransitionConfig(weight=4.0))
    new = Article(
        "t0p9",
        "Json Serialization part 9",
        "https://kb.test/t0p9",
        "json serialization json serialization guide chapter " + " ".join("json serialization notes" for _ in range(3)),
    )
    zero = SessionRecommender.build([*_articles(), new], encoder=HashingEncoder(256), progress=False, settings=PURE)
    trained = SessionRecommender.build(
        [*_articles()], encoder=HashingEncoder(256), progress=False, settings=PURE, intent_model=model
    )
    trained.upsert_articles([new])
    viewed = ["t0p0", "t0p1"]
    zero_top = [s.article.id for s in zero.suggest_for(viewed, k=5)]
    trained_top = [s.article.id for s in trained.suggest_for(viewed, k=5)]
    assert "t0p9" in zero_top and trained_top.index("t0p9") == zero_top.index("t0p9")
    known = [a for a in trained_top if a != "t0p9"]
    # first of the others: what the counts say readers of t0p1 open next, where the text alone says otherwise
    assert known[0] == "t1p1" != [a for a in zero_top if a != "t0p9"][0]
    assert any(a.startswith("t0p") for a in known), trained_top  # pages the counts say nothing for: by their text


# ------------------------------------------------------------------ one CLI call, hot reload


def test_train_intent_installs_the_component_and_a_running_server_picks_it_up(tmp_path, capsys):
    enc = HashingEncoder(256)
    d = tmp_path / "ix"
    SessionRecommender.build(_articles(), encoder=enc, progress=False, settings=PURE).save(d)
    handle = ReloadingRecommender(d, encoder=enc, check_interval=None, background=False)
    log = EventLog(tmp_path / "events.jsonl")
    n = len(TOPICS) * PAGES
    for s in range(120):
        for j, aid in enumerate(_cross(s % n)):
            log.append(make_event(f"visit-{s}", "page_view", article_id=aid, ts=float(10 * s + j)))
    before = [s.article.id for s in handle.suggest_for(["t2p3"], k=1)]

    assert (
        plugin_main(
            [
                "train-intent",
                "--index",
                str(d),
                "--log",
                str(log.path),
                "--epochs",
                "2",
                "--dim",
                "16",
                "--min-clicks",
                "0",
                "--item-model",
                "markov",
                "--force",
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "serving with the transition counts" in out and "markov decay=0 weight=0.5" in out
    assert handle.check()  # the new version, intent and transition counts together, is swapped in
    assert is_trained(handle.intent_model) and handle.intent_model.transitions is not None
    after = [s.article.id for s in handle.suggest_for(["t2p3"], k=1)]
    assert before != ["t3p3"] and after == ["t3p3"]
