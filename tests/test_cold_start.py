"""Articles added after training scored on the trained scale (plugin/cold_start.py): the calibration's fit
recovers a known conditional logit, the recommender serves it (a relevant new article is suggested at the place
its calibrated score gives it; the known articles' ranking is untouched when no new article is relevant), and
the policy is saved with the model and read back by a reload."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plugin import Article, ConfigError, HashingEncoder, SessionRecommender, STAMPConfig, SuggestSettings
from plugin.cold_start import CalibrationStep, ColdStartCalibration, fit_calibration, zero_shot_features
from plugin.content_training import (
    ContentTrainConfig,
    _choose_placement,
    _cold_start_mrr,
    _keep_zero_shot_quality,
    _rebuilt,
    _within_depth,
    choose_cold_start,
)
from plugin.intent import ContentSTAMP, ContentSTAMPConfig
from plugin.persistence import is_trained
from plugin.transitions import ItemTransitions, TransitionConfig
from plugin.zero_shot import ZeroShotIntent


def _steps(theta: np.ndarray, n: int, seed: int) -> list[CalibrationStep]:
    """Steps drawn from the conditional logit the calibration assumes, with parameters theta = (scale, w1, w2, b)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        known = rng.normal(0.0, 0.3, 20)  # (K,) served scores
        ranks = np.sort(rng.choice(10, 3, replace=False))  # (H,) zero-shot ranks of the new ones
        zs = rng.uniform(0.0, 1.0, 3)  # (H,) zero-shot scores, drawn apart from the ranks so both are identified
        logits = np.concatenate([theta[0] * known, zero_shot_features(zs, ranks) @ theta[1:3] + theta[3]])
        p = np.exp(logits - logits.max())
        out.append(CalibrationStep(known, zs, ranks, int(rng.choice(len(p), p=p / p.sum()))))
    return out


def test_the_fit_recovers_a_known_conditional_logit():
    theta = np.array([8.0, 3.0, -1.5, -2.0])  # scale, w1, w2, b
    cal, scale = fit_calibration(_steps(theta, 4000, seed=0))
    assert scale == pytest.approx(8.0, rel=0.1)
    np.testing.assert_allclose(cal.as_tuple(), theta[1:] / theta[0], atol=0.1)


def test_the_fit_refuses_steps_that_cannot_calibrate():
    one_kind = [CalibrationStep(np.array([0.1, 0.2]), np.array([0.3]), np.array([0]), 0)] * 5  # never into a new one
    with pytest.raises(ConfigError, match="known and into new"):
        fit_calibration(one_kind)


def test_replayed_mrr_of_both_ways_on_a_hand_made_step():
    # known scores 0.9 > 0.5 > 0.1; one new article, first in the zero-shot list with score 0.8
    step = CalibrationStep(np.array([0.9, 0.5, 0.1]), np.array([0.8]), np.array([0]), target=3)  # into the new one
    cal = ColdStartCalibration(1.0, 0.0, -0.1)  # new score 0.7: second, between 0.9 and 0.5
    got = _cold_start_mrr([step], cal, cutoff=10)
    assert (got["score"], got["rank"]) == pytest.approx((1 / 2, 1.0))  # zero-shot shows it first
    into_known = CalibrationStep(step.known, step.zero_scores, step.zero_ranks, target=1)  # into the known 0.5
    assert _cold_start_mrr([into_known], cal, cutoff=10)["score"] == pytest.approx(1 / 3)
    assert _cold_start_mrr([into_known], cal, cutoff=10)["rank"] == pytest.approx(1 / 3)  # pushed down by the new
    missed = CalibrationStep(step.known, step.zero_scores, step.zero_ranks, target=-1)  # zero-shot did not show it
    assert _cold_start_mrr([missed], cal, cutoff=10) == {
        k: 0.0 for k in ("score", "rank", "score (into new)", "rank (into new)", "rank HR (into new)")
    }


TOPICS = {
    "json": "json serialization encode decode",
    "http": "http client request response",
    "sql": "sqlite database query table",
    "tk": "tkinter widget window button",
}


