"""The session-intent seam and the untrained intent, in numpy only.

`IntentModel` is what the recommender asks for an intent; `ZeroShotIntent` answers it with STAMP's
similarity-attention setting in closed form (`zero_shot_query`), which is what serves an index with no trained
model. Neither needs torch, so loading such an index and suggesting from it (the one-shot CLI, a fresh worker)
does not pay torch's import; nor does a trained model, served in numpy (`plugin.frozen_intent`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .cold_start import ColdStartCalibration
from .errors import DimensionMismatchError, EmptySessionError

__all__ = ["Intent", "IntentModel", "ZeroShotIntent", "ZERO_SHOT_TEMPERATURE", "session_items", "zero_shot_query"]

# tau of the zero-shot attention; `ContentSTAMP.zero_shot` uses the same (tests/test_reload.py pins it). Chosen on
# the relevance benchmark's tuning chapters (BENCHMARKS.md): near-uniform attention (the session mean) ranks a
# chapter best, 0.5 ties it there and follows the last click a little on link walks; 2.0 lost ~5 points.
ZERO_SHOT_TEMPERATURE = 0.5


@dataclass(frozen=True)
class Intent:
    vector: np.ndarray  # (D,) in the index's space, unit norm
    attention: np.ndarray  # (L,) weight of each session item, sums to 1
    # A trained model knows the articles it was trained over (`catalogue`); any other article (added since)
    # is ranked by the zero-shot intent `cold_vector` instead (rules.merge_cold_start). None: rank by `vector`.
    cold_vector: np.ndarray | None = None  # (D,) unit norm
    catalogue: frozenset[str] | None = None
    # Set when the model scores those articles on its own scale instead of merging them at their zero-shot rank:
    # from the zero-shot recommender's score and rank of each (plugin/cold_start.py).
    cold_calibration: ColdStartCalibration | None = None
    # Known articles the log is confident come next (transition evidence at or above the model's `cold_protect`):
    # the rank merge puts no new article above the leading run of them (protected slots, rules.merge_cold_start).
    cold_protected: frozenset[str] = frozenset()
    # A trained model's learned candidate vectors u_a: `learned_scores[i]` = vector . u_a of article
    # `learned_ids[i]`, added to that article's text cosine (its score is vector . (e_a + u_a), as trained),
    # plus, when the model has one, its transition component's weight * T(a | session) (plugin/transitions.py).
    learned_ids: tuple[str, ...] = ()
    learned_scores: np.ndarray | None = None  # (len(learned_ids),)


@runtime_checkable
class IntentModel(Protocol):
    input_dim: int

    def intent(self, items: np.ndarray, keys: Sequence[str | None] | None = None) -> Intent:
        """items: (L, D) vectors of the session, oldest first; keys: their article ids (None for pages
        outside the KB), for models that work on item ids -> Intent in the index's space."""
        ...


def session_items(items: np.ndarray, input_dim: int) -> np.ndarray:
    """A session's item vectors as float32 (L, input_dim), L >= 1: what every intent model accepts."""
    items = np.asarray(items, dtype=np.float32)
    if items.ndim != 2 or items.shape[1] != input_dim:
        raise DimensionMismatchError(f"intent expects (L, {input_dim}) embeddings, got {items.shape}")
    if len(items) == 0:
        raise EmptySessionError("the session has no items to form an intent from")
    return items


def zero_shot_query(items: np.ndarray, temperature: float = 10.0, gain: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """`STAMP.zero_shot(d)` on one unpadded session, in closed form with numpy (serving's hot path:
    ~15 tiny torch ops cost more in dispatch than in arithmetic). Equal to the module up to float error
    (tests/test_stamp.py pins it): a = softmax(tau * x_i . (x_t + m_s)), h_s = tanh(gain * m_a), h_t = 1.

    items: (L, d) -> (query (d,), attention (L,)).
    """
    x_t = items[-1]  # (d,)
    m_s = items.mean(0)  # (d,)
    sim = temperature * (items @ (x_t + m_s))  # (L,)
    alpha = np.exp(sim - sim.max())  # (L,)
    alpha /= alpha.sum()
    m_a = alpha @ items  # (d,)
    h_t = np.tanh(math.atanh(1.0 - 1e-6))  # the saturated last-click cell: 1 - 1e-6
    return np.tanh(gain * m_a) * h_t, alpha  # (d,), (L,)


class ZeroShotIntent:
    """The untrained intent over text embeddings: what `ContentSTAMP.zero_shot(input_dim).intent` returns,
    without building a torch module."""

    def __init__(self, input_dim: int, temperature: float = ZERO_SHOT_TEMPERATURE) -> None:
        self.input_dim = input_dim
        self.temperature = temperature

    def intent(self, items: np.ndarray, keys: Sequence[str | None] | None = None) -> Intent:
        vec, att = zero_shot_query(session_items(items, self.input_dim), self.temperature)  # (D,), (L,)
        return Intent(vector=vec / max(float(np.linalg.norm(vec)), 1e-12), attention=att / max(float(att.sum()), 1e-12))
