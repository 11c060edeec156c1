"""Each neural model learns with its published defaults in float32 (issue #11): a few hundred optimiser steps
beat POP on held-out examples, on a generated slice (always) and on a small real DIGINETICA slice (when
../shared/data is present, or SHARED_DATA points at it).

Only the epoch count is set here, to keep the steps to a few hundred; lr, batch size, decay and the model's own
options are the defaults a user gets. The trainer's own POP check must agree (``first_valid_beats_pop``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from plugin.models import get_model
from plugin.models.data import augment, load_srgnn_folder
from plugin.models.evaluation import evaluate
from plugin.models.metrics import popularity_ranks, rank_metrics

torch.set_num_threads(1)

DATA = Path(os.environ.get("SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
NEURAL = ("stamp", "gru4rec", "srgnn", "core")
TARGET_STEPS = 300


def markov_slice(n_items: int = 400, n_sessions: int = 4000, seed: int = 0) -> list[np.ndarray]:
    """Sessions from a sparse Markov chain over Zipf-popular items: each item has three successors (taken with
    probability 0.6/0.3/0.1), so the next click depends on the last one and POP (global counts) is weak."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    successors = rng.integers(1, n_items + 1, size=(n_items + 1, 3))  # (N+1, 3)
    out = []
    for _ in range(n_sessions):
        session = [int(rng.choice(n_items, p=popularity)) + 1]
        for _ in range(int(rng.integers(1, 7))):
            session.append(int(successors[session[-1], rng.choice(3, p=[0.6, 0.3, 0.1])]))
        out.append(np.asarray(session, dtype=np.int64))
    return out


def diginetica_slice(n_sessions: int = 24000, n_items: int = 1500) -> tuple[list[np.ndarray], int]:
    """The first training sessions of the SR-GNN DIGINETICA split, restricted to their ``n_items`` most clicked
    items (renumbered 1..n_items by popularity; other clicks dropped, sessions of 2+ clicks kept)."""
    data = load_srgnn_folder(DATA / "diginetica_srgnn")
    sessions = data.train_sessions[:n_sessions]
    counts = np.bincount(np.concatenate(sessions), minlength=data.n_items + 1)
    counts[0] = 0
    keep = np.argsort(-counts, kind="stable")[:n_items]  # (n_items,) original ids, most clicked first
    new_id = np.zeros(data.n_items + 1, dtype=np.int64)
    new_id[keep] = np.arange(1, n_items + 1)
    out = [s for s in (new_id[s][new_id[s] > 0] for s in sessions) if s.size >= 2]
    return out, n_items


def _steps_per_epoch(model_name: str, sessions: list[np.ndarray], batch_size: int) -> int:
    units = len(sessions) if model_name == "gru4rec" else sum(s.size - 1 for s in sessions)
    return math.ceil(units / batch_size)


def _learns(model_name: str, sessions: list[np.ndarray], n_items: int) -> None:
    cut = int(0.9 * len(sessions))  # held out: the last 10% of sessions (date order), as the CLI validates
    train, held = sessions[:cut], augment(sessions[cut:])
    model = get_model(model_name)
    defaults = type(model).default_train_config()
    epochs = max(1, round(TARGET_STEPS / _steps_per_epoch(model_name, train, defaults.batch_size)))
    config = type(model).default_train_config(epochs=epochs, patience=epochs, bf16=False, progress=False)
    report = model.fit(train, n_items, valid=held, train_config=config)
    assert report["precision"]["name"] == "fp32"
    assert report["first_valid_beats_pop"] is True, report["warnings"]
    counts = np.bincount(np.concatenate(train), minlength=n_items + 1)
    pop = rank_metrics(popularity_ranks(counts, held.targets), ks=(20,))
    got = evaluate(model, held, ks=(20,), beyond_accuracy=False, screen=False).metrics
    # far above POP, not merely above it: the defaults reach MRR@20 17-35x POP's here (BENCHMARKS.md), STAMP
    # with the old lr 1e-3 only 3.8x (real slice) and 5.7x (generated), which this bound rejects
    assert got["HR@20"] > 2 * pop["HR@20"], (model_name, got, pop)
    assert got["MRR@20"] > 10 * pop["MRR@20"], (model_name, got, pop)


@pytest.mark.slow
@pytest.mark.parametrize("model_name", NEURAL)
def test_defaults_beat_pop_on_a_generated_slice(model_name: str) -> None:
    _learns(model_name, markov_slice(), 400)


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "diginetica_srgnn").is_dir(), reason="../shared/data is not present")
@pytest.mark.parametrize("model_name", NEURAL)
def test_defaults_beat_pop_on_a_real_diginetica_slice(model_name: str) -> None:
    sessions, n_items = diginetica_slice()
    _learns(model_name, sessions, n_items)