def _recommender() -> SessionRecommender:
    arts = [
        Article(f"{t}{i}", f"{t} {i}", f"https://kb.test/{t}{i}", f"{text} part {i} {text}")
        for t, text in TOPICS.items()
        for i in range(3)
    ]
    return SessionRecommender.build(
        arts, encoder=HashingEncoder(64), progress=False, settings=SuggestSettings(min_score=None, mmr_lambda=1.0)
    )


def _model(catalogue: tuple[str, ...], calibration: tuple[float, ...]) -> ContentSTAMP:
    torch.manual_seed(0)
    keys = tuple(a for a in catalogue if a.endswith("0"))
    cfg = ContentSTAMPConfig(
        input_dim=64,
        stamp=STAMPConfig(dim=8),
        item_keys=keys,
        catalogue=catalogue,
        output_vectors=True,
        plain_scoring=True,
        cold_start="score" if calibration else "rank",
        cold_calibration=calibration,
    )
    model = ContentSTAMP(cfg)
    with torch.no_grad():
        model.out_vectors.weight[1:].normal_(std=0.5)
    return model.eval()


def _known_ranking(rec: SessionRecommender, model: ContentSTAMP, session: list[str]) -> list[tuple[str, float]]:
    """The catalogue's unread articles by their trained score: text cosine + learned part."""
    intent = model.intent(rec.index.vectors(session), session)
    learned = dict(zip(intent.learned_ids, intent.learned_scores))
    unread = [a for a in model.config.catalogue if a not in session]
    whole = {a: float(rec.index.vectors([a])[0] @ intent.vector) + learned.get(a, 0.0) for a in unread}
    return sorted(whole.items(), key=lambda kv: -kv[1])


def _zero_shot(rec: SessionRecommender, session: list[str], k: int) -> list[tuple[str, float]]:
    zero = SessionRecommender(
        rec.kb, rec.encoder, rec.index, intent_model=ZeroShotIntent(64, 0.5), settings=rec.settings
    )
    return [(s.article.id, s.score) for s in zero.suggest_for(session, k=k)]


def test_no_relevant_new_article_leaves_the_known_ranking_unchanged():
    rec = _recommender()
    catalogue = tuple(a for a in rec.index.ids() if not a.startswith("tk"))  # the tkinter pages came later
    model = _model(catalogue, (1.0, 0.0, -0.8))
    rec.intent_model = model
    session = ["json0", "json1"]
    known = _known_ranking(rec, model, session)
    zero = _zero_shot(rec, session, 4)
    assert not any(a.startswith("tk") for a, _ in zero)  # off the session's topic: zero-shot does not show them
    assert [s.article.id for s in rec.suggest_for(session, k=4)] == [a for a, _ in known[:4]]  # exactly as trained


def test_a_relevant_new_article_is_suggested_at_its_calibrated_score():
    rec = _recommender()
    catalogue = tuple(a for a in rec.index.ids() if a != "json2")  # json2 came after training
    cal = ColdStartCalibration(1.0, -0.2, 0.3)
    model = _model(catalogue, cal.as_tuple())
    rec.intent_model = model
    session = ["json0", "json1"]
    zero = [a for a, _ in _zero_shot(rec, session, 4)]
    assert "json2" in zero  # on the session's topic
    r = zero.index("json2")
    expected = cal.scores(np.array([dict(_zero_shot(rec, session, 4))["json2"]]), np.array([r]))[0]
    known = _known_ranking(rec, model, session)
    place = sum(score >= expected for _, score in known)
    assert place < 4  # the calibration puts it among the suggestions
    got = rec.suggest_for(session, k=4)
    assert [s.article.id for s in got] == ([a for a, _ in known[:place]] + ["json2"] + [a for a, _ in known[place:]])[
        :4
    ]
    assert got[place].score == pytest.approx(float(expected), abs=1e-5)
    with torch.no_grad():  # the same model with the rank merge: json2 at its zero-shot place instead
        ranked = ContentSTAMP(ContentSTAMPConfig(**{**model.config.__dict__, "cold_start": "rank"}))
        ranked.load_state_dict(model.state_dict())
    rec.intent_model = ranked.eval()
    assert [s.article.id for s in rec.suggest_for(session, k=4)].index("json2") == r


