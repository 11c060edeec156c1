"""A trained item-ID model served through the recommender: FAISS over its item vectors gives the same
ranking as the model's own full-catalogue scores, minus what the visitor already saw."""

from __future__ import annotations

import numpy as np
import pytest

from plugin import Article, ConfigError, EmptySessionError
from plugin.models.base import DotProductModel
from plugin.serving import recommender_from_model


class _MeanModel(DotProductModel):
    """A fixed dot-product model: query = sum of the prefix's item vectors."""

    name = "mean-test"
    config_class = dict

    def __init__(self, vectors: np.ndarray, keys: list[str] | None) -> None:
        super().__init__(config={})
        self.n_items, self.item_keys, self._v = len(vectors), None if keys is None else tuple(keys), vectors

    def fit(self, *a, **k):  # pragma: no cover - fixed weights
        return {}

    def item_vectors(self):
        return self._v

    def query_vectors(self, prefixes):
        p = self._check_prefixes(prefixes)
        return np.stack([self._v[row[row > 0] - 1].sum(0) for row in p]).astype(np.float32)

    def state_arrays(self):  # pragma: no cover
        return {}

    def load_state_arrays(self, arrays):  # pragma: no cover
        pass


@pytest.fixture
def model():
    rng = np.random.default_rng(0)
    return _MeanModel(rng.standard_normal((30, 8)).astype(np.float32), [f"sku{i}" for i in range(1, 31)])


def test_served_ranking_equals_model_scores_without_seen_items(model):
    rec = recommender_from_model(model, [Article("sku3", "Red shoes", "https://shop.test/3")])
    for sku in ("sku3", "sku7", "sku11"):
        rec.track("v", "article_open", article_id=sku)
    rec.track("v", url="https://elsewhere.test/blog", title="not in the catalogue")  # stored, ignored by the model
    got = [s.article.id for s in rec.suggest("v", k=5)]
    scores = model.score(np.array([[3, 7, 11]]))[0]
    scores[[3, 7, 11]] = -np.inf
    expected = [f"sku{i}" for i in np.argsort(-scores)[:5]]
    assert got == expected
    assert rec.kb.get("sku3").title == "Red shoes" and rec.kb.get("sku4").title == "item sku4"


def test_sessions_outside_the_catalogue_and_untyped_models(model):
    rec = recommender_from_model(model)
    rec.track("v", url="https://elsewhere.test/x", title="blog")
    with pytest.raises(EmptySessionError, match="catalogue|no page views"):
        rec.suggest("v")
    assert rec.inject("v", "reply") == "reply"
    with pytest.raises(ConfigError, match="without item keys"):
        recommender_from_model(_MeanModel(model.item_vectors(), None))


def test_a_saved_stamp_from_the_benchmark_pipeline_serves_through_the_recommender(tmp_path):
    """train -> save (config.json + state.npz) -> recommender_from_model(dir): the recommender's FAISS ranking
    is the model's own full-catalogue ranking minus what the visitor read."""
    import torch

    from plugin.models import get_model
    from plugin.models.training import TrainConfig

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n_items = 40
    sessions = [rng.choice(np.arange(1, n_items + 1), size=rng.integers(2, 6), replace=False) for _ in range(300)]
    model = get_model("stamp", dim=16)
    model.fit(
        sessions,
        n_items,
        item_keys=[f"sku{i}" for i in range(1, n_items + 1)],
        train_config=TrainConfig(epochs=2, batch_size=64, lr=1e-2, progress=False, bf16=False),
    )
    model.save(tmp_path / "stamp")

    rec = recommender_from_model(tmp_path / "stamp")
    for sku in ("sku5", "sku9"):
        rec.track("v", "article_open", article_id=sku)
    got = [s.article.id for s in rec.suggest("v", k=4)]
    scores = model.score(np.array([[5, 9]]))[0]
    scores[[5, 9]] = -np.inf
    assert got == [f"sku{i}" for i in np.argsort(-scores)[:4]]
