"""Training the content-space STAMP on the plugin's own logged sessions (the JSONL event log).

Sessions come from `event_log.click_sessions` (the one reader of the log). Examples are every prefix of every
logged session -> its next article (the SR-GNN protocol). Candidates are the articles' text embeddings from the
index, so the trained model still scores articles nobody clicked or that were added after training. The model
is the hybrid of `intent.ContentSTAMP`: articles with at least `min_clicks` clicks in the training sessions get
learned vectors beside their text embedding (dropped at random in training, `item_dropout`, so the text path
alone stays good for the others); the articles of the index at training time are the model's catalogue.
With `output_vectors` the learned articles are also scored as candidates on e_a + u_a (`intent.py`).
The score trained: (intent / |intent|) . candidate vector times a fixed logit scale, softmax over the whole KB.
The last 10% of sessions (by time) are held out; the best epoch on them is kept, and the caller is told whether
it beats the zero-shot model on the same held-out examples. `choose_scoring` then decides on the same held-out
sessions, through the recommender, whether the model is served with that score as trained or with the
recommender's rule-based fusion (centring, BM25, interest split) on top, and `choose_transitions` whether
(and with what weight) the item-to-item transition counts of the same log (`transitions.py`) join its scores
(with `folds`, judged over time blocks of the whole log, a content model retrained per block), and
`choose_cold_start` how articles added after training are ranked (`cold_start.py`: at their zero-shot rank,
below the known successors the counts are sure of, or on a calibrated score).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .cold_start import COLD_START_POLICIES, CalibrationStep, ColdStartCalibration, fit_calibration
from .errors import ConfigError, DataFormatError
from .index import ArticleIndex
from .intent import ContentSTAMP, ContentSTAMPConfig
from .recommender import SessionRecommender
from .stamp import STAMPConfig
from .transitions import ITEM_MODELS, ItemTransitions, TransitionConfig
from .zero_shot import ZeroShotIntent

__all__ = [
    "ContentTrainConfig",
    "ContentTrainReport",
    "choose_cold_start",
    "choose_scoring",
    "choose_transitions",
    "train_content_stamp",
    "with_scoring",
    "TRANSITION_GRID",
]

logger = logging.getLogger(__name__)

_STEPS_PER_EPOCH = 50
# choose_cold_start: the share of the catalogue its stand-in model is trained without (the bench's own share of
# articles added after training), and the validation steps into them it needs before it fits a calibration.
COLD_START_HELD_FRACTION = 0.1
COLD_START_MIN_STEPS = 30
COLD_START_STAND_INS = 2  # stand-in models, each without its own tenth (one more training each)
# Shifts of the fitted calibration's bias (served score units: cosines plus learned parts) tried on validation
# to keep new articles at zero-shot quality (`_keep_zero_shot_quality`).
COLD_START_SHIFTS = tuple(np.round(np.arange(-0.5, 1.0001, 0.05), 3).tolist())
_MIN_BATCH = 16
# Temperatures of the zero-shot intent that places articles added after training (the merge puts each at the
# rank it gets there) tried on the stand-ins' validation steps besides the model's own (the zero-shot intent's,
# 0.5: near the session mean); higher ones follow the page read last, whose links the next page is usually on.
COLD_START_TEMPERATURES = (2.0, 5.0, 20.0)
# Depths tried with each temperature: an added article is shown only where the zero-shot list ranks it within the
# top `depth` (0: wherever it shows it); each one shown pushes the known articles below it down a place.
COLD_START_DEPTHS = (0, 1, 2, 3, 5)
# Protected slots tried with each placement (transition evidence T(j | session) a known successor needs to keep
# its place above an added article; 0: none is protected). A step into an added article is one the counts could
# not predict, and where they are confident the visitor usually takes the known successor; each slot kept costs
# the added articles a place, so the same zero-shot-quality floor applies.
COLD_START_PROTECT = (0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05)
_Placement = TypeVar("_Placement", bound=tuple)  # (zero-shot temperature, depth[, protect]) of the rank merge


@dataclass(frozen=True)
class ContentTrainConfig:
    dim: int = 128  # STAMP's item space d (the projection maps the D-d text embeddings into it)
    epochs: int = 30
    batch_size: int = 128  # at most; fewer examples than 50 batches' worth get smaller batches
    lr: float = 1e-3  # 3e-3 overfitted the learned vectors within ~5 epochs (learning-loop bench, validation MRR@10)
    logit_scale: float = 10.0  # cosines live in [-1, 1]; softmax needs a sharper range
    max_len: int = 20  # most recent items of a prefix that the model sees
    valid_fraction: float = 0.1
    patience: int = 4
    seed: int = 0
    cutoff: int = 10  # HR@k / MRR@k on the held-out examples
    min_clicks: int = 5  # an article needs this many training clicks for a learned vector (0: none learned)
    item_dropout: float = 0.25  # chance a learned vector is left out of a training item (the text path alone)
    output_vectors: bool = True  # learned articles are also scored as candidates on e_a + u_a (intent.py)

    def __post_init__(self) -> None:
        if not 0.0 <= self.item_dropout < 1.0:
            raise ConfigError(f"ContentTrainConfig.item_dropout must be in [0, 1), got {self.item_dropout}")
        if self.min_clicks < 0:
            raise ConfigError(
                f"ContentTrainConfig.min_clicks must be >= 0 (0 learns no article vectors), got {self.min_clicks}"
            )


@dataclass(frozen=True)
class ContentTrainReport:
    train_examples: int
    valid_examples: int
    learned_articles: int  # articles with a learned vector (enough training clicks)
    best_epoch: int
    epochs_run: int
    valid: dict[str, float]  # trained model on the held-out examples
    zero_shot_valid: dict[str, float]  # the untrained model on the same examples
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def beats_zero_shot(self) -> bool:
        key = next(k for k in self.valid if k.startswith("MRR"))
        return self.valid[key] > self.zero_shot_valid[key]


def _examples(sessions: Sequence[Sequence[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    prefixes, targets = [], []
    for s in sessions:
        for j in range(1, len(s)):
            prefixes.append(list(s[max(0, j - max_len) : j]))
            targets.append(s[j])
    L = max((len(p) for p in prefixes), default=1)
    items = torch.zeros(len(prefixes), L, dtype=torch.long)  # (n, L) left-aligned
    mask = torch.zeros(len(prefixes), L, dtype=torch.bool)  # (n, L)
    for i, p in enumerate(prefixes):
        items[i, : len(p)] = torch.tensor(p)
        mask[i, : len(p)] = True
    return items, mask, torch.tensor(targets, dtype=torch.long)


def _logits(
    model: ContentSTAMP,
    table: torch.Tensor,
    items: torch.Tensor,
    mask: torch.Tensor,
    scale: float,
    rows: torch.Tensor | None = None,
    row_of: torch.Tensor | None = None,
) -> torch.Tensor:
    q, _ = model(table[items], mask, rows)  # (B, D)
    cands = table if row_of is None else model.candidate_vectors(table, row_of)  # (N, D)
    return scale * F.normalize(q, dim=-1) @ cands.t()  # (B, N)


@torch.no_grad()
def _evaluate(
    model: ContentSTAMP, table, items, mask, targets, cfg: ContentTrainConfig, row_of: torch.Tensor | None = None
) -> dict[str, float]:
    model.eval()
    ranks = []
    for s in range(0, len(targets), 512):
        it, m = items[s : s + 512], mask[s : s + 512]
        rows = None if row_of is None else row_of[it] * m  # (B, L), 0 on padding
        logits = _logits(model, table, it, m, cfg.logit_scale, rows, row_of)  # (B, N)
        t = targets[s : s + 512]
        ranks.append((logits >= logits.gather(1, t[:, None])).sum(1))  # (B,) pessimistic 1-based rank
    r = torch.cat(ranks).double()
    hit = r <= cfg.cutoff
    return {
        f"HR@{cfg.cutoff}": float(hit.double().mean()),
        f"MRR@{cfg.cutoff}": float(torch.where(hit, 1.0 / r, 0.0).mean()),
    }


def _known_sessions(sessions: Sequence[Sequence[str]], ids: Sequence[str]) -> list[list[str]]:
    """The sessions as the model trains on them: KB articles only, two or more of them."""
    known = set(ids)
    return [s2 for s2 in ([a for a in s if a in known] for s in sessions) if len(s2) >= 2]


def _n_valid(seqs: Sequence[Sequence[object]], cfg: ContentTrainConfig) -> int:
    return max(1, int(len(seqs) * cfg.valid_fraction))


# (decay, weight, popularity) of the transition component tried on validation. Weights from 0.5 (a tie-break
# among articles the text ranks alike) to 64 (the counts first, the content orders what they do not cover: the
# Markov-1 limit); decay > 0 lets the pages before the last speak too; popularity weighs the log-scaled clicks
# of each article (Markov-1's own tie-break, which the content model has no bias for). Round 5 of the
# learning-loop bench (BENCHMARKS): on the validation splits the best were decay 0.3, weight 4, popularity 0.8
# (Django) and decay 0, weight 4, popularity 0.2 (PostgreSQL); without popularity round 4 had chosen Django's
# decay 0.6, weight 4.
TRANSITION_GRID = tuple(
    (d, w, p) for d in (0.0, 0.3, 0.6) for w in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0) for p in (0.0, 0.2, 0.4, 0.8, 1.6)
)


def with_scoring(model: ContentSTAMP, plain: bool) -> ContentSTAMP:
    """The same trained model, served with plain scoring (`plain=True`) or the recommender's rule-based fusion."""
    out = ContentSTAMP(replace(model.config, plain_scoring=plain))
    out.load_state_dict(model.state_dict())
    out.transitions = model.transitions
    return out.eval()


