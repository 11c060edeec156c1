"""``--device``: the trainer and the evaluator run the neural models where they are told, and refuse cleanly what
the machine cannot do. CPU-only (CUDA is faked absent, so the answers are the same on a GPU box); the CUDA run
itself is in BENCHMARKS.md ("Trained on a GPU")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from models_fixtures import N_ITEMS, sessions, topic_sessions, valid_examples  # noqa: F401

from plugin.errors import ConfigError
from plugin.models import get_model, load_model
from plugin.models.cli import main
from plugin.models.device import resolve_device
from plugin.models.training import TrainConfig

torch.set_num_threads(1)


@pytest.fixture()
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture()
def srgnn_folder(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "train_sessions.txt").write_text("\n".join(" ".join(map(str, s)) for s in topic_sessions(120)) + "\n")
    rows = ["session_idx\tprefix\ttarget"]
    for j, s in enumerate(topic_sessions(10, seed=3)):
        rows += [f"{j}\t{' '.join(map(str, s[:n]))}\t{s[n]}" for n in range(len(s) - 1, 0, -1)]
    (d / "test_examples.tsv").write_text("\n".join(rows) + "\n")
    return d


def test_resolve_device_words(no_cuda: None) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" Auto ") == torch.device("cpu")  # no CUDA here: auto falls back
    for bad in ("tpu", "cuda:x", ""):
        with pytest.raises(ConfigError, match="Valid devices are: cpu, cuda, auto"):
            resolve_device(bad)


@pytest.mark.parametrize("word", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_a_clean_error(word: str, no_cuda: None) -> None:
    with pytest.raises(ConfigError, match="CUDA is not available here.*Valid devices here are: cpu, auto"):
        resolve_device(word)


def test_trainer_refuses_cuda_without_cuda_before_training(no_cuda: None, sessions) -> None:  # noqa: F811
    m = get_model("srgnn", dim=8)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        m.fit(
            sessions,
            N_ITEMS,
            train_config=TrainConfig(epochs=1, batch_size=64, bf16=False, progress=False, device="cuda"),
        )


@pytest.mark.parametrize("model", ["srgnn", "gru4rec"])
def test_cli_train_and_evaluate_on_cpu_device(
    model: str, srgnn_folder: Path, tmp_path: Path, capsys, no_cuda: None
) -> None:
    out = tmp_path / model
    args = [
        "train",
        "--model",
        model,
        "--data",
        str(srgnn_folder),
        "--out",
        str(out),
        "--quiet",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--option",
        "dim=8",
        "--device",
        "auto",
    ]
    assert main(args) == 0
    report = json.loads((out / "train_report.json").read_text())
    assert report["device"] == "cpu" and report["report"]["best_epoch"] == 1
    capsys.readouterr()
    assert (
        main(["evaluate", "--model", str(out), "--data", str(srgnn_folder), "--json", "--quiet", "--device", "cpu"])
        == 0
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["device"] == "cpu" and result["examples"] > 0


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_cli_cuda_without_cuda_exits_2_and_writes_nothing(
    command: str, srgnn_folder: Path, tmp_path: Path, capsys, no_cuda: None
) -> None:
    out = tmp_path / "never"
    args = ["train", "--model", "srgnn", "--out", str(out)] if command == "train" else ["evaluate", "--model", str(out)]
    assert main([*args, "--data", str(srgnn_folder), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: device 'cuda': CUDA is not available") and "Traceback" not in err
    assert not out.exists()


def test_moving_a_model_keeps_its_scores_and_saves_cpu_arrays(sessions, tmp_path: Path) -> None:  # noqa: F811
    m = get_model("srgnn", dim=8)
    m.fit(sessions, N_ITEMS, train_config=TrainConfig(epochs=1, batch_size=64, bf16=False, progress=False))
    prefixes = np.array([[1, 2, 3], [11, 12, 0]])
    before = m.score(prefixes)
    assert m.to("cpu") is m and m.device == torch.device("cpu")
    np.testing.assert_array_equal(m.score(prefixes), before)
    m.save(tmp_path / "m")
    np.testing.assert_array_equal(load_model(tmp_path / "m").score(prefixes), before)


def test_on_epoch_sees_every_epoch_and_stops_training(sessions) -> None:  # noqa: F811
    seen: list[int] = []

    def stop_after_two(rec) -> bool:
        seen.append(rec.epoch)
        return rec.epoch == 2

    m = get_model("gru4rec", dim=8, hidden=8)
    report = m.fit(
        sessions,
        N_ITEMS,
        train_config=TrainConfig(epochs=5, batch_size=64, bf16=False, progress=False),
        on_epoch=stop_after_two,
    )
    assert seen == [1, 2] and report["stopped"] == "on_epoch" and len(report["epochs"]) == 2


def _retrain_full():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "retrain_full.py"
    spec = importlib.util.spec_from_file_location("bench_retrain_full", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_retrain_full_stops_at_the_validation_choice_and_tests_that_epoch(srgnn_folder: Path, tmp_path: Path) -> None:
    valid = tmp_path / "valid"
    valid.mkdir()
    (valid / "train_report.json").write_text(json.dumps({"report": {"best_epoch": 2}}))  # a finished validation run
    out, result = tmp_path / "full", tmp_path / "full.json"
    assert (
        _retrain_full().main(
            [
                "--model",
                "srgnn",
                "--data",
                str(srgnn_folder),
                "--out",
                str(out),
                "--quiet",
                "--epochs",
                "6",
                "--batch-size",
                "32",
                "--option",
                "dim=8",
                "--no-bf16",
                "--device",
                "cpu",
                "--select-from",
                str(valid),
                "--json-out",
                str(result),
            ]
        )
        == 0
    )
    r = json.loads(result.read_text())
    assert r["chosen_epoch"] == 2 and [e["epoch"] for e in r["epochs"]] == [1, 2] and r["stopped"] == "on_epoch"
    assert r["units_per_epoch"] == r["epochs"][0]["units"]  # the whole training split, not 90%
    assert r["test"]["examples"] > 0 and load_model(out).n_items == N_ITEMS
