"""The SessionModel contract: one mixin, run against every model in plugin.models (see test_models_contract.py).

Like implicit's `RecommenderBaseTestMixin`: a subclass names the model (`name`, `options`) and, for the neural
ones, a small `train` config; every test here then holds for it. The data is the generated two-topic set of
`models_fixtures` (a known answer: sessions on topic A rank topic-A items first), and, for "beats POP", also a
small real DIGINETICA slice when SESSION_DATA_DIR points at the benchmark data (.ci/run sets it).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from models_fixtures import N_ITEMS, TOPIC_A, TOPIC_B, topic_sessions

from plugin.errors import DimensionMismatchError, UnknownArticleError
from plugin.models import DotProductModel, SessionModel, get_model, load_model
from plugin.models.data import Examples, augment, read_diginetica_clicks, srgnn_preprocess
from plugin.models.evaluation import evaluate
from plugin.models.metrics import popularity_ranks, rank_metrics
from plugin.models.training import TrainConfig

torch.set_num_threads(1)

KEYS = tuple(f"https://kb.test/article-{i}" for i in range(1, N_ITEMS + 1))
PREFIXES = np.array([[1, 2, 3], [11, 12, 0], [7, 0, 0]])
_DATA = os.environ.get("SESSION_DATA_DIR")
_SAMPLE = Path(_DATA) / "diginetica_sample_srgnn" / "sample_train-item-views.csv" if _DATA else None


def _pop_metrics(train: list[np.ndarray], held: Examples, n_items: int, k: int) -> dict[str, float]:
    counts = np.bincount(np.concatenate(train), minlength=n_items + 1)
    return rank_metrics(popularity_ranks(counts, held.targets), ks=(k,))


class SessionModelContract:
    """Behaviour every SessionModel must share. Set `name` (and `options`, `train` for neural models)."""

    name: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}
    train: ClassVar[TrainConfig | None] = None  # neural models only: small, fast, float32, no progress bar
    # False for POP and SPOP, which ignore what the session is about (SPOP's edge, repeat clicks, is rare in the
    # generated walks; the real slice has them)
    learns_topics: ClassVar[bool] = True
    # `beats POP` margin on the held-out topic sessions (HR@5; POP scores about 0.25 there)
    min_hr5: ClassVar[float] = 0.6
    topic_top: ClassVar[int] = 3  # how many of the first ranks must lie on the session's topic

    @classmethod
    def make(cls) -> SessionModel:
        return get_model(cls.name, **cls.options)

    @classmethod
    def fit(cls, sessions: list[np.ndarray], n_items: int = N_ITEMS, seed: int = 0, **kw: Any) -> SessionModel:
        model = cls.make()
        if cls.train is not None:
            kw["train_config"] = replace(cls.train, seed=seed)
        model.fit(sessions, n_items, **kw)
        return model

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls) -> SessionModel:
        torch.set_num_threads(1)
        return cls.fit(topic_sessions(), item_keys=KEYS)

    # ------------------------------------------------------------ scoring

    def test_scores_cover_the_catalogue_with_padding_excluded(self, fitted):
        s = fitted.score(PREFIXES)
        assert s.shape == (3, N_ITEMS + 1) and s.dtype == np.float32
        assert np.isneginf(s[:, 0]).all()  # padding is never a suggestion
        assert np.isfinite(s[:, 1:]).all()
        assert 0 not in np.argsort(-s, axis=1)[:, :N_ITEMS].ravel()

    @pytest.mark.parametrize(
        "bad", [[[0, 3]], [[N_ITEMS + 1]], [[-1]], [1, 2]], ids=["not-left-aligned", "out-of-range", "negative", "1-d"]
    )
    def test_invalid_prefixes_are_refused(self, fitted, bad):
        with pytest.raises(DimensionMismatchError):
            fitted.score(np.array(bad))

    def test_padding_does_not_change_scores(self, fitted):
        alone = fitted.score(np.array([[4, 5]]))
        padded = fitted.score(np.array([[4, 5, 0, 0, 0, 0], [12, 13, 14, 15, 16, 17]]))
        np.testing.assert_allclose(padded[:1], alone, rtol=1e-5, atol=1e-5)

    def test_dot_product_models_score_query_times_items(self, fitted):
        if not isinstance(fitted, DotProductModel):
            pytest.skip(f"{self.name} is not a dot-product model")
        v, q = fitted.item_vectors(), fitted.query_vectors(PREFIXES)
        assert v.shape[0] == N_ITEMS and q.shape == (3, v.shape[1]) and v.dtype == q.dtype == np.float32
        np.testing.assert_allclose(fitted.score(PREFIXES)[:, 1:], q @ v.T, rtol=1e-4, atol=1e-5)

    def test_sessions_on_a_topic_rank_that_topic_first(self, fitted):
        if not self.learns_topics:
            pytest.skip(f"{self.name} ranks by popularity, not by what the session is about")
        s = fitted.score(np.array([[2, 3, 4], [15, 16, 17]]))
        assert set(np.argsort(-s[0])[: self.topic_top].tolist()) <= TOPIC_A
        assert set(np.argsort(-s[1])[: self.topic_top].tolist()) <= TOPIC_B

    # ------------------------------------------------------------ learning

    def test_beats_pop_on_held_out_topic_sessions(self, fitted):
        if not self.learns_topics:
            pytest.skip(f"{self.name} ranks by popularity, not by what the session is about")
        held = augment(topic_sessions(40, seed=1))
        got = evaluate(fitted, held, ks=(5,), beyond_accuracy=False, screen=False).metrics["HR@5"]
        pop = _pop_metrics(topic_sessions(), held, N_ITEMS, 5)["HR@5"]
        assert got > max(pop, self.min_hr5), (got, pop)

    @pytest.mark.skipif(_SAMPLE is None or not _SAMPLE.is_file(), reason="SESSION_DATA_DIR is not set")
    def test_beats_pop_on_a_real_diginetica_slice(self):
        if self.name == "pop":
            pytest.skip("POP is the baseline")
        data = srgnn_preprocess(read_diginetica_clicks(_SAMPLE))  # 469 training sessions, 309 items
        train = list(data.train_sessions)
        model = self.fit(train, data.n_items)
        got = evaluate(model, data.test, ks=(20,), beyond_accuracy=False, screen=False).metrics["HR@20"]
        assert got > _pop_metrics(train, data.test, data.n_items, 20)["HR@20"]

    def test_same_seed_same_model(self, fitted):
        again = self.fit(topic_sessions(), item_keys=KEYS)
        np.testing.assert_array_equal(again.score(PREFIXES), fitted.score(PREFIXES))

    # ------------------------------------------------------------ persistence

    def test_save_load_round_trip_keeps_scores_and_item_keys(self, fitted, tmp_path):
        fitted.save(tmp_path / "m")
        loaded = load_model(tmp_path / "m")
        assert type(loaded) is type(fitted) and loaded.n_items == N_ITEMS
        np.testing.assert_array_equal(loaded.score(PREFIXES), fitted.score(PREFIXES))
        assert loaded.index_of(KEYS[6]) == 7
        # JSON config + numpy arrays, nothing pickled, no temp files left behind
        assert sorted(f.name for f in (tmp_path / "m").iterdir()) == ["config.json", "state.npz"]

    def test_unknown_item_key_is_an_unknown_article(self, fitted):
        with pytest.raises(UnknownArticleError, match="not in the model's catalogue"):
            fitted.index_of("https://kb.test/nowhere")
        with pytest.raises(KeyError):  # still a KeyError for callers that catch the builtin
            fitted.index_of("https://kb.test/nowhere")

    def test_a_save_killed_before_its_commit_leaves_the_previous_model(self, fitted, tmp_path, monkeypatch):
        import plugin.models.base as base

        fitted.save(tmp_path)
        other = self.fit(topic_sessions(60, seed=5), item_keys=KEYS, seed=1)
        assert not np.array_equal(other.score(PREFIXES), fitted.score(PREFIXES))  # else this proves nothing

        def killed(*args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt  # the process dies after the arrays were replaced, before the config

        monkeypatch.setattr(base, "atomic_write_json", killed)
        with pytest.raises(KeyboardInterrupt):
            other.save(tmp_path)
        monkeypatch.undo()
        np.testing.assert_array_equal(load_model(tmp_path).score(PREFIXES), fitted.score(PREFIXES))
        other.save(tmp_path)  # the next save completes and is what loads
        np.testing.assert_array_equal(load_model(tmp_path).score(PREFIXES), other.score(PREFIXES))
