"""STAMP over item-ID embeddings (Liu et al., KDD 2018), plus a hybrid content + ID item space.

The maths is `plugin.stamp.STAMP` (the same module the plugin runs over text embeddings); this file only
chooses the item space:

* ``mode="id"``: item j's vector is a learned embedding e_j (the paper's setting);
* ``mode="hybrid"``: e_j + P c_j, where c_j is a fixed content embedding of item j (e.g. its text embedding,
  given to `fit` as ``content``) and P a learned linear projection — items share what their content says,
  and the ID part learns what it does not.

The query q = h_s * h_t scores item j as q . x_j over the whole catalogue (FAISS inner product in serving).
Init follows the official code: embeddings N(0, 0.002), weights N(0, 0.05).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DimensionMismatchError
from ..stamp import STAMP, STAMPConfig
from ._neural import ItemQueryNet, NeuralModel
from .data import Examples
from .training import EpochRecord, TrainConfig

__all__ = ["STAMPModel", "STAMPModelConfig"]

_MODES = ("id", "hybrid")


@dataclass(frozen=True)
class STAMPModelConfig:
    dim: int = 100
    mode: str = "id"
    content_dim: int = 0  # width of the content matrix in hybrid mode (set by fit)
    emb_std: float = 0.002
    init_std: float = 0.05

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ConfigError("STAMPModelConfig.dim must be >= 1")
        if self.mode not in _MODES:
            raise ConfigError(f"STAMP mode {self.mode!r} is not valid. Valid modes are: {', '.join(_MODES)}")


class _STAMPNet(ItemQueryNet):
    content: torch.Tensor  # a buffer, hybrid mode only

    def __init__(self, config: STAMPModelConfig, n_items: int) -> None:
        super().__init__()
        d = config.dim
        self.emb = nn.Embedding(n_items + 1, d, padding_idx=0)
        nn.init.normal_(self.emb.weight, 0.0, config.emb_std)
        with torch.no_grad():
            self.emb.weight[0].zero_()
        self.stamp = STAMP(STAMPConfig(dim=d, init_std=config.init_std))
        self.proj: nn.Linear | None = None
        if config.mode == "hybrid":
            self.register_buffer("content", torch.zeros(n_items + 1, config.content_dim))  # (N+1, c), row 0 = 0
            self.proj = nn.Linear(config.content_dim, d, bias=False)
            nn.init.normal_(self.proj.weight, 0.0, config.init_std)

    def item_table(self) -> torch.Tensor:
        table = self.emb.weight  # (N+1, d)
        if self.proj is not None:
            table = table + self.proj(self.content)  # (N+1, d)
        return table

    def query(self, prefixes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        items = table[prefixes]  # (B, L, d)
        return self.stamp(items, prefixes > 0).query  # (B, d)


class STAMPModel(NeuralModel):
    name = "stamp"
    config_class = STAMPModelConfig
    # the authors' logged DIGINETICA run (uestcnlp/STAMP output/text/mlp_totalrnnv38-cikm16-*.out): Adam,
    # init_lr 0.005, batch_size 512, update_lr False (no decay), nepoch 10
    train_defaults: ClassVar[dict[str, Any]] = {"lr": 5e-3, "batch_size": 512, "lr_decay": 1.0, "epochs": 10}

    def fit(
        self,
        train: Sequence[np.ndarray],
        n_items: int,
        valid: Examples | None = None,
        item_keys: Sequence[str] | None = None,
        train_config: TrainConfig | None = None,
        warm_start: bool = False,
        on_epoch: Callable[[EpochRecord], bool] | None = None,
        *,
        content: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """``content`` (hybrid mode only): (n_items, c) float matrix, row j = content vector of item j+1."""
        if self.config.mode == "hybrid" and not (warm_start and content is None):
            if content is None or content.ndim != 2 or content.shape[0] != n_items:
                shape = None if content is None else content.shape
                raise DimensionMismatchError(f"hybrid STAMP needs content of shape ({n_items}, c), got {shape}")
            if self.config.content_dim != content.shape[1]:
                self.config = STAMPModelConfig(**{**self.config.__dict__, "content_dim": int(content.shape[1])})
            self._content = np.asarray(content, dtype=np.float32)
        elif content is not None:
            raise ConfigError("content is only used with mode='hybrid'")
        return super().fit(train, n_items, valid, item_keys, train_config, warm_start=warm_start, on_epoch=on_epoch)

    def build_net(self) -> _STAMPNet:
        net = _STAMPNet(self.config, self.n_items)
        content = getattr(self, "_content", None)
        if self.config.mode == "hybrid" and content is not None:
            with torch.no_grad():
                net.content[1:] = torch.from_numpy(content)
        return net
