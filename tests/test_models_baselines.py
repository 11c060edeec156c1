from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from models_fixtures import N_ITEMS, sessions, topic_sessions  # noqa: F401  (fixtures)

from plugin.errors import ConfigError, IndexFormatError
from plugin.models import MODEL_NAMES, get_model, load_model

torch.set_num_threads(1)

COUNT_MODELS = ("pop", "spop", "markov", "itemknn", "vsknn")


def test_registry_names_valid_models_in_its_error() -> None:
    assert set(COUNT_MODELS) | {"stamp", "gru4rec", "srgnn", "core"} == set(MODEL_NAMES)
    with pytest.raises(ConfigError, match="Valid names are: pop, spop"):
        get_model("narm")
    with pytest.raises(ConfigError, match="Valid options are"):
        get_model("vsknn", neighbours=3)


def test_markov_is_directed(sessions) -> None:  # noqa: F811
    m = get_model("markov")
    m.fit(sessions, N_ITEMS)
    s = m.score(np.array([[2, 3, 4], [15, 16, 17]]))
    # the walk goes i -> i+1 most often, so after 4 comes 5, after 17 comes 18 (topic ranking: the contract)
    assert int(np.argmax(s[0])) == 5 and int(np.argmax(s[1])) == 18


def test_vsknn_hand_computed_scores() -> None:
    train = [np.array([1, 2]), np.array([2, 3]), np.array([4, 5])]
    m = get_model("vsknn", k=10, sample_size=10)
    m.fit(train, 5)
    s = m.score(np.array([[1, 2]]))[0]
    # weights div: item1 1/2, item2 2/2; #distinct = 2. sim(s0) = (0.5 + 1)/2 = 0.75, sim(s1) = 1/2 = 0.5
    # both neighbours contain the last click (step 1, decay 1): item1 0.75, item2 0.75 + 0.5, item3 0.5
    np.testing.assert_allclose(s[1:], [0.75, 1.25, 0.5, 0.0, 0.0], rtol=1e-6)
    # sample_size=1 keeps only the most recent candidate (s1)
    m1 = get_model("vsknn", k=10, sample_size=1)
    m1.fit(train, 5)
    np.testing.assert_allclose(m1.score(np.array([[1, 2]]))[0, 1:], [0.0, 0.5, 0.5, 0.0, 0.0], rtol=1e-6)
    # neighbours sharing only an older click are discounted by 1/step
    s2 = m.score(np.array([[1, 4]]))[0]  # s0 shares item1 (step 2), s2 shares item4 (step 1)
    # sim(s0) = 0.5/2, decay 1/2 -> 0.125 on items 1, 2; sim(s2) = 1/2 -> 0.5 on items 4, 5
    np.testing.assert_allclose(s2[1:], [0.125, 0.125, 0.0, 0.5, 0.5], rtol=1e-6)


def test_itemknn_hand_computed_similarity() -> None:
    train = [np.array([1, 2]), np.array([1, 2]), np.array([1, 3])]
    m = get_model("itemknn", lmbd=0.0, alpha=0.5)
    m.fit(train, 3)
    s = m.score(np.array([[1]]))[0]
    # supp: 1 -> 3, 2 -> 2, 3 -> 1; co(1,2) = 2, co(1,3) = 1; cosine
    np.testing.assert_allclose(s[1:], [0.0, 2 / np.sqrt(6), 1 / np.sqrt(3)], rtol=1e-6)


def test_spop_prefers_items_of_the_session_then_popularity() -> None:
    m = get_model("spop")
    m.fit([np.array([1, 2, 2]), np.array([3, 2])], 4)
    s = m.score(np.array([[4, 1, 4]]))[0]
    assert list(np.argsort(-s[1:])[:3] + 1) == [4, 1, 2]


def test_load_rejects_foreign_folders(tmp_path: Path) -> None:
    with pytest.raises(IndexFormatError):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text('{"format_version": 1, "model": "narm", "config": {}}')
    with pytest.raises(IndexFormatError, match="Valid names"):
        load_model(tmp_path)


def test_unfitted_model_refuses_to_score() -> None:
    with pytest.raises(ConfigError, match="not fitted"):
        get_model("pop").score(np.array([[1]]))


def test_topic_sessions_fixture_is_deterministic() -> None:
    a, b = topic_sessions(5), topic_sessions(5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
