from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from models_fixtures import topic_sessions

from plugin.models import load_model
from plugin.models.cli import main

torch.set_num_threads(1)


@pytest.fixture()
def srgnn_folder(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    sessions = topic_sessions(120)
    (d / "train_sessions.txt").write_text("\n".join(" ".join(map(str, s)) for s in sessions) + "\n")
    rows = ["session_idx\tprefix\ttarget"]
    for j, s in enumerate(topic_sessions(10, seed=3)):
        for n in range(len(s) - 1, 0, -1):
            rows.append(f"{j}\t{' '.join(map(str, s[:n]))}\t{s[n]}")
    (d / "test_examples.tsv").write_text("\n".join(rows) + "\n")
    return d


@pytest.mark.parametrize("model", ["vsknn", "stamp"])
def test_train_then_evaluate_json(model: str, srgnn_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / model
    extra = ["--epochs", "2", "--batch-size", "32", "--option", "dim=8", "--no-bf16"] if model == "stamp" else []
    assert main(["train", "--model", model, "--data", str(srgnn_folder), "--out", str(out), "--quiet", *extra]) == 0
    report = json.loads((out / "train_report.json").read_text())
    assert report["model"] == model and report["n_items"] == 20
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--data", str(srgnn_folder), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["examples"] > 0 and 0.0 <= result["metrics"]["HR@20"] <= 1.0
    assert load_model(out).index_of("7") == 7  # SR-GNN folders keep their ids as item keys


def test_unknown_model_is_a_clean_error(srgnn_folder: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", "--model", "narm", "--data", str(srgnn_folder), "--out", str(tmp_path / "x")]) == 2
    assert "Valid names are" in capsys.readouterr().err


def test_evaluate_refuses_a_model_of_another_catalogue(srgnn_folder: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", "--model", "pop", "--data", str(srgnn_folder), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    small = tmp_path / "small"
    small.mkdir()
    (small / "train_sessions.txt").write_text("1 2\n")
    (small / "test_examples.tsv").write_text("session_idx\tprefix\ttarget\n0\t1\t2\n")
    assert main(["evaluate", "--model", str(tmp_path / "p"), "--data", str(small)]) == 2
    assert "knows 20 items" in capsys.readouterr().err
    np.testing.assert_array_equal(load_model(tmp_path / "p").score(np.array([[1]])).shape, (1, 21))


def test_init_continues_a_saved_neural_model(srgnn_folder: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--data", str(srgnn_folder), "--quiet", "--batch-size", "32", "--option", "dim=8", "--no-bf16"]
    assert main(["train", "--model", "stamp", "--out", str(first), "--epochs", "1", *common]) == 0
    assert (
        main(["train", "--model", "stamp", "--out", str(second), "--epochs", "1", "--init", str(first), *common]) == 0
    )
    epochs = json.loads((second / "train_report.json").read_text())["report"]["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1]  # epoch 0 = the loaded weights, validated first
    assert (
        not np.array_equal(load_model(first).item_vectors(), load_model(second).item_vectors())
        or json.loads((second / "train_report.json").read_text())["report"]["best_epoch"] == 0
    )
