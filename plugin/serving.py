"""Serving a trained item-ID session model (STAMP, GRU4Rec, SR-GNN from `plugin.models`) through the
recommender: its item vectors go into the FAISS index, its query vector is the session intent.

Such a model knows only its catalogue: pages outside it are stored in the session but do not steer
suggestions, and the text encoder is replaced by `CatalogueOnlyEncoder`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import SuggestSettings
from .errors import ConfigError, EmptySessionError
from .index import ArticleIndex
from .intent import Intent
from .knowledge_base import Article, KnowledgeBase
from .models.base import DotProductModel

__all__ = ["CatalogueOnlyEncoder", "ItemModelIntent", "recommender_from_model"]


class CatalogueOnlyEncoder:
    """The encoder slot of a recommender serving an item-ID model: it cannot embed text."""

    embeds_text = False

    def __init__(self, dim: int, model_name: str) -> None:
        self.dim = dim
        self.name = f"item-model:{model_name}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        raise ConfigError(
            f"{self.name} serves item ids only and cannot embed text; use a content model "
            "(SessionRecommender.build with a text encoder) for pages outside the catalogue"
        )


class ItemModelIntent:
    """IntentModel over a DotProductModel: article ids -> item indices -> the model's query vector."""

    def __init__(self, model: DotProductModel) -> None:
        if model.item_keys is None:
            raise ConfigError("the model was trained without item keys, so articles cannot be mapped to its items")
        self.model = model
        self.input_dim = int(model.item_vectors().shape[1])

    def intent(self, items: np.ndarray, keys: Sequence[str | None] | None = None) -> Intent:
        keys = list(keys or [])
        known = []
        for k in keys:
            try:
                known.append(self.model.index_of(k) if k is not None else 0)
            except KeyError:
                known.append(0)
        prefix = np.array([[i for i in known if i]], dtype=np.int64)  # (1, L') left-aligned
        if prefix.shape[1] == 0:
            raise EmptySessionError("none of the session's pages is in the model's catalogue")
        q = self.model.query_vectors(prefix)[0]  # (d,)
        present = np.array([1.0 if i else 0.0 for i in known], dtype=np.float32)  # (L,)
        att = present / present.sum()
        return Intent(vector=q.astype(np.float32), attention=att)


def recommender_from_model(
    model: DotProductModel | str | os.PathLike[str],
    articles: Iterable[Article] | None = None,
    **kwargs: Any,
):
    """A SessionRecommender that ranks with a trained item-ID model.

    `articles` name the catalogue items (article id = the model's original item id); items without an
    article get a placeholder record. kwargs go to the SessionRecommender constructor.
    """
    from .models import load_model
    from .recommender import SessionRecommender

    if not isinstance(model, DotProductModel):
        loaded = load_model(Path(model))
        if not isinstance(loaded, DotProductModel):
            raise ConfigError(f"{loaded.name} is not a vector model; serve STAMP, GRU4Rec or SR-GNN through FAISS")
        model = loaded
    intent = ItemModelIntent(model)
    vectors = model.item_vectors()
    keys = list(model.item_keys or ())
    given = {a.id: a for a in (articles or ())}
    kb = KnowledgeBase(given.get(k) or Article(id=k, title=f"item {k}") for k in keys)
    index = ArticleIndex(vectors.shape[1], "flat", encoder_name=f"item-model:{model.name}")
    index.upsert(keys, vectors)
    # Raw inner products are not cosines: no cosine floor, and MMR off unless asked for.
    kwargs.setdefault("settings", SuggestSettings(min_score=None, mmr_lambda=1.0))
    return SessionRecommender(
        kb, CatalogueOnlyEncoder(vectors.shape[1], model.name), index, intent_model=intent, **kwargs
    )