def _validation_steps(
    recommender: SessionRecommender, sessions: Sequence[Sequence[str]], cfg: ContentTrainConfig, max_steps: int
) -> tuple[list[list[str]], list[tuple[list[str], str]]]:
    """The sessions `train_content_stamp` trained on and the (prefix, next article) steps of those it held out."""
    seqs = _known_sessions(sessions, recommender.index.ids())
    n_valid = _n_valid(seqs, cfg)
    steps = [(s[:j], s[j]) for s in seqs[-n_valid:] for j in range(1, len(s))][:max_steps]
    return seqs[:-n_valid], steps


def _served_mrr(
    recommender: SessionRecommender, model: ContentSTAMP, steps: Sequence[tuple[list[str], str]], cutoff: int
) -> float:
    """MRR@cutoff of the next articles when `model` serves through the recommender, pure ranking (no floor, no MMR)."""
    settings = recommender.settings.model_copy(update={"min_score": None, "mmr_lambda": 1.0})
    rec = SessionRecommender(
        recommender.kb, recommender.encoder, recommender.index, intent_model=model, settings=settings
    )
    rr = 0.0
    for prefix, target in steps:
        top = [s.article.id for s in rec.suggest_for(prefix, k=cutoff)]
        rr += 1.0 / (top.index(target) + 1) if target in top else 0.0
    return rr / max(len(steps), 1)


