"""Every session model in plugin.models against the one SessionModel contract (tests/model_contract.py)."""

from __future__ import annotations

import sys

from model_contract import SessionModelContract

from plugin.models import MODEL_NAMES
from plugin.models.training import TrainConfig

# 20 epochs of a few batches: enough for the two topics, seconds per model on one thread
_NEURAL = TrainConfig(epochs=20, batch_size=64, lr=1e-2, progress=False, bf16=False)
_SAMPLED = {"dim": 16, "hidden": 16, "negatives": "sampled", "n_sample": 6}


class TestPOP(SessionModelContract):
    name = "pop"
    learns_topics = False


class TestSPOP(SessionModelContract):
    name = "spop"
    learns_topics = False


class TestMarkov(SessionModelContract):
    name = "markov"
    topic_top = 5


class TestItemKNN(SessionModelContract):
    name = "itemknn"
    topic_top = 5


class TestVSKNN(SessionModelContract):
    name = "vsknn"
    topic_top = 5


class TestSTAMP(SessionModelContract):
    name = "stamp"
    options = {"dim": 16}
    train = TrainConfig(**{**_NEURAL.__dict__, "lr": 3e-3})  # at 1e-2 STAMP memorises this tiny set


class TestGRU4Rec(SessionModelContract):
    name = "gru4rec"
    options = {"dim": 16, "hidden": 16}
    train = _NEURAL


class TestGRU4RecBPRMax(SessionModelContract):
    name = "gru4rec"
    options = {**_SAMPLED, "loss": "bpr-max", "elu_param": 1.0, "bpreg": 0.5}
    train = _NEURAL


class TestGRU4RecSampledCE(SessionModelContract):
    name = "gru4rec"
    options = {**_SAMPLED, "logq": 1.0}
    train = _NEURAL


class TestSRGNN(SessionModelContract):
    name = "srgnn"
    options = {"dim": 16}
    train = _NEURAL


class TestCORE(SessionModelContract):
    name = "core"
    options = {"dim": 16, "inner": 32}
    train = _NEURAL


class TestCOREAve(SessionModelContract):
    name = "core"
    options = {"dim": 16, "encoder": "ave"}
    train = _NEURAL


def test_every_registered_model_runs_the_contract() -> None:
    here = sys.modules[__name__]
    covered = {
        cls.name
        for cls in vars(here).values()
        if isinstance(cls, type) and issubclass(cls, SessionModelContract) and cls is not SessionModelContract
    }
    assert covered == set(MODEL_NAMES)
