"""Shared synthetic data for the session-model tests (two disjoint topics with a known answer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plugin.models.data import augment

N_ITEMS = 20  # items 1..10 are topic A, 11..20 topic B
TOPIC_A = set(range(1, 11))
TOPIC_B = set(range(11, 21))


def topic_sessions(n: int = 200, seed: int = 0) -> list[np.ndarray]:
    """Sessions that stay inside one topic; within a topic clicks walk i -> i+1 (mod 10) most of the time."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        base = 1 if k % 2 == 0 else 11
        length = int(rng.integers(2, 7))
        start = int(rng.integers(0, 10))
        steps = [start]
        for _ in range(length - 1):
            steps.append((steps[-1] + (1 if rng.random() < 0.8 else int(rng.integers(0, 10)))) % 10)
        out.append(np.asarray([base + s for s in steps], dtype=np.int64))
    return out


@pytest.fixture(scope="session")
def sessions() -> list[np.ndarray]:
    torch.set_num_threads(1)
    return topic_sessions()


@pytest.fixture(scope="session")
def valid_examples():
    return augment(topic_sessions(40, seed=1))
