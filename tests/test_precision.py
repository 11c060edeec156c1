"""Hardware-aware precision (plugin.models.precision) and the trainer's loud failures (issue #11).

The dev box has avx512_bf16, so the float32 path is tested by forcing it and by monkeypatching the detector.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from models_fixtures import N_ITEMS, topic_sessions

import plugin.models.evaluation as evaluation
import plugin.models.precision as precision
import plugin.models.training as training
from plugin.errors import ConfigError
from plugin.models import get_model
from plugin.models.cli import main
from plugin.models.data import augment
from plugin.models.evaluation import evaluate
from plugin.models.gru4rec import GRU4Rec
from plugin.models.metrics import pessimistic_ranks, popularity_ranks
from plugin.models.srgnn import SRGNN
from plugin.models.stamp import STAMPModel
from plugin.models.training import TrainConfig

torch.set_num_threads(1)

X86 = (
    "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\nflags\t\t: fpu avx2\n"
)
ARM = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
OLD_X86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"


@pytest.fixture()
def no_native_bf16(monkeypatch):
    """A CPU without bf16 instructions, whatever this box has."""
    monkeypatch.setattr(precision, "native_bf16", lambda: (False, "no native bf16 CPU flag (test)"))


@pytest.fixture()
def native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda: (True, "CPU flags avx512_bf16 (test)"))


def test_cpu_flags_are_read_from_cpuinfo() -> None:
    assert precision.cpu_bf16_flags(X86) == ("avx512_bf16",)
    assert precision.cpu_bf16_flags(ARM) == ("bf16",)
    assert precision.cpu_bf16_flags(OLD_X86) == ()
    assert precision.cpu_bf16_flags("") == ()


def test_auto_follows_the_detector(no_native_bf16) -> None:
    p = precision.resolve_precision("auto")
    assert (p.bf16, p.name, p.requested) == (False, "fp32", "auto") and "no native bf16" in p.reason
    forced = precision.resolve_precision("bf16")
    assert forced.bf16 is True and forced.native is False  # asked for: obeyed; the trainer warns
    assert precision.resolve_precision("fp32").to_dict()["name"] == "fp32"


def test_auto_picks_bf16_where_native(native_bf16) -> None:
    assert precision.resolve_precision("auto").bf16 is True
    assert precision.resolve_precision("fp32").bf16 is False


def test_unknown_precision_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="Valid precisions are: auto, bf16, fp32"):
        precision.resolve_precision("fp16")


def _spy_autocast(model, seen: list[bool]) -> None:
    inner = model.batch_loss

    def batch_loss(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu"))
        return inner(*args, **kwargs)

    model.batch_loss = batch_loss


@pytest.mark.parametrize(("fixture", "expect_bf16"), [("no_native_bf16", False), ("native_bf16", True)])
def test_trainer_autocasts_only_where_bf16_is_native(fixture: str, expect_bf16: bool, request, monkeypatch) -> None:
    request.getfixturevalue(fixture)
    screened: list[bool] = []
    real_screen = evaluation._screened_batch
    monkeypatch.setattr(evaluation, "_screened_batch", lambda *a: screened.append(True) or real_screen(*a))
    model, seen = get_model("stamp", dim=8), []
    model.build_net = _wrap_build(model, seen)
    report = model.fit(
        topic_sessions(60),
        N_ITEMS,
        valid=augment(topic_sessions(10, seed=1)),
        train_config=TrainConfig(epochs=1, batch_size=64, progress=False),
    )  # bf16=None: auto
    assert seen and set(seen) == {expect_bf16}
    assert report["precision"]["name"] == ("bf16" if expect_bf16 else "fp32")
    assert bool(screened) is expect_bf16  # the validation's bf16 screen follows the same decision


def _wrap_build(model, seen: list[bool]):
    build = model.build_net

    def wrapped():
        net = build()
        _spy_autocast(model, seen)
        return net

    return wrapped


def test_evaluate_screens_in_bf16_only_where_native(no_native_bf16, monkeypatch) -> None:
    monkeypatch.setattr(evaluation, "_screened_batch", lambda *a: pytest.fail("bf16 screen on a non-bf16 CPU"))
    model = get_model("stamp", dim=8)
    model.fit(topic_sessions(40), N_ITEMS, train_config=TrainConfig(epochs=1, batch_size=64, progress=False))
    r = evaluate(model, augment(topic_sessions(10, seed=1)), ks=(20,))
    assert 0.0 <= r.metrics["HR@20"] <= 1.0


def test_popularity_ranks_equal_pop_models_pessimistic_ranks() -> None:
    sessions = topic_sessions(80)
    valid = augment(topic_sessions(20, seed=2))
    pop = get_model("pop")
    pop.fit(sessions, N_ITEMS)
    prefixes, targets = valid.batch(np.arange(len(valid)))
    expected = pessimistic_ranks(torch.from_numpy(pop.score(prefixes)), torch.from_numpy(targets)).numpy()
    counts = np.bincount(np.concatenate(sessions), minlength=N_ITEMS + 1)
    np.testing.assert_array_equal(popularity_ranks(counts, valid.targets), expected)


def _popular_first_data() -> tuple[list[np.ndarray], object]:
    """Item 1 is in every training session and is every validation target: POP ranks it first (MRR 1)."""
    rng = np.random.default_rng(0)
    train = [np.asarray([1, *rng.integers(2, N_ITEMS + 1, size=3)], dtype=np.int64) for _ in range(60)]
    valid = augment([np.asarray([int(rng.integers(2, N_ITEMS + 1)), 1], dtype=np.int64) for _ in range(30)])
    return train, valid


def test_a_run_not_above_pop_says_so(caplog) -> None:
    train, valid = _popular_first_data()
    model = get_model("stamp", dim=8)
    report = model.fit(
        train,
        N_ITEMS,
        valid=valid,
        train_config=TrainConfig(epochs=1, batch_size=64, lr=1e-6, progress=False, bf16=False),
    )
    assert report["pop_valid"]["MRR@20"] == 1.0
    assert report["first_valid_beats_pop"] is False
    assert any("NOT LEARNING" in w for w in report["warnings"])
    assert any("NOT LEARNING" in r.message and r.levelname == "WARNING" for r in caplog.records)


def test_a_run_above_pop_has_no_warning() -> None:
    model = get_model("stamp", dim=8)
    report = model.fit(
        topic_sessions(120),
        N_ITEMS,
        valid=augment(topic_sessions(20, seed=1)),
        train_config=TrainConfig(epochs=2, batch_size=32, lr=1e-2, progress=False, bf16=False),
    )
    assert report["first_valid_beats_pop"] is True and report["warnings"] == []
    assert report["full_epochs"] == 2


class _Clock:
    """perf_counter that advances one second a call: a deterministic slow CPU."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_a_time_budget_inside_the_first_epoch_says_so(monkeypatch) -> None:
    monkeypatch.setattr(training.time, "perf_counter", _Clock())
    model = get_model("stamp", dim=8)
    sessions = topic_sessions(100)  # ~250 units at batch 1: the epoch needs far more than the budget
    report = model.fit(
        sessions,
        N_ITEMS,
        valid=augment(topic_sessions(10, seed=1)),
        train_config=TrainConfig(epochs=3, batch_size=1, time_budget_s=60, progress=False, bf16=False),
    )
    assert report["stopped"] == "time budget" and report["full_epochs"] == 0
    assert any("epoch 1" in w and "more than the time budget" in w for w in report["warnings"])  # early, by pace
    assert any("no full epoch was trained" in w for w in report["warnings"])
    assert report["epochs"][0]["units"] < sum(len(s) - 1 for s in sessions)