def choose_scoring(
    recommender: SessionRecommender,
    model: ContentSTAMP,
    sessions: Sequence[Sequence[str]],
    config: ContentTrainConfig | None = None,
    *,
    max_steps: int = 3000,
) -> tuple[ContentSTAMP, dict[str, float]]:
    """Serve `model` with the score it was trained on, or with the recommender's centring, lexical fusion and
    interest split on top (tuned for the zero-shot intent): whichever ranks the held-out sessions' next articles
    better (MRR@cutoff, through the recommender itself, pure ranking). Held out = the same last `valid_fraction`
    of the sessions as `train_content_stamp`'s validation, so the test split is never used to choose.
    Returns the model set to the winner and {"plain": mrr, "fused": mrr}."""
    cfg = config or ContentTrainConfig()
    _, steps = _validation_steps(recommender, sessions, cfg, max_steps)
    mrr = {
        name: _served_mrr(recommender, with_scoring(model, plain), steps, cfg.cutoff)
        for name, plain in (("fused", False), ("plain", True))
    }
    logger.info("held-out MRR@%d through the recommender: %s", cfg.cutoff, mrr)
    return with_scoring(model, mrr["plain"] > mrr["fused"]), mrr


def _plain_mrr(
    index: ArticleIndex,
    model: ContentSTAMP,
    steps: Sequence[tuple[list[str], str]],
    cutoff: int,
    blends: Sequence[ItemTransitions],
) -> list[float]:
    """MRR@cutoff of `model` alone and with each transition blend, for a model served with plain scoring: the
    recommender then ranks the unread articles by text cosine + learned part + blend, which is computed here
    once per step for every blend (a pass through the recommender per blend costs ~20 ms a step): the blends'
    components (T and pop) once per step for each counts/decay/history they share, then weighed per blend. At
    training time every article of the index is in the model's catalogue, so no cold-start merge applies."""
    ids = index.ids()
    pos = {a: i for i, a in enumerate(ids)}
    table = index.vectors(ids)  # (N, D)
    groups: dict[tuple[int, float, int], list[int]] = {}  # blends that share T and pop: one components() call
    for b, blend in enumerate(blends):
        groups.setdefault((id(blend.data), blend.config.decay, blend.config.history), []).append(b)
    where = {  # the index position of each row of each counts (-1: not in the index)
        id(blend.data): np.array([pos.get(k, -1) for k in blend.keys], np.int64) for blend in blends
    }
    rr = np.zeros(len(blends) + 1)
    for prefix, target in steps:
        intent = model.intent(index.vectors(prefix), prefix)
        base = table @ intent.vector  # (N,) text cosines
        if intent.learned_scores is not None:
            base[[pos[a] for a in intent.learned_ids]] += intent.learned_scores
        base[[pos[a] for a in prefix]] = -np.inf  # read pages are never suggested
        t = pos[target]
        rank = int((base >= base[t]).sum())  # ties count against the target, as in _evaluate
        rr[0] += 1.0 / rank if rank <= cutoff else 0.0
        for members in groups.values():
            first = blends[members[0]]
            rows, trans, pop = first.components(prefix, popular=any(blends[b].config.popularity > 0 for b in members))
            at = where[id(first.data)][rows]  # (n,) index positions
            keep = at >= 0
            at, trans, pop = at[keep], trans[keep], pop[keep]
            for b in members:
                cfg = blends[b].config
                score = base.copy()
                score[at] += cfg.weight * trans + cfg.popularity * pop
                rank = int((score >= score[t]).sum())
                rr[b + 1] += 1.0 / rank if rank <= cutoff else 0.0
    return (rr / max(len(steps), 1)).tolist()