def test_the_policy_is_saved_with_the_model_and_read_back_by_a_reload(tmp_path):
    rec = _recommender()
    catalogue = tuple(a for a in rec.index.ids() if a != "json2")
    rec.intent_model = _model(catalogue, (0.5, 0.5, 0.3))
    rec.save(tmp_path)
    loaded = SessionRecommender.load(tmp_path, encoder=HashingEncoder(64)).intent_model
    assert is_trained(loaded)
    assert (loaded.config.cold_start, loaded.config.cold_calibration) == ("score", (0.5, 0.5, 0.3))
    assert loaded.intent(rec.index.vectors(["json0"]), ["json0"]).cold_calibration == ColdStartCalibration(
        0.5, 0.5, 0.3
    )


def test_a_bad_policy_is_a_config_error_naming_the_valid_ones():
    with pytest.raises(ConfigError, match="Valid policies are: rank, score"):
        ContentSTAMPConfig(cold_start="slots")
    with pytest.raises(ConfigError, match=r"\(zero_shot_weight, rank_weight, bias\)"):
        ContentSTAMPConfig(cold_start="score", cold_calibration=(1.0,))


def test_choose_cold_start_keeps_the_rank_merge_for_a_model_under_the_rules_fusion():
    rec = _recommender()
    model = _model(tuple(rec.index.ids()), ())
    fused = ContentSTAMP(ContentSTAMPConfig(**{**model.config.__dict__, "plain_scoring": False})).eval()
    sessions = [["json0", "json1", "json2"]] * 20
    out, mrr = choose_cold_start(rec, fused, sessions, ContentTrainConfig())
    assert out is fused and mrr == {}


def test_the_bias_shift_keeps_new_articles_at_zero_shot_quality():
    # zero-shot shows the new article first (score 0.8); the fitted calibration puts it at 0.3, below both known
    into_new = CalibrationStep(np.array([0.9, 0.5]), np.array([0.8]), np.array([0]), target=2)
    into_known = CalibrationStep(np.array([0.9, 0.5]), np.array([0.8]), np.array([0]), target=0)
    cal, mrr = _keep_zero_shot_quality([into_new, into_known], ColdStartCalibration(1.0, 0.0, -0.5), cutoff=10)
    # parity on the step into it needs a score above 0.9 (a tie counts against it): the smallest such shift, +0.65
    assert mrr["bias shift"] == pytest.approx(0.65)
    assert cal.bias == pytest.approx(0.15)
    assert mrr["score (into new)"] == mrr["rank (into new)"] == 1.0


def test_choose_cold_start_as_asked_rank_trains_no_stand_in_and_a_bad_policy_names_the_valid_ones():
    rec = _recommender()
    model = _model(tuple(rec.index.ids()), (1.0, 0.0, 0.0))  # plain scoring, a calibration served
    sessions = [["json0", "json1", "json2"]] * 20
    out, mrr = choose_cold_start(rec, model, sessions, ContentTrainConfig(), policy="rank")
    assert (out.config.cold_start, out.config.cold_calibration, mrr) == ("rank", (), {})
    with pytest.raises(ConfigError, match="Valid policies are: auto, rank, score"):
        choose_cold_start(rec, model, sessions, ContentTrainConfig(), policy="slots")


def test_the_placement_is_the_best_that_keeps_new_articles_at_zero_shot_quality():
    own = {"rank": 0.30, "rank (into new)": 0.14}
    assert _choose_placement({(0.5, 0): own, (5.0, 0): {"rank": 0.31, "rank (into new)": 0.17}}) == (5.0, 0)
    # better overall, but worse into the new articles than the zero-shot intent's own placement: refused
    assert _choose_placement({(0.5, 0): own, (5.0, 2): {"rank": 0.35, "rank (into new)": 0.13}}) == (0.5, 0)
    assert _choose_placement({(0.5, 0): own, (2.0, 0): dict(own), (0.5, 3): dict(own)}) == (0.5, 0)  # first of equals
    # the rank merge alone, without a calibration to compare
    step = CalibrationStep(np.array([0.9, 0.5]), np.array([0.8]), np.array([0]), target=2)
    assert _cold_start_mrr([step], None, cutoff=10) == {"rank": 1.0, "rank (into new)": 1.0, "rank HR (into new)": 1.0}


