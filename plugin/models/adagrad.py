"""Adagrad with momentum, the optimiser of GRU4Rec's official code (Hidasi et al.), dense and sparse.

Per parameter: ``acc += g**2``; ``step = lr * g / sqrt(acc + eps)``; with momentum, ``mom = momentum * mom + step``
and ``p -= mom``, else ``p -= step``. A sparse gradient (an ``nn.Embedding(sparse=True)`` lookup: the item table,
of which a step touches a few thousand rows of tens of thousands) updates only its rows' accumulators and momenta —
the official code's choice, and what keeps a step's cost independent of the catalogue: a row that no step touches
keeps its momentum, as there. Duplicate rows in one sparse gradient are summed first (the update is not linear in
the gradient).

GRU4Rec's per-dataset settings were tuned with this optimiser (learning rate ~0.05, momentum 0–0.3); they do not
carry to Adam, which `plugin.models.training` uses for everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..errors import ConfigError

__all__ = ["AdagradMomentum"]


class AdagradMomentum(torch.optim.Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 0.05, momentum: float = 0.0, eps: float = 1e-6) -> None:
        if not lr > 0 or not 0.0 <= momentum < 1.0 or not eps > 0:
            raise ConfigError(f"AdagradMomentum needs lr > 0, 0 <= momentum < 1, eps > 0; got {lr}, {momentum}, {eps}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "eps": eps})

    def _state(self, p: torch.Tensor, momentum: float) -> dict[str, torch.Tensor]:
        state = self.state[p]
        if not state:
            state["acc"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if momentum > 0:
                state["mom"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, eps = group["lr"], group["momentum"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._state(p, momentum)
                grad = p.grad
                if grad.is_sparse:
                    grad = grad.coalesce()  # one row per index: the update is not linear in the gradient
                    rows, values = grad.indices()[0], grad.values()
                    acc = state["acc"][rows] + values.square()  # (R, ...)
                    state["acc"].index_copy_(0, rows, acc)
                    step = values.div(acc.add_(eps).sqrt_()).mul_(lr)
                    if momentum > 0:
                        step = state["mom"][rows].mul_(momentum).add_(step)
                        state["mom"].index_copy_(0, rows, step)
                    p.index_add_(0, rows, step, alpha=-1.0)
                    continue
                state["acc"].addcmul_(grad, grad)
                step = grad.div(state["acc"].add(eps).sqrt_()).mul_(lr)
                if momentum > 0:
                    step = state["mom"].mul_(momentum).add_(step)
                p.sub_(step)
        return loss