def _fold_mrr(
    index: ArticleIndex,
    model: ContentSTAMP,
    seqs: Sequence[Sequence[str]],
    cfg: ContentTrainConfig,
    configs: Sequence[TransitionConfig],
    folds: int,
    progress: bool,
) -> list[float]:
    """`_plain_mrr` of the model alone and of each blend, over every session cut into `folds` blocks by time: each
    block ranked by a content model trained on the other blocks (as `model` was: its output vectors, the epoch
    chosen on their last tenth) and counts fitted on them. Mean over all the blocks' steps."""
    bounds = np.linspace(0, len(seqs), folds + 1).astype(int)
    total, n = np.zeros(len(configs) + 1), 0
    for f in range(folds):
        held, rest = seqs[bounds[f] : bounds[f + 1]], [*seqs[: bounds[f]], *seqs[bounds[f + 1] :]]
        fold_model, _ = train_content_stamp(
            rest, index, replace(cfg, output_vectors=model.config.output_vectors), progress=progress
        )
        counts = ItemTransitions.fit(rest)
        steps = [(list(s[:j]), s[j]) for s in held for j in range(1, len(s))]
        values = _plain_mrr(
            index, with_scoring(fold_model, True), steps, cfg.cutoff, [counts.with_config(c) for c in configs]
        )
        logger.info(
            "transition blends, fold %d of %d (%d steps): none %.4f, best %.4f",
            f + 1,
            folds,
            len(steps),
            values[0],
            max(values),
        )
        total += len(steps) * np.array(values)
        n += len(steps)
    return (total / max(n, 1)).tolist()


def _blend_name(decay: float, weight: float, popularity: float) -> str:
    return f"markov decay={decay:g} weight={weight:g}" + (f" popularity={popularity:g}" if popularity else "")


def choose_transitions(
    recommender: SessionRecommender,
    model: ContentSTAMP,
    sessions: Sequence[Sequence[str]],
    config: ContentTrainConfig | None = None,
    *,
    item_model: str = "auto",
    grid: Sequence[tuple[float, ...]] = TRANSITION_GRID,
    max_steps: int = 3000,
    folds: int = 0,
    progress: bool = False,
) -> tuple[ContentSTAMP, dict[str, float]]:
    """Blend the log's item-to-item transition counts into `model`'s scores, or not, on validation.

    The counts are fitted on the sessions `train_content_stamp` trained on; every (decay, weight, popularity) of
    `grid` (a (decay, weight) pair: no popularity) and the model alone rank the held-out sessions' next articles
    (the same validation split, never the test) as the recommender serves them, and the best MRR@cutoff wins
    ("none" wins ties: fewer parts; among blends, the first of equals). A model under the rules' fusion is
    judged through the recommender itself, one pass per blend, so only the grid's blends without popularity
    are tried for it. `item_model`:
    "auto" (validation decides), "markov" (the best blend, even if the model alone scores higher), "none" (the
    model alone). The installed counts are refitted on every session, held-out ones included, with the chosen
    blend. Returns the model to serve and {"none": mrr, "markov decay=… weight=…": mrr, …}.

    `folds` > 1 (plain scoring only): instead of the validation split, the sessions are cut into that many blocks
    by time, and each block's steps are ranked by a content model trained like `model` on the other blocks (its
    epoch chosen on their own last tenth, `train_content_stamp`) blended with counts fitted on them; the MRR is
    over every block's steps. One more training per fold, but every session speaks (the validation split alone
    is ~10% of them), and the steps judged are not the ones `model`'s epoch was chosen on, which flatter the
    content side of the blend. Fewer than 10 sessions a fold: the validation split."""
    if item_model not in ITEM_MODELS:
        raise ConfigError(f"unknown item model {item_model!r}. Valid item models are: {', '.join(ITEM_MODELS)}")
    cfg = config or ContentTrainConfig()
    alone = with_scoring(model, model.config.plain_scoring)
    alone.transitions = None
    if item_model == "none":
        return alone, {}
    train, steps = _validation_steps(recommender, sessions, cfg, max_steps)
    counts = ItemTransitions.fit(train)
    points = [(float(g[0]), float(g[1]), float(g[2]) if len(g) > 2 else 0.0) for g in grid]
    if not alone.config.plain_scoring:
        points = [g for g in points if g[2] == 0.0]
    configs = [TransitionConfig(weight=w, decay=d, popularity=p) for d, w, p in points]
    blends = [counts.with_config(c) for c in configs]
    names = ["none", *(_blend_name(*g) for g in points)]
    known = _known_sessions(sessions, recommender.index.ids())
    if alone.config.plain_scoring and folds > 1 and len(known) >= 10 * folds:
        values = _fold_mrr(recommender.index, alone, known, cfg, configs, folds, progress)
    elif alone.config.plain_scoring:
        values = _plain_mrr(recommender.index, alone, steps, cfg.cutoff, blends)
    else:  # the rules' fusion on top: only the recommender itself says how it ranks
        values = [_served_mrr(recommender, alone, steps, cfg.cutoff)]
        for blend in tqdm(blends, desc="choosing the transition blend", unit="blend", disable=len(steps) < 200):
            candidate = with_scoring(alone, False)
            candidate.transitions = blend
            values.append(_served_mrr(recommender, candidate, steps, cfg.cutoff))
    mrr = dict(zip(names, values))
    logger.info("held-out MRR@%d with the transition blends: %s", cfg.cutoff, mrr)
    best = max(range(len(blends)), key=lambda b: values[b + 1], default=None)  # first of equals: the lighter blend
    if best is None or (item_model == "auto" and values[best + 1] <= values[0]):
        return alone, mrr
    served = with_scoring(alone, alone.config.plain_scoring)
    served.transitions = ItemTransitions.fit(_known_sessions(sessions, recommender.index.ids()), blends[best].config)
    return served, mrr