def test_a_depth_leaves_out_the_new_articles_ranked_below_it():
    # new articles at zero-shot ranks 0 and 1; the step leads to the second one (index 2 + 1)
    step = CalibrationStep(np.array([0.9, 0.5]), np.array([0.8, 0.4]), np.array([0, 1]), target=3)
    assert _within_depth(step, 0) is step
    cut = _within_depth(step, 1)
    assert cut.zero_ranks.tolist() == [0] and cut.zero_scores.tolist() == [0.8] and cut.target == -1
    assert _within_depth(CalibrationStep(step.known, step.zero_scores, step.zero_ranks, target=2), 1).target == 2
    # into the known article second among the known: both new articles go before it, or only the first
    into_known = CalibrationStep(step.known, step.zero_scores, step.zero_ranks, target=1)
    assert _cold_start_mrr([into_known], None, cutoff=10)["rank"] == pytest.approx(1 / 4)
    assert _cold_start_mrr([_within_depth(into_known, 1)], None, cutoff=10)["rank"] == pytest.approx(1 / 3)


def test_the_served_merge_places_new_articles_with_the_models_temperature(tmp_path):
    """`zero_shot_temperature` (chosen by choose_cold_start) is saved with the model, and the served rank merge
    puts each new article where the zero-shot recommender at that temperature ranks it."""
    rec = _recommender()
    catalogue = tuple(a for a in rec.index.ids() if a != "json2")
    session = ["json0", "http0"]
    places = {}
    for tau in (0.5, 20.0):
        zero = SessionRecommender(
            rec.kb, rec.encoder, rec.index, intent_model=ZeroShotIntent(64, tau), settings=rec.settings
        )
        places[tau] = [s.article.id for s in zero.suggest_for(session, k=6)].index("json2")
    assert places[0.5] != places[20.0]  # the session mean and the page read last place it apart
    for tau in (0.5, 20.0):
        rec.intent_model = _rebuilt(_model(catalogue, ()), zero_shot_temperature=tau)
        rec.save(tmp_path / str(tau))
        loaded = SessionRecommender.load(tmp_path / str(tau), encoder=HashingEncoder(64))
        assert loaded.intent_model.config.zero_shot_temperature == tau
        assert [s.article.id for s in loaded.suggest_for(session, k=6)].index("json2") == places[tau]


def test_the_served_merge_shows_new_articles_only_within_the_models_depth(tmp_path):
    rec = _recommender()
    catalogue = tuple(a for a in rec.index.ids() if a != "json2")
    session = ["json0", "http0"]
    model = _rebuilt(_model(catalogue, ()), zero_shot_temperature=0.5)
    rec.intent_model = model
    place = [s.article.id for s in rec.suggest_for(session, k=6)].index("json2")
    assert place == 2  # the zero-shot recommender's rank (test above)
    for depth, shown in ((place + 1, True), (place, False)):
        rec.intent_model = _rebuilt(model, cold_depth=depth)
        rec.save(tmp_path / str(depth))
        loaded = SessionRecommender.load(tmp_path / str(depth), encoder=HashingEncoder(64))
        assert loaded.intent_model.config.cold_depth == depth
        assert ("json2" in [s.article.id for s in loaded.suggest_for(session, k=6)]) == shown
    with pytest.raises(ConfigError, match="cold_depth"):
        ContentSTAMPConfig(cold_depth=-1)


