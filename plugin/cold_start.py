"""Articles added after training, scored on the trained model's own scale (calibrated score fusion).

A trained content intent scores the articles it was trained over (its catalogue) on

    s_a = e_a . v + learned part (u_a . v, transitions)          v: the trained intent, unit norm

An article added since has no learned part, so on its text alone it ranks below every clicked article and is
never suggested; put back at its zero-shot rank (`rules.merge_cold_start`) it takes that slot whatever the trained
scores of the known articles around it say, which costs the known articles (BENCHMARKS "Learning loop", round 3).
Here a new article that the zero-shot recommender (its rules and all) ranks r-th with score z gets a score on the
trained scale instead,

    s_new = zero_shot_weight * z + rank_weight * log(1 + r) + bias

with the three numbers fitted by `fit_calibration`: a conditional logit over every unread article,

    P(next = a) = softmax_a(scale * s_a  for known a,   w1 z_a + w2 log(1 + r_a) + b  for new a),

maximum likelihood on validation steps where some known articles play the new ones (`content_training.
choose_cold_start`), then divided by `scale` so the new scores sit beside the served ones. Only the zero-shot
side describes a new article: it is what the model would see of a real one (the trained intent, trained with
those articles in the log, knows them better than it could know a new one). The likelihood is convex in
(scale, w1, w2, b) (a log-sum-exp of linear functions), so Newton's method finds its optimum. A new article
that zero-shot ranks low scores below the known ones and changes nothing; one it ranks first can still outrank
a known article whose learned part is weak, or be outranked by one the log is sure about.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .rules import Candidate

__all__ = ["ColdStartCalibration", "CalibrationStep", "COLD_START_POLICIES", "fit_calibration", "zero_shot_features"]

logger = logging.getLogger(__name__)

# How a trained model ranks articles outside its catalogue: "rank" = at their zero-shot rank
# (rules.merge_cold_start), "score" = on the trained scale through a ColdStartCalibration.
COLD_START_POLICIES = ("rank", "score")


def zero_shot_features(scores: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """(n,) zero-shot scores and (n,) 0-based zero-shot ranks of n new articles -> (n, 2) what they are scored on."""
    return np.stack([np.asarray(scores, np.float64), np.log1p(np.asarray(ranks, np.float64))], 1)  # (n, 2)


@dataclass(frozen=True)
class ColdStartCalibration:
    zero_shot_weight: float  # on the zero-shot recommender's score z
    rank_weight: float  # on log(1 + r), r the zero-shot rank (0 = first)
    bias: float  # in the served score's units

    def scores(self, zero_scores: np.ndarray, zero_ranks: np.ndarray) -> np.ndarray:
        """(n,) zero-shot scores, (n,) zero-shot ranks of n new articles -> (n,) scores beside the trained ones."""
        f = zero_shot_features(zero_scores, zero_ranks)  # (n, 2)
        return (f @ np.array([self.zero_shot_weight, self.rank_weight]) + self.bias).astype(np.float32)  # (n,)

    def merge(
        self, trained: Sequence[Candidate], zero_shot: Sequence[Candidate], catalogue: Collection[str]
    ) -> list[Candidate]:
        """The trained candidates of the catalogue and the zero-shot candidates outside it (both best first),
        the latter scored by this calibration at their zero-shot rank; best first by score."""
        known = [c for c in trained if c.article.id in catalogue]
        new = [(r, c) for r, c in enumerate(zero_shot) if c.article.id not in catalogue]
        if not new:
            return known
        scores = self.scores(np.array([c.score for _, c in new]), np.array([r for r, _ in new]))  # (n,)
        placed = [Candidate(c.article, c.relevance, float(s)) for (_, c), s in zip(new, scores.tolist())]
        return sorted(known + placed, key=lambda c: -c.score)  # stable: a tie keeps the known article first

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.zero_shot_weight, self.rank_weight, self.bias)

    @classmethod
    def from_tuple(cls, values: Sequence[float]) -> ColdStartCalibration:
        if len(values) != 3:
            raise ConfigError(f"a cold-start calibration is (zero_shot_weight, rank_weight, bias), got {values!r}")
        return cls(*(float(v) for v in values))


@dataclass(frozen=True)
class CalibrationStep:
    """One validation step: the served scores of the unread known articles, the zero-shot scores and ranks of
    the unread articles playing new ones that the zero-shot recommender ranked, and which was opened next."""

    known: np.ndarray  # (K,) served scores
    zero_scores: np.ndarray  # (H,) zero-shot scores of the new articles
    zero_ranks: np.ndarray  # (H,) their 0-based zero-shot ranks
    target: int  # index into `known`, len(known) + index into the new ones, or -1: a new one zero-shot missed
    # (K,) transition evidence T(j | session) of the known articles (unweighted; None: the model has no counts),
    # what the rank merge's protected slots read (`ContentSTAMPConfig.cold_protect`)
    evidence: np.ndarray | None = None


def _features(steps: Sequence[CalibrationStep]) -> tuple[np.ndarray, ...]:
    """Padded arrays: known scores (M, K), new features (M, H, 3), their masks, and the targets' features (M, 4)."""
    m, k, h = len(steps), max(len(s.known) for s in steps), max(len(s.zero_ranks) for s in steps)
    known = np.zeros((m, k))  # (M, K)
    kmask = np.zeros((m, k), bool)  # (M, K)
    new = np.zeros((m, h, 3))  # (M, H, 3): z, log(1 + r), 1
    nmask = np.zeros((m, h), bool)  # (M, H)
    target = np.zeros((m, 4))  # (M, 4): the target's features (s, 0, 0, 0) or (0, z, log(1 + r), 1)
    for i, s in enumerate(steps):
        known[i, : len(s.known)] = s.known
        kmask[i, : len(s.known)] = True
        new[i, : len(s.zero_ranks), :2] = zero_shot_features(s.zero_scores, s.zero_ranks)
        new[i, : len(s.zero_ranks), 2] = 1.0
        nmask[i, : len(s.zero_ranks)] = True
        if s.target < len(s.known):
            target[i, 0] = s.known[s.target]
        else:
            target[i, 1:] = new[i, s.target - len(s.known)]
    return known, kmask, new, nmask, target