def _rebuilt(model: ContentSTAMP, **changes: object) -> ContentSTAMP:
    """The same trained weights and transition component under a config with `changes`."""
    out = ContentSTAMP(replace(model.config, **changes))  # type: ignore[arg-type]
    out.load_state_dict(model.state_dict())
    out.transitions = model.transitions
    return out.eval()


def _zero_shot_rankings(
    recommender: SessionRecommender, temperature: float, steps: Sequence[tuple[list[str], str]], depth: int
) -> list[tuple[list[str], np.ndarray]]:
    """The zero-shot recommender's top `depth` (ids, scores) for each step's prefix, as the served cold-start
    merge asks it (its rules and all, the zero-shot intent at `temperature`; pure ranking, like `_served_mrr`)."""
    settings = recommender.settings.model_copy(update={"min_score": None, "mmr_lambda": 1.0})
    zero = SessionRecommender(
        recommender.kb,
        recommender.encoder,
        recommender.index,
        intent_model=ZeroShotIntent(recommender.index.dim, temperature),
        settings=settings,
    )
    out = []
    for prefix, _ in steps:
        top = zero.suggest_for(prefix, k=depth)
        out.append(([s.article.id for s in top], np.array([s.score for s in top], np.float64)))
    return out


def _cold_start_steps(
    index: ArticleIndex,
    stand_in: ContentSTAMP,
    transitions: TransitionConfig | None,
    train: Sequence[Sequence[str]],
    steps: Sequence[tuple[list[str], str]],
    zero: Sequence[tuple[list[str], np.ndarray]],
    held: Collection[str],
) -> list[CalibrationStep]:
    """The validation steps as a model trained without the `held` articles sees them: `stand_in` was trained on
    the training sessions without them, and the transition counts are refitted the same way (as the log of a KB
    without them would give). The held articles that the zero-shot top list (`zero`, per step) shows are the new
    articles, with their zero-shot score and rank; the other unread articles keep their served score."""
    ids = index.ids()
    pos = {a: i for i, a in enumerate(ids)}
    table = index.vectors(ids)  # (N, D)
    is_held = np.array([a in held for a in ids])  # (N,)
    counts = None
    if transitions is not None:
        counts = ItemTransitions.fit([[a for a in s if a not in held] for s in train], transitions)
    out: list[CalibrationStep] = []
    for (prefix, target), (z_ids, z_scores) in zip(steps, zero):
        keys = [None if a in held else a for a in prefix]
        intent = stand_in.intent(index.vectors(prefix), keys)
        score = table @ intent.vector  # (N,) served scores of the known articles: text cosine ...
        if intent.learned_scores is not None:  # ... + learned part (none for a held article: never clicked) ...
            score[[pos[a] for a in intent.learned_ids]] += intent.learned_scores
        evidence = None
        if counts is not None:  # ... + transition counts
            t_ids, t_scores = counts.scores(keys)
            score[[pos[a] for a in t_ids]] += t_scores
            rows, trans, _ = counts.components(keys, popular=False)  # what the served protected slots read
            evidence = np.zeros(len(ids))  # (N,)
            evidence[[pos[counts.keys[j]] for j in rows]] = trans
        unread = np.ones(len(ids), bool)
        unread[[pos[a] for a in prefix]] = False
        known = np.flatnonzero(unread & ~is_held)  # (K,)
        new = [r for r, a in enumerate(z_ids) if a in held]  # zero-shot ranks of the new ones it shows
        if target in prefix:
            # A step back to a page the session read: the recommender never suggests one, so no placement can show
            # it. Pointed into `known` (which holds unread articles only) it credited another article, or past it a
            # new one that was not there (ValueError in `_cold_start_mrr`: a log of revisits stopped train-intent).
            where = -1
        elif target not in held:
            where = int(np.searchsorted(known, pos[target]))
        else:
            r = z_ids.index(target) if target in z_ids else -1
            where = len(known) + new.index(r) if r >= 0 else -1
        out.append(
            CalibrationStep(
                score[known],
                z_scores[new],
                np.array(new, np.int64),
                where,
                None if evidence is None else evidence[known],
            )
        )
    return out


def _merged_places(step: CalibrationStep, protect: float) -> tuple[int, np.ndarray]:
    """Where `rules.merge_cold_start` puts the new articles of `step` (0-based places, in zero-shot order) and how
    many leading known articles it protects: those whose evidence is at least `protect` (> 0) keep their places."""
    known, lead = len(step.known), 0
    if protect > 0 and step.evidence is not None:
        ahead = step.evidence[np.argsort(-step.known, kind="stable")] >= protect  # (K,) best first
        lead = int(np.argmin(ahead)) if not ahead.all() else known
    places, length, used = [], lead, lead  # the merged list's length, known articles in it
    for r in np.sort(step.zero_ranks):  # the merge's own walk: known articles fill the places before each new one
        add = max(0, min(int(r) - length, known - used))
        length, used = length + add, used + add
        places.append(length)
        length += 1
    return lead, np.array(places, np.int64)