def test_each_neural_model_has_its_papers_defaults() -> None:
    assert STAMPModel.default_train_config().lr == 5e-3 and STAMPModel.default_train_config().batch_size == 512
    s = SRGNN.default_train_config()
    assert (s.lr, s.batch_size, s.weight_decay, s.lr_decay, s.lr_decay_every) == (1e-3, 100, 1e-5, 0.1, 3)
    assert GRU4Rec.default_train_config().batch_size == 128
    assert STAMPModel.default_train_config(lr=0.1).lr == 0.1  # explicit settings win


def _folder(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "train_sessions.txt").write_text("\n".join(" ".join(map(str, s)) for s in topic_sessions(120)) + "\n")
    rows = ["session_idx\tprefix\ttarget"] + [f"{j}\t{s[0]}\t{s[1]}" for j, s in enumerate(topic_sessions(10, seed=3))]
    (d / "test_examples.tsv").write_text("\n".join(rows) + "\n")
    return d


def test_cli_uses_the_models_defaults_and_reports_the_precision(tmp_path: Path, no_native_bf16, capsys) -> None:
    out = tmp_path / "m"
    argv = [
        "train",
        "--model",
        "stamp",
        "--data",
        str(_folder(tmp_path)),
        "--out",
        str(out),
        "--quiet",
        "--epochs",
        "1",
        "--option",
        "dim=8",
    ]
    assert main(argv) == 0
    report = json.loads((out / "train_report.json").read_text())
    assert report["train_config"]["lr"] == 5e-3 and report["train_config"]["epochs"] == 1
    assert report["report"]["precision"]["name"] == "fp32"
    assert "no native bf16" in report["report"]["precision"]["reason"]
    assert "precision fp32" in capsys.readouterr().out
    assert main([*argv, "--precision", "bf16", "--lr", "0.02"]) == 0
    report = json.loads((out / "train_report.json").read_text())
    assert report["train_config"]["lr"] == 0.02 and report["report"]["precision"]["name"] == "bf16"
    assert "bf16 forced on a CPU without native bf16" in capsys.readouterr().err