def test_protected_slots_in_the_replayed_rank_merge():
    # known 0.9 > 0.5 > 0.1, the counts sure of the first (T = 0.6); one new article, zero-shot's first
    evidence = np.array([0.6, 0.0, 0.0])
    into_known = CalibrationStep(np.array([0.9, 0.5, 0.1]), np.array([0.8]), np.array([0]), 0, evidence)
    into_new = CalibrationStep(into_known.known, into_known.zero_scores, into_known.zero_ranks, 3, evidence)
    assert _cold_start_mrr([into_known], None, cutoff=10)["rank"] == pytest.approx(1 / 2)  # pushed down
    assert _cold_start_mrr([into_known], None, cutoff=10, protect=0.5)["rank"] == 1.0  # its slot is kept
    assert _cold_start_mrr([into_new], None, cutoff=10, protect=0.5)["rank"] == pytest.approx(1 / 2)  # right after
    assert _cold_start_mrr([into_new], None, cutoff=10, protect=0.7)["rank"] == 1.0  # not confident enough
    # into the known 0.5, behind the protected one: the new article still goes before it
    second = CalibrationStep(into_known.known, into_known.zero_scores, into_known.zero_ranks, 1, evidence)
    assert _cold_start_mrr([second], None, cutoff=10, protect=0.5)["rank"] == pytest.approx(1 / 3)
    # a new article zero-shot ranks below the protected run keeps its zero-shot rank
    late = CalibrationStep(into_known.known, into_known.zero_scores, np.array([2]), 3, evidence)
    assert _cold_start_mrr([late], None, cutoff=10, protect=0.5)["rank"] == pytest.approx(1 / 3)
    # the depth cut keeps the evidence
    assert _within_depth(late, 1).evidence is evidence


def test_the_placement_floor_holds_the_hit_rate_into_new_articles_too():
    own = {"rank": 0.30, "rank (into new)": 0.14, "rank HR (into new)": 0.30}
    better_mrr_fewer_hits = {"rank": 0.33, "rank (into new)": 0.15, "rank HR (into new)": 0.28}
    assert _choose_placement({(0.5, 0, 0.0): own, (2.0, 0, 0.2): better_mrr_fewer_hits}) == (0.5, 0, 0.0)
    kept = {"rank": 0.32, "rank (into new)": 0.14, "rank HR (into new)": 0.30}
    assert _choose_placement({(0.5, 0, 0.0): own, (2.0, 0, 0.2): kept}) == (2.0, 0, 0.2)


def test_the_served_merge_keeps_the_successors_the_log_is_sure_of_above_a_new_article(tmp_path):
    """`cold_protect` is saved with the model; served, the known successors whose transition probability from the
    session reaches it keep the top places, and a new article zero-shot ranks first comes right after them."""
    rec = _recommender()
    catalogue = tuple(a for a in rec.index.ids() if a != "json2")  # json2 came after training
    counts = ItemTransitions.fit([["json0", "sql1"], ["json0", "tk2"]] * 10, TransitionConfig(weight=4.0))
    session = ["json0"]
    assert _zero_shot(rec, session, 4)[0][0] == "json2"  # on the session's topic: zero-shot's first
    served = {}
    for protect in (0.0, 0.3):
        model = _rebuilt(_model(catalogue, ()), zero_shot_temperature=0.5, cold_protect=protect)
        model.transitions = counts  # T(sql1 | json0) = T(tk2 | json0) = 10 / 21
        rec.intent_model = model
        rec.save(tmp_path / str(protect))
        loaded = SessionRecommender.load(tmp_path / str(protect), encoder=HashingEncoder(64))
        assert loaded.intent_model.config.cold_protect == protect
        served[protect] = [s.article.id for s in loaded.suggest_for(session, k=4)]
    assert served[0.0][0] == "json2"  # the plain rank merge: zero-shot's place
    assert set(served[0.3][:2]) == {"sql1", "tk2"} and served[0.3][2] == "json2"
    assert [a for a in served[0.3] if a != "json2"] == [a for a in served[0.0] if a != "json2"]  # known order kept
    # no page the counts are sure of after the session: nothing is protected, json2 keeps zero-shot's place
    rec.intent_model = _rebuilt(_model(catalogue, ()), zero_shot_temperature=0.5, cold_protect=0.3)
    rec.intent_model.transitions = counts
    assert [s.article.id for s in rec.suggest_for(["json0", "json1"], k=4)][0] == "json2"
    with pytest.raises(ConfigError, match="cold_protect"):
        ContentSTAMPConfig(cold_protect=-0.1)