def _cold_start_mrr(
    steps: Sequence[CalibrationStep], calibration: ColdStartCalibration | None, cutoff: int, protect: float = 0.0
) -> dict[str, float]:
    """MRR@cutoff of the replayed steps when the new articles are scored by `calibration` ("score", left out
    when None) or put at their zero-shot rank ("rank", `rules.merge_cold_start`'s rule, with the known articles
    whose evidence is at least `protect` in protected slots), overall and on the steps into a new article (there
    also HR@cutoff: "rank HR (into new)")."""
    rr = {name: np.zeros(len(steps)) for name in (("score", "rank") if calibration is not None else ("rank",))}
    for i, s in enumerate(steps):
        nk = len(s.known)
        if s.target < 0:  # a new article the zero-shot list missed: neither way can show it
            continue
        if calibration is not None:
            new = calibration.scores(s.zero_scores, s.zero_ranks)  # (H,)
            allv = np.concatenate([s.known, new])  # (K + H,)
            rank = int((allv >= allv[s.target]).sum())  # ties count against the target
            rr["score"][i] = 1.0 / rank if rank <= cutoff else 0.0
        lead, places = _merged_places(s, protect)
        if s.target >= nk:
            place = int(places[int(np.argsort(s.zero_ranks, kind="stable").tolist().index(s.target - nk))])
        else:
            place = int((s.known >= s.known[s.target]).sum()) - 1  # its place among the known ones, ties against it
            if place >= lead:
                for r in places:  # every new article placed at or before it pushes it one down
                    if r > place:
                        break
                    place += 1
        rr["rank"][i] = 1.0 / (place + 1) if place < cutoff else 0.0
    into_new = np.array([s.target < 0 or s.target >= len(s.known) for s in steps])
    out = {name: float(v.mean()) for name, v in rr.items()}
    if into_new.any():
        out.update({f"{name} (into new)": float(v[into_new].mean()) for name, v in rr.items()})
        out["rank HR (into new)"] = float((rr["rank"][into_new] > 0).mean())
    return out


