"""GRU4Rec (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018) with cross-entropy over all items.

A GRU reads the session's item embeddings; its state after the last click, projected to the item space, is the
query, and the score of item j is query . e_j with the *same* embeddings as the input (the official code's
``constrained_embedding``), so the item table goes straight into FAISS.

Training follows the official objective: every click of a session predicts the next one, with the hidden
state carried along the session. The official code streams sessions through "session-parallel mini-batches";
here a mini-batch is a set of whole sessions run to the end with a per-step loss (teacher forcing), which
visits exactly the same (state, next item) pairs once per epoch without the streaming bookkeeping.

Losses (``loss`` x ``negatives``):

* ``negatives="all"`` (default): cross-entropy over the whole catalogue (exact softmax, `full_softmax_loss`);
* ``negatives="sampled"``, the official scheme: the scores of every position go against the targets of all
  positions in the mini-batch plus ``n_sample`` items drawn once per mini-batch with probability
  proportional to popularity^``sample_alpha``; then either ``loss="cross-entropy"`` (softmax over those
  columns, minus ``logq`` x log sampling probability as the official logQ correction) or ``loss="bpr-max"``
  (Hidasi & Karatzoglou 2018: -log sum_j softmax_j(r) sigmoid(r_i - r_j) + bpreg sum_j softmax_j r_j^2 over
  the negatives j). ``elu_param`` > 0 applies the official ELU final activation to the sampled scores.
  Sampled training costs a few thousand columns per step instead of the catalogue, which is what makes the
  official wide settings (``hidden=512`` and dropout) affordable on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..errors import ConfigError
from ._neural import ItemQueryNet, NeuralModel, full_softmax_loss
from .adagrad import AdagradMomentum
from .data import Examples
from .training import EpochRunner, TrainConfig

__all__ = ["GRU4Rec", "GRU4RecConfig", "Lanes", "SessionParallelEpochs", "bpr_max_loss"]

_LOSSES = ("cross-entropy", "bpr-max")
_NEGATIVES = ("all", "sampled")
_SCHEMES = ("whole", "session-parallel")


@dataclass(frozen=True)
class GRU4RecConfig:
    dim: int = 100  # item embedding size (= query size)
    hidden: int = 100  # GRU state size
    layers: int = 1
    dropout_embedding: float = 0.0
    dropout_hidden: float = 0.0
    init_std: float = 0.05
    loss: str = "cross-entropy"  # or "bpr-max" (needs negatives="sampled")
    negatives: str = "all"  # "all": full catalogue; "sampled": in-batch targets + n_sample popularity samples
    n_sample: int = 2048
    sample_alpha: float = 0.5
    bpreg: float = 1.0
    logq: float = 0.0
    elu_param: float = 0.0
    # "whole": teacher-forced whole sessions, backpropagated through each session, trained by the trainer's Adam;
    # "session-parallel": the official code's scheme (see `_ParallelNet`, `SessionParallelEpochs`)
    scheme: str = "whole"
    momentum: float = 0.0  # session-parallel only: Adagrad's momentum (the official paramfiles: 0-0.3)

    def __post_init__(self) -> None:
        if self.dim < 1 or self.hidden < 1 or self.layers < 1:
            raise ConfigError("GRU4RecConfig needs dim, hidden and layers >= 1")
        if not (0.0 <= self.dropout_embedding < 1.0 and 0.0 <= self.dropout_hidden < 1.0):
            raise ConfigError("GRU4Rec dropout rates must be in [0, 1)")
        if self.loss not in _LOSSES:
            raise ConfigError(f"GRU4Rec loss {self.loss!r} is not valid. Valid losses are: {', '.join(_LOSSES)}")
        if self.negatives not in _NEGATIVES:
            raise ConfigError(
                f"GRU4Rec negatives {self.negatives!r} is not valid. Valid values are: {', '.join(_NEGATIVES)}"
            )
        if self.loss == "bpr-max" and self.negatives != "sampled":
            raise ConfigError("GRU4Rec loss='bpr-max' needs negatives='sampled'")
        if self.n_sample < 0 or self.sample_alpha < 0 or self.bpreg < 0 or self.logq < 0 or self.elu_param < 0:
            raise ConfigError("GRU4Rec n_sample, sample_alpha, bpreg, logq and elu_param must be >= 0")
        if self.scheme not in _SCHEMES:
            raise ConfigError(f"GRU4Rec scheme {self.scheme!r} is not valid. Valid schemes are: {', '.join(_SCHEMES)}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"GRU4Rec momentum must be in [0, 1), got {self.momentum}")
        if self.scheme == "session-parallel" and (
            self.dim != self.hidden or self.layers != 1 or self.negatives != "sampled" or self.logq > 0
        ):
            raise ConfigError(
                "GRU4Rec scheme='session-parallel' is the official one-layer net with a shared item table: it needs "
                f"dim == hidden (got {self.dim}, {self.hidden}), layers=1, negatives='sampled' and logq=0"
            )


class _GRU4RecNet(ItemQueryNet):
    def __init__(self, config: GRU4RecConfig, n_items: int) -> None:
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(n_items + 1, config.dim, padding_idx=0)
        self.gru = nn.GRU(config.dim, config.hidden, num_layers=config.layers, batch_first=True)
        self.out = nn.Linear(config.hidden, config.dim)
        for p in self.parameters():
            nn.init.normal_(p, 0.0, config.init_std) if p.dim() > 1 else nn.init.zeros_(p)
        with torch.no_grad():
            self.emb.weight[0].zero_()

    def item_table(self) -> torch.Tensor:
        return self.emb.weight  # (N+1, d)

    def states(self, prefixes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, L, d) query after each click; padding sits after the real clicks, so it never
        reaches the states of real positions."""
        x = F.dropout(table[prefixes], self.config.dropout_embedding, self.training)  # (B, L, d)
        h, _ = self.gru(x)  # (B, L, hidden)
        h = F.dropout(h, self.config.dropout_hidden, self.training)  # (B, L, hidden)
        return self.out(h)  # (B, L, d)

    def query(self, prefixes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        last = (prefixes > 0).sum(1) - 1  # (B,)
        return self.states(prefixes, table)[torch.arange(prefixes.size(0), device=prefixes.device), last]  # (B, d)


def _glorot_uniform(t: torch.Tensor, fan_in: int, fan_out: int) -> None:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(t, -bound, bound)


class _ParallelNet(ItemQueryNet):
    """The official code's net (``constrained_embedding=True``, one layer): item table ``Wy`` (N+1, H) is both the
    GRU's input and its output layer, with an item bias ``By``; no projection between the state and the items.

    The score of item j is h . Wy[j] + By[j]: `item_table` is [Wy | By] (N+1, H+1) and `query` is [h | 1], so the
    bias rides along in the FAISS inner product. ``Wy`` and ``By`` are sparse lookups: a training step's gradient
    touches the rows it read (the session-parallel optimiser updates only those)."""

    def __init__(self, config: GRU4RecConfig, n_items: int) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.wy = nn.Embedding(n_items + 1, h, sparse=True)
        self.by = nn.Embedding(n_items + 1, 1, sparse=True)
        self.gru = nn.GRU(h, h, batch_first=True)
        with torch.no_grad():  # the official "compatibility mode" initialisation: uniform, each gate on its own
            _glorot_uniform(self.wy.weight, n_items, h)
            self.wy.weight[0].zero_()
            self.by.weight.zero_()
            for name, w in self.gru.named_parameters():  # weight_ih_l0, weight_hh_l0 (3H, H); the biases (3H,)
                if name.startswith("weight"):
                    for gate in w.chunk(3, 0):
                        _glorot_uniform(gate, h, h)
                else:
                    w.zero_()

    def item_table(self) -> torch.Tensor:
        return torch.cat([self.wy.weight, self.by.weight], 1)  # (N+1, H+1)

    def query(self, prefixes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(table[prefixes, :-1])  # (B, L, H); padding sits after the real clicks
        last = (prefixes > 0).sum(1) - 1  # (B,)
        q = h[torch.arange(prefixes.size(0), device=prefixes.device), last]  # (B, H)
        return torch.cat([q, torch.ones_like(q[:, :1])], 1)  # (B, H+1)

    def step(self, items: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One click per lane: items (B,), state (B, H) -> the next state (B, H), dropout as the official code
        applies it (on the input, and on the output, which is also what the lane carries on)."""
        c = self.config
        x = F.dropout(self.wy(items), c.dropout_embedding, self.training)  # (B, H)
        _, h = self.gru(x.unsqueeze(1), state.unsqueeze(0))  # (1, B, H)
        return F.dropout(h[0], c.dropout_hidden, self.training)

    def scores(self, state: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """(B, H) states against the items ``columns`` (C,) -> (B, C)."""
        return state @ self.wy(columns).t() + self.by(columns).view(1, -1)


class Lanes:
    """Session-parallel mini-batches: ``batch_size`` lanes, each reading one session at a time in the units' order.

    `clicks` gives every lane's current click and the click after it; `advance` moves every lane one click on,
    starts the next session in each lane whose session has no next click left (those lanes' states go back to
    zero), and drops lanes once no sessions are left. Every (click, next click) pair of every session comes out
    exactly once an epoch."""

    def __init__(self, units: Examples, batch_size: int) -> None:
        s = len(units)
        # whole sessions back from GRU4Rec's units (prefix + last click), each one click longer than its prefix
        self.flat = np.insert(units.items, units.offsets[1:], units.targets)  # (clicks,)
        self.ends = units.offsets[1:] + np.arange(1, s + 1)  # (S,)
        self.starts = np.concatenate([[0], self.ends[:-1]]).astype(np.int64)  # (S,)
        self.planned = int(self.flat.size - s)  # one target per click after a session's first
        n = min(batch_size, s)
        self.pos, self.end = self.starts[:n].copy(), self.ends[:n].copy()  # (n,) current click, session end
        self.following = n  # the next session to start

    @property
    def width(self) -> int:
        return int(self.pos.size)

    def clicks(self) -> tuple[np.ndarray, np.ndarray]:
        """(current clicks (n,), next clicks (n,))"""
        return self.flat[self.pos], self.flat[self.pos + 1]

    def advance(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Move on one click: (lanes that started a new session, which lanes stay — None: all of them)."""
        self.pos += 1
        done = np.flatnonzero(self.pos + 1 >= self.end)  # no next click left in the lane's session
        if not done.size:
            return done, None
        fresh = np.arange(self.following, min(self.following + done.size, self.starts.size))
        self.following += fresh.size
        refill, drop = done[: fresh.size], done[fresh.size :]
        self.pos[refill], self.end[refill] = self.starts[fresh], self.ends[fresh]
        if not drop.size:
            return refill, None
        keep = np.setdiff1d(np.arange(self.pos.size), drop)  # no sessions left for the dropped lanes
        self.pos, self.end = self.pos[keep], self.end[keep]
        return refill, keep


class SessionParallelEpochs:
    """GRU4Rec's official training scheme (Hidasi et al. 2016; the official PyTorch code), for `fit_neural`.

    ``batch_size`` lanes each read one session at a time, in the order given (date order in the SR-GNN folders, as
    the official code sorts them): every step feeds each lane's current click and scores its next one, the lanes
    carrying their GRU state from step to step — backpropagated through that one step only (the state is detached)
    — and a lane whose session ends starts the next one from a zero state; lanes are dropped when no sessions are
    left. The columns of a step are the lanes' targets plus ``n_sample`` items drawn by popularity^``sample_alpha``;
    BPR-max (or cross-entropy) takes every other column as a negative, as the official code does, summed over
    the lanes and divided by ``batch_size``. The optimiser is Adagrad with momentum (`AdagradMomentum`), sparse
    on the item table."""

    def __init__(self, model: GRU4Rec) -> None:
        self.model = model

    def optimizer(self, config: TrainConfig) -> torch.optim.Optimizer:
        if config.weight_decay > 0:
            raise ConfigError("GRU4Rec scheme='session-parallel' trains without weight decay (as the official code)")
        return AdagradMomentum(self.model.net.parameters(), lr=config.lr, momentum=self.model.config.momentum)

    def run_epoch(
        self, opt: torch.optim.Optimizer, units: Examples, config: TrainConfig, out_of_time: Callable[[], bool]
    ) -> tuple[float, int, bool, int]:
        model, c = self.model, self.model.config
        net = model.net
        assert isinstance(net, _ParallelNet)
        dev = model.device
        lanes = Lanes(units, config.batch_size)
        state = torch.zeros(lanes.width, c.hidden, device=dev)
        total, count = 0.0, 0
        bf16 = bool(config.bf16)
        bar = tqdm(total=lanes.planned, disable=not config.progress, desc="epoch", unit="click", mininterval=2.0)
        out = False
        steps = 0
        while lanes.width:
            if steps % 50 == 0 and out_of_time():
                out = True
                break
            now, nxt = lanes.clicks()
            items, targets = torch.from_numpy(now).to(dev), torch.from_numpy(nxt).to(dev)  # (n,) each
            columns = torch.cat([targets, model.draw_samples(c.n_sample).to(dev)])  # (C,)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                state = net.step(items, state.detach())  # (n, H)
                scores = net.scores(state, columns).float()  # (n, C)
            if c.elu_param > 0:
                scores = F.elu(scores, alpha=c.elu_param)
            rows = torch.arange(items.numel(), device=dev)
            if c.loss == "bpr-max":
                negative = torch.ones_like(scores, dtype=torch.bool)
                negative[rows, rows] = False  # every other column, copies of the target included (as official)
                loss = bpr_max_loss(scores, rows, negative, c.bpreg) * items.numel() / config.batch_size
            else:
                loss = F.cross_entropy(scores, rows, reduction="sum") / config.batch_size
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * config.batch_size  # summed over lanes: the record's mean is per click
            count += items.numel()
            steps += 1
            bar.update(items.numel())
            fresh, keep = lanes.advance()
            if fresh.size or keep is not None:
                state = state.detach().clone()
                state[torch.from_numpy(fresh).to(dev)] = 0.0  # a new session starts from a zero state
                if keep is not None:
                    state = state[torch.from_numpy(keep).to(dev)]
        bar.close()
        return total, count, out, lanes.planned


def bpr_max_loss(scores: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, bpreg: float) -> torch.Tensor:
    """Mean BPR-max over rows. scores (T, C); positive (T,) column of each row's target; negative (T, C) bool,
    the columns that count as negatives for that row."""
    pos = scores.gather(1, positive.view(-1, 1))  # (T, 1)
    weights = torch.softmax(scores.masked_fill(~negative, float("-inf")), dim=1)  # (T, C), 0 off the negatives
    hit = (weights * torch.sigmoid(pos - scores)).sum(1)  # (T,)
    reg = (weights * scores.square()).sum(1)  # (T,)
    return (-torch.log(hit + 1e-24) + bpreg * reg).mean()


class GRU4Rec(NeuralModel):
    name = "gru4rec"
    config_class = GRU4RecConfig
    net: _GRU4RecNet | _ParallelNet
    # official paramfile (hidasib/GRU4Rec paramfiles/diginetica_bprmax_shared_best.py): batch 128, 10 epochs.
    # Its optimiser is Adagrad with momentum (lr 0.05), whose rate does not carry to Adam; lr 3e-3, x0.7 per
    # epoch, is the Adam setting chosen on validation for this project (BENCHMARKS.md)
    train_defaults: ClassVar[dict[str, Any]] = {"lr": 3e-3, "batch_size": 128, "lr_decay": 0.7, "epochs": 10}

    def build_net(self) -> _GRU4RecNet | _ParallelNet:
        if self.config.scheme == "session-parallel":
            return _ParallelNet(self.config, self.n_items)
        return _GRU4RecNet(self.config, self.n_items)

    def epoch_runner(self) -> EpochRunner | None:
        return SessionParallelEpochs(self) if self.config.scheme == "session-parallel" else None

    def draw_samples(self, n: int) -> torch.Tensor:
        """n items drawn by training popularity^sample_alpha (the distribution `training_units` set up)."""
        u = self._rng.random(n)
        return torch.from_numpy(np.minimum(np.searchsorted(self._sample_cdf, u, side="right"), self.n_items))

    def training_units(self, train: Sequence[np.ndarray]) -> Examples:
        """One unit per session: prefix = session[:-1], target = its last click; every step is a target."""
        sessions = [s for s in train if len(s) >= 2]
        lens = np.asarray([len(s) - 1 for s in sessions], dtype=np.int64)
        offsets = np.zeros(lens.size + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        counts = np.bincount(np.concatenate(sessions), minlength=self.n_items + 1).astype(np.float64)
        counts[0] = 0.0
        probs = counts**self.config.sample_alpha
        probs[counts == 0] = 0.0
        self._sample_cdf = np.cumsum(probs / probs.sum())  # (N+1,) popularity^alpha sampling distribution
        self._log_p = torch.from_numpy(np.log(np.maximum(probs / probs.sum(), 1e-30)).astype(np.float32))
        self._rng = np.random.default_rng(0)
        return Examples(
            items=np.concatenate([s[:-1] for s in sessions]).astype(np.int64),
            offsets=offsets,
            targets=np.asarray([s[-1] for s in sessions], dtype=np.int64),
        )

    def _sampled_loss(self, q: torch.Tensor, table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """q (T, d), targets (T,): in-batch targets + n_sample shared popularity samples as the columns."""
        c = self.config
        samples = self.draw_samples(c.n_sample).to(targets.device)
        cols = torch.cat([targets, samples])  # (C,) C = T + n_sample
        scores = q @ table[cols].t()  # (T, C)
        if c.elu_param > 0:
            scores = F.elu(scores, alpha=c.elu_param)
        positive = torch.arange(targets.numel(), device=targets.device)  # row i's own target is column i
        negative = cols.view(1, -1) != targets.view(-1, 1)  # (T, C) copies of the target are no negatives
        if c.loss == "bpr-max":
            return bpr_max_loss(scores.float(), positive, negative, c.bpreg)
        duplicate = ~negative
        duplicate[positive, positive] = False
        if c.logq > 0:
            scores = scores - c.logq * self._log_p.to(cols.device)[cols].view(1, -1)
        return F.cross_entropy(scores.float().masked_fill(duplicate, float("-inf")), positive)

    def batch_loss(self, units: Examples, idx: np.ndarray, max_len: int | None) -> torch.Tensor:
        prefixes, targets = units.batch(idx, max_len)
        dev = self.device
        p = torch.from_numpy(prefixes).to(dev)  # (B, L)
        mask = p > 0  # (B, L)
        lengths = mask.sum(1)  # (B,)
        nxt = torch.zeros_like(p)  # (B, L) the next click after each position
        nxt[:, :-1] = p[:, 1:]
        nxt[torch.arange(p.size(0), device=dev), lengths - 1] = torch.from_numpy(targets).to(dev)
        net = self.net
        assert isinstance(net, _GRU4RecNet)  # the session-parallel net trains through SessionParallelEpochs
        table = net.item_table()  # (N+1, d)
        q = net.states(p, table)[mask]  # (T, d) every real position
        if self.config.negatives == "sampled":
            return self._sampled_loss(q, table, nxt[mask])
        return full_softmax_loss(q, table, nxt[mask], self.workspace)
