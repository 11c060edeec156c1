"""Training the content STAMP on logged sessions: it learns a navigation pattern that text similarity alone
cannot see, beats the zero-shot model on held-out sessions, and is picked up by SessionRecommender.load."""

from __future__ import annotations

import random

import pytest
import torch

from plugin import DataFormatError, SessionRecommender
from plugin.content_training import ContentTrainConfig, train_content_stamp
from plugin.event_log import click_sessions
from plugin.events import make_event
from plugin.persistence import is_trained

# Visitors hop across topics in a fixed pattern (e.g. JSON docs -> HTTP client docs).
NEXT = {
    "ser-json": "net-http",
    "net-http": "ser-pickle",
    "ser-pickle": "net-socket",
    "net-socket": "ser-shelve",
    "ser-shelve": "net-url",
    "net-url": "ser-marshal",
    "ser-marshal": "net-ssl",
    "net-ssl": "ser-csv",
    "ser-csv": "misc-turtle",
    "misc-turtle": "ser-json",
}


def _logged_events(n_sessions=240, seed=0):
    rng = random.Random(seed)
    events = []
    for s in range(n_sessions):
        cur = rng.choice(sorted(NEXT))
        for step in range(rng.randint(2, 5)):
            events.append(make_event(f"s{s}", "article_open", article_id=cur, ts=s * 100.0 + step))
            cur = NEXT[cur]
    return events


def sessions_from_events(events, known=None):
    return [list(s.items) for s in click_sessions(events, known=known)]


def test_click_sessions_orders_filters_and_collapses():
    evs = [
        make_event("b", "article_open", article_id="x", ts=5),
        make_event("a", "page_view", article_id="y", ts=1),
        make_event("a", "page_view", article_id="y", ts=2),
        make_event("a", "search", query="q", ts=3),
        make_event("a", "article_open", article_id="z", ts=4),
        make_event("b", "article_open", article_id="w", ts=6),
        make_event("c", "article_open", article_id="x", ts=7),
    ]
    assert sessions_from_events(evs) == [["y", "z"], ["x", "w"]]
    assert sessions_from_events(evs, known={"x", "y"}) == []


def test_trained_model_learns_the_pattern_and_serves(rec, tmp_path, fake_encoder):
    sessions = sessions_from_events(_logged_events())
    model, report = train_content_stamp(sessions, rec.index, ContentTrainConfig(epochs=25, dim=32), progress=False)
    assert report.beats_zero_shot
    assert report.valid["HR@10"] > 0.9 and report.valid["MRR@10"] > 0.8
    assert report.zero_shot_valid["MRR@10"] < 0.5
    rec.intent_model = model
    rec.save(tmp_path)
    loaded = SessionRecommender.load(tmp_path, encoder=fake_encoder)
    assert is_trained(loaded.intent_model) and not loaded.intent_model.config.zero_shot
    loaded.track("v", "article_open", article_id="ser-marshal")
    assert loaded.suggest("v", k=1, min_score=None)[0].article.id == "net-ssl"


def test_too_few_sessions_is_a_clear_error(rec):
    with pytest.raises(DataFormatError, match="at least 10 logged sessions"):
        train_content_stamp([["ser-json", "net-http"]], rec.index, progress=False)


def test_cli_trains_and_installs(rec, tmp_path, capsys):
    import json

    from plugin.cli import main

    rec.save(tmp_path / "ix")
    log = tmp_path / "events.jsonl"
    log.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in _logged_events()))
    assert (
        main(
            [
                "train-intent",
                "--index",
                str(tmp_path / "ix"),
                "--log",
                str(log),
                "--epochs",
                "25",
                "--dim",
                "32",
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "installed the trained content STAMP" in out
    assert is_trained(SessionRecommender.load(tmp_path / "ix").intent_model)  # in the new version


def test_the_serving_score_is_chosen_on_the_held_out_sessions(rec, monkeypatch):
    from plugin import content_training

    sessions = sessions_from_events(_logged_events())
    cfg = ContentTrainConfig(epochs=25, dim=32)
    model, _ = train_content_stamp(sessions, rec.index, cfg, progress=False)
    assert model.config.output_vectors and model.out_vectors is not None  # learned candidate vectors by default
    chosen, mrr = content_training.choose_scoring(rec, model, sessions, cfg)
    assert set(mrr) == {"plain", "fused"} and all(0.0 <= v <= 1.0 for v in mrr.values())
    assert chosen.config.plain_scoring == (mrr["plain"] > mrr["fused"])
    for plain in (False, True):  # same weights either way: only how the recommender scores changes
        same = content_training.with_scoring(model, plain)
        assert same.config.plain_scoring is plain
        assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), model.state_dict().values()))
    # only the last valid_fraction of the sessions is read: the first ones may be anything
    seen = []
    monkeypatch.setattr(
        SessionRecommender, "suggest_for", lambda self, prefix, k=None, **kw: seen.append(list(prefix)) or []
    )
    content_training.choose_scoring(rec, model, sessions, cfg)
    n_valid = max(1, int(len(sessions) * cfg.valid_fraction))
    assert {tuple(p[:1]) for p in seen} == {tuple(s[:1]) for s in sessions[-n_valid:]}


def test_a_step_back_to_an_article_already_read_is_shown_by_no_placement(rec):
    """docs/security.md, round 3: a held-out step into an article its prefix already read was pointed at another
    (unread) article, or past the known ones at a new article that was not there, and `choose_cold_start` raised
    ValueError: a log whose sessions revisit articles (a script's `x, t, y, t, …`) stopped train-intent."""
    import numpy as np

    from plugin.content_training import _cold_start_steps

    ids = list(rec.index.ids())
    first, second, third, last = ids[0], ids[1], ids[2], ids[-1]
    steps = [([first, second], first), ([last, second], last), ([first, second], third)]
    zero = [([third], np.array([0.5]))] * 3  # the zero-shot top list of each step; no article plays a new one
    out = _cold_start_steps(rec.index, rec.intent_model, None, [], steps, zero, held=set())
    assert [s.target for s in out] == [-1, -1, 0]  # the third step is a real one: into the first unread article
    assert all(len(s.known) == len(ids) - 2 for s in out)