def _nll(theta: np.ndarray, known, kmask, new, nmask, target) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean negative log-likelihood of the targets, its gradient (4,) and Hessian (4, 4) at theta."""
    lk = np.where(kmask, theta[0] * known, -np.inf)  # (M, K)
    ln = np.where(nmask, new @ theta[1:], -np.inf)  # (M, H)
    top = np.maximum(lk.max(1), ln.max(1))[:, None]  # (M, 1)
    pk, pn = np.exp(lk - top), np.exp(ln - top)  # (M, K), (M, H)
    z = pk.sum(1) + pn.sum(1)  # (M,)
    pk, pn = pk / z[:, None], pn / z[:, None]
    nll = float(np.mean(np.log(z) + top[:, 0] - target @ theta))
    mean = np.concatenate([(pk * known).sum(1)[:, None], np.einsum("mh,mhf->mf", pn, new)], 1)  # (M, 4)
    second = np.zeros((len(known), 4, 4))  # (M, 4, 4) E[f f^T]; known and new features never share a candidate
    second[:, 0, 0] = (pk * known**2).sum(1)
    second[:, 1:, 1:] = np.einsum("mh,mhf,mhg->mfg", pn, new, new)
    grad = (mean - target).mean(0)  # (4,)
    hess = (second - mean[:, :, None] * mean[:, None, :]).mean(0)  # (4, 4)
    return nll, grad, hess


def fit_calibration(
    steps: Sequence[CalibrationStep], *, init_scale: float = 10.0, iterations: int = 50, ridge: float = 1e-6
) -> tuple[ColdStartCalibration, float]:
    """Maximum-likelihood (scale, w1, w2, b) on the steps (module docstring), by damped Newton steps.

    Returns the calibration in the served score's units (w1, w2, b divided by scale) and the fitted scale.
    Raises ConfigError when the steps cannot calibrate: no step has both kinds of articles, or the fitted
    scale is not positive (the known articles' scores would then mean nothing)."""
    steps = [s for s in steps if s.target >= 0 and len(s.known) and len(s.zero_ranks)]  # the reachable targets
    if not steps or not any(s.target >= len(s.known) for s in steps) or all(s.target >= len(s.known) for s in steps):
        raise ConfigError("a cold-start calibration needs steps into known and into new articles")
    arrays = _features(steps)
    theta = np.array([init_scale, init_scale, 0.0, 0.0])  # start: a new article on its zero-shot score
    nll, grad, hess = _nll(theta, *arrays)
    for _ in range(iterations):
        step = np.linalg.solve(hess + ridge * np.eye(4), grad)
        t = 1.0
        while t > 1e-4:  # backtracking: the full Newton step can overshoot far from the optimum
            cand = theta - t * step
            c_nll, c_grad, c_hess = _nll(cand, *arrays)
            if c_nll <= nll:
                break
            t /= 2
        else:
            break
        done = nll - c_nll < 1e-9
        theta, nll, grad, hess = cand, c_nll, c_grad, c_hess
        if done:
            break
    scale = float(theta[0])
    if not scale > 0:
        raise ConfigError(f"the cold-start calibration fitted a non-positive scale ({scale:g})")
    logger.info("cold-start calibration: scale %.3f, w = %s, mean NLL %.4f", scale, np.round(theta[1:], 3), nll)
    return ColdStartCalibration(*(float(x) / scale for x in theta[1:])), scale