def choose_cold_start(
    recommender: SessionRecommender,
    model: ContentSTAMP,
    sessions: Sequence[Sequence[str]],
    config: ContentTrainConfig | None = None,
    *,
    held_fraction: float = COLD_START_HELD_FRACTION,
    stand_ins: int = COLD_START_STAND_INS,
    min_new_steps: int = COLD_START_MIN_STEPS,
    max_steps: int = 3000,
    progress: bool = False,
    policy: str = "auto",
    temperatures: Sequence[float] = COLD_START_TEMPERATURES,
    depths: Sequence[int] = COLD_START_DEPTHS,
    protects: Sequence[float] = COLD_START_PROTECT,
) -> tuple[ContentSTAMP, dict[str, float]]:
    """How `model` will rank articles added after training (outside its catalogue), chosen on validation
    (`policy="auto"`), or as asked: "rank" (no stand-in is trained) or "score" (served whenever a calibration
    could be fitted).

    `stand_ins` stand-in models are trained like `model` on the same training sessions, each as if its own random
    `held_fraction` of the catalogue (disjoint) had not been written yet (`train_content_stamp(exclude=...)`);
    the held-out sessions' steps
    (the same validation split as training, never the test) are then ranked with those articles as the new ones
    (`_cold_start_steps`). A model trained with them would know them better than it can know a real new article,
    and its known scores in the steps that lead to them would be lower than a model without them gives: the
    calibration would come out too generous to new articles. A `cold_start.ColdStartCalibration` is fitted on
    the steps by maximum likelihood; it serves ("score") when it ranks their next articles better (MRR@cutoff)
    than putting the new articles at their zero-shot rank ("rank", ties, and whenever fewer than `min_new_steps`
    steps lead to a held article: too few to fit on). Only for a model served with plain scoring: under the
    rules' fusion the recommender's own scores are not the trained ones.

    Which zero-shot ranking places the new articles is chosen on the same replayed steps first: the zero-shot
    intent at the model's own temperature (the zero-shot intent's) or at one of `temperatures` (sharper
    attention, closer to the page read last), each showing the new articles it ranks within the top `depth` of
    `depths` (0: all), with the leading known articles whose transition evidence is at least one of `protects`
    (0: none; only for a model with transition counts) kept above them (protected slots), the triple whose rank
    merge ranks the steps best (MRR@cutoff) while its steps into a held article rank at least as well (MRR and
    HR@cutoff) as at the model's own temperature with no limit and no protection (zero-shot quality); they are
    saved as the model's `zero_shot_temperature`, `cold_depth` and `cold_protect`, which the served merge reads.
    Returns the model with the chosen policy and temperature and the stand-ins' MRRs (empty when nothing was
    fitted)."""
    cfg = config or ContentTrainConfig()
    if policy not in ("auto", *COLD_START_POLICIES):
        raise ConfigError(
            f"unknown cold-start policy {policy!r}. Valid policies are: auto, {', '.join(COLD_START_POLICIES)}"
        )
    if not model.config.plain_scoring or not model.config.catalogue:
        return model, {}
    if policy == "rank":
        return _rebuilt(model, cold_start="rank", cold_calibration=()), {}
    if not 0.0 < held_fraction < 1.0:
        raise ConfigError(f"choose_cold_start's held_fraction must be in (0, 1), got {held_fraction}")
    train, steps = _validation_steps(recommender, sessions, cfg, max_steps)
    ids = recommender.index.ids()
    # disjoint tenths of the catalogue, one stand-in each: their steps are pooled (one tenth alone is a noisy
    # estimate of how new articles fare)
    order = np.random.default_rng(cfg.seed).permutation(len(ids))
    size = max(1, int(len(ids) * held_fraction))
    helds = [{ids[i] for i in order[k * size : (k + 1) * size]} for k in range(min(stand_ins, len(ids) // size))]
    n_new = sum(target in held for held in helds for _, target in steps)
    keep = _rebuilt(model, cold_start="rank", cold_calibration=())
    if n_new < min_new_steps:
        logger.info("cold start: %d validation steps into held articles (< %d); zero-shot rank", n_new, min_new_steps)
        return keep, {}
    tconfig = model.transitions.config if model.transitions is not None else None
    stand_in_models = [
        train_content_stamp(
            train,
            recommender.index,
            replace(cfg, output_vectors=model.config.output_vectors),
            progress=progress,
            exclude=held,
        )[0]
        for held in helds
    ]
    taus = [model.config.zero_shot_temperature, *(t for t in temperatures if t != model.config.zero_shot_temperature)]
    cuts = [0, *(d for d in depths if d > 0)]
    guards = [0.0, *(float(g) for g in protects if g > 0 and tconfig is not None)]
    tried: dict[tuple[float, int, float], tuple[list[CalibrationStep], dict[str, float]]] = {}
    for tau in taus:
        zero = _zero_shot_rankings(recommender, tau, steps, cfg.cutoff)
        steps_tau = [
            step
            for held, stand_in in zip(helds, stand_in_models)
            for step in _cold_start_steps(recommender.index, stand_in, tconfig, train, steps, zero, held)
        ]
        for depth in cuts:
            cut = [_within_depth(step, depth) for step in steps_tau]
            for guard in guards:
                tried[(tau, depth, guard)] = (cut, _cold_start_mrr(cut, None, cfg.cutoff, guard))
                logger.info(
                    "cold start, zero-shot rank at temperature %g, depth %d, protect %g: %s",
                    tau,
                    depth,
                    guard,
                    tried[(tau, depth, guard)][1],
                )
    tau, depth, guard = _choose_placement({key: mrr for key, (_, mrr) in tried.items()})
    replayed = tried[(tau, depth, guard)][0]
    placed = {
        **{
            f"rank temperature={t:g} depth={d}" + (f" protect={g:g}" if g else "") + part: v
            for (t, d, g), (_, mrr) in tried.items()
            for part, v in _parts(mrr, "rank")
        },
        "zero-shot temperature": tau,
        "depth": depth,
        "protect": guard,
    }
    keep = _rebuilt(
        model,
        cold_start="rank",
        cold_calibration=(),
        zero_shot_temperature=tau,
        cold_depth=depth,
        cold_protect=guard,
    )
    try:
        calibration, scale = fit_calibration(replayed, init_scale=cfg.logit_scale)
    except ConfigError as exc:
        logger.info("cold start: no calibration (%s); zero-shot rank", exc)
        return keep, placed
    calibration, mrr = _keep_zero_shot_quality(replayed, calibration, cfg.cutoff)
    mrr = {**placed, **mrr}
    logger.info(
        "cold-start MRR@%d of the stand-in: %s (calibration %s, scale %.3f)", cfg.cutoff, mrr, calibration, scale
    )
    # kept under either policy: an operator (or the bench) can switch to it without refitting
    if policy == "auto":
        ranked = _cold_start_mrr(replayed, None, cfg.cutoff, guard)["rank"]  # the rank merge as chosen, slots and all
        better = mrr["score"] > ranked and mrr.get("score (into new)", 0.0) >= mrr.get("rank (into new)", 0.0)
        policy = "score" if better else "rank"
    return _rebuilt(keep, cold_start=policy, cold_calibration=calibration.as_tuple()), mrr


def _choose_placement(tried: dict[_Placement, dict[str, float]]) -> _Placement:
    """The placement of added articles (keys of `tried`: (temperature, depth[, protect]), the model's own
    temperature with no depth limit and no protected slot first, each with its `_cold_start_mrr`): the best
    "rank" MRR whose steps into new articles rank at least as well as the first's, in MRR and in HR (the zero-shot
    intent's: new articles stay at zero-shot quality); the first of equals."""
    first = next(iter(tried))
    floor = {k: tried[first].get(k, 0.0) for k in ("rank (into new)", "rank HR (into new)")}
    ok = [key for key, mrr in tried.items() if all(mrr.get(k, 0.0) >= v for k, v in floor.items())]
    return max(ok, key=lambda key: tried[key]["rank"])


def _within_depth(step: CalibrationStep, depth: int) -> CalibrationStep:
    """`step` as the merge sees it when only the new articles the zero-shot list ranks within the top `depth` are
    shown (0: all of them): the others are left out, and a step into one of them cannot be ranked (-1)."""
    if depth <= 0:
        return step
    keep = step.zero_ranks < depth  # (H,)
    target, nk = step.target, len(step.known)
    if target >= nk:
        target = nk + int(keep[: target - nk].sum()) if keep[target - nk] else -1
    return CalibrationStep(step.known, step.zero_scores[keep], step.zero_ranks[keep], target, step.evidence)


def _parts(mrr: dict[str, float], name: str) -> list[tuple[str, float]]:
    """("", overall) and (" (into new)", on the steps into a new article) of one way in `_cold_start_mrr`'s dict."""
    return [(part, mrr[name + part]) for part in ("", " (into new)") if name + part in mrr]


def _keep_zero_shot_quality(
    steps: Sequence[CalibrationStep], calibration: ColdStartCalibration, cutoff: int
) -> tuple[ColdStartCalibration, dict[str, float]]:
    """The maximum-likelihood calibration with its bias moved by the shift of `COLD_START_SHIFTS` that ranks the
    steps best (MRR@cutoff) while their steps into a new article rank at least as well as at the zero-shot rank:
    new articles must stay at zero-shot quality (issue #14.4), and the likelihood alone would trade them for the
    known ones. With no such shift, the unshifted one (the caller then keeps the zero-shot rank)."""
    best: tuple[float, ColdStartCalibration, dict[str, float]] | None = None
    for shift in COLD_START_SHIFTS:
        cand = replace(calibration, bias=calibration.bias + shift)
        mrr = _cold_start_mrr(steps, cand, cutoff)
        logger.info("cold-start bias shift %+.3f: %s", shift, mrr)
        if mrr["score (into new)"] >= mrr["rank (into new)"] and (best is None or mrr["score"] > best[0]):
            best = (mrr["score"], cand, {**mrr, "bias shift": shift})
    if best is None:
        return calibration, _cold_start_mrr(steps, calibration, cutoff)
    return best[1], best[2]


def train_content_stamp(
    sessions: Sequence[Sequence[str]],
    index: ArticleIndex,
    config: ContentTrainConfig | None = None,
    *,
    progress: bool = True,
    exclude: Collection[str] = frozenset(),
) -> tuple[ContentSTAMP, ContentTrainReport]:
    """Fit a hybrid ContentSTAMP on logged article-id sessions (`click_sessions(...)` items); returns the
    best-on-validation model and a report. `exclude`: articles trained as if the KB did not hold them yet (out
    of the sessions, the candidates and the catalogue), as `choose_cold_start`'s stand-in model needs."""
    cfg = config or ContentTrainConfig()
    ids = [a for a in index.ids() if a not in exclude]
    pos = {a: i for i, a in enumerate(ids)}
    seqs = [[pos[a] for a in s] for s in _known_sessions(sessions, ids)]
    if len(seqs) < 10:
        raise DataFormatError(f"need at least 10 logged sessions with two or more KB articles, got {len(seqs)}")
    n_valid = _n_valid(seqs, cfg)
    tr, va = _examples(seqs[:-n_valid], cfg.max_len), _examples(seqs[-n_valid:], cfg.max_len)
    table = torch.from_numpy(index.vectors(ids))  # (N, D) frozen text embeddings
    clicks = Counter(a for s in seqs[:-n_valid] for a in s)
    learned = [i for i in range(len(ids)) if cfg.min_clicks and clicks[i] >= cfg.min_clicks]
    row_of = torch.zeros(len(ids), dtype=torch.long)  # (N,) article position -> learned row, 0 = text only
    row_of[learned] = torch.arange(1, len(learned) + 1)

    torch.manual_seed(cfg.seed)
    zero = ContentSTAMP.zero_shot(index.dim)
    zero_valid = _evaluate(zero, table, *va, cfg)
    model = ContentSTAMP(
        ContentSTAMPConfig(
            input_dim=index.dim,
            stamp=STAMPConfig(dim=cfg.dim),
            item_keys=tuple(ids[i] for i in learned),
            catalogue=tuple(ids),
            output_vectors=cfg.output_vectors,
        )
    )
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    best, best_state, best_epoch, history, stale = -1.0, None, 0, [], 0
    key = f"MRR@{cfg.cutoff}"
    # A small log gives few batches an epoch; smaller batches keep ~50 optimiser steps an epoch (measured on the
    # learning-loop test's 400 examples: batch 128 stalls at 3 steps an epoch, 16 learns the pattern).
    batch = max(_MIN_BATCH, min(cfg.batch_size, len(tr[2]) // _STEPS_PER_EPOCH))
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="training content STAMP", unit="epoch", disable=not progress):
        model.train()
        order = torch.randperm(len(tr[2]), generator=gen)
        total = 0.0
        for s in range(0, len(order), batch):
            b = order[s : s + batch]
            rows = row_of[tr[0][b]] * tr[1][b]  # (B, L) learned rows, 0 on padding
            if cfg.item_dropout:
                rows = rows * (torch.rand(rows.shape, generator=gen) >= cfg.item_dropout)  # (B, L)
            loss = F.cross_entropy(_logits(model, table, tr[0][b], tr[1][b], cfg.logit_scale, rows, row_of), tr[2][b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        metrics = _evaluate(model, table, *va, cfg, row_of)
        history.append({"epoch": epoch, "loss": total / len(order), **metrics})
        if metrics[key] > best:
            best, best_epoch, stale = metrics[key], epoch, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    report = ContentTrainReport(
        len(tr[2]),
        len(va[2]),
        len(learned),
        best_epoch,
        len(history),
        {k: v for k, v in history[best_epoch - 1].items() if "@" in k},
        zero_valid,
        history,
    )
    return model, report
