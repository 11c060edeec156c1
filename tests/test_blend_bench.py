"""bench/blend.py's score blend: the weight grid and the two mixes (probabilities, log-probabilities)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench import blend


class _CountLike:
    """A non-neural model: non-negative scores per item, -inf on the padding column (as V-SKNN's)."""

    n_items = 3

    def __init__(self, rows: list[list[float]]) -> None:
        self.rows = np.asarray(rows, dtype=np.float32)

    def score(self, prefixes: np.ndarray) -> np.ndarray:
        out = np.concatenate([np.full((len(self.rows), 1), -np.inf, dtype=np.float32), self.rows], axis=1)
        return out[: len(prefixes)]


def test_simplex_grid_covers_the_simplex_once() -> None:
    grid = blend.simplex_grid(3, 0.5)
    assert sorted(grid) == sorted(
        [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.5, 0.5, 0.0), (0.5, 0.0, 0.5), (0.0, 0.5, 0.5)]
    )
    assert len(blend.simplex_grid(5, 0.2)) == 126  # C(9, 4)


def test_linear_and_log_mix_rank_differently() -> None:
    # model A is sure of item 1, model B spreads between items 1 and 2; item 3 is A's second guess but B's zero
    a = _CountLike([[0.6, 0.0, 0.4]])
    b = _CountLike([[0.5, 0.5, 0.0]])
    prefixes = np.zeros((1, 2), dtype=np.int64)
    linear = blend.Blend([a, b], (0.5, 0.5), "linear").score_torch(prefixes)
    log = blend.Blend([a, b], (0.5, 0.5), "log").score_torch(prefixes)
    assert linear[0, 0] == float("-inf") and log[0, 0] == float("-inf")  # padding never ranks
    assert torch.allclose(linear[0, 1:], torch.tensor([0.55, 0.25, 0.20]))
    # log mix: an item one weighted model gives (almost) nothing sinks below one both find plausible
    assert torch.argmax(log[0, 1:]).item() == 0
    assert log[0, 2] > log[0, 3]  # items 2 and 3 each have one model's zero; 2's other chance (0.5) beats 3's (0.4)
    expected = 0.5 * np.log(np.array([0.6, 0.0, 0.4]) + blend.LOG_FLOOR) + 0.5 * np.log(
        np.array([0.5, 0.5, 0.0]) + blend.LOG_FLOOR
    )
    assert np.allclose(log[0, 1:].numpy(), expected, atol=1e-5)


def test_a_zero_weight_model_is_not_scored() -> None:
    class Exploding(_CountLike):
        def score(self, prefixes: np.ndarray) -> np.ndarray:
            raise AssertionError("a model with weight 0 must not be scored")

    a = _CountLike([[0.2, 0.3, 0.5]])
    out = blend.Blend([a, Exploding([[0.0, 0.0, 0.0]])], (1.0, 0.0), "log").score_torch(np.zeros((1, 1), np.int64))
    assert torch.argmax(out[0, 1:]).item() == 2


def test_weights_need_one_mix(tmp_path) -> None:
    with pytest.raises(SystemExit, match="one --mix"):
        blend._test_only(
            type("Args", (), {"weights": "1.0", "mix": "both", "models": ["m"], "out": str(tmp_path / "o")})(),
            None,
            [object()],
        )


def test_an_averaged_member_is_the_mean_of_its_models_distributions() -> None:
    a = _CountLike([[1.0, 1.0, 2.0]])  # distribution 0.25, 0.25, 0.5
    b = _CountLike([[0.0, 3.0, 1.0]])  # distribution 0, 0.75, 0.25
    prefixes = np.zeros((1, 2), dtype=np.int64)
    avg = blend.Average([a, b])
    dist = blend._distribution(avg, prefixes)
    assert torch.allclose(dist[0], torch.tensor([0.0, 0.125, 0.5, 0.375]))
    # as one blend member beside another, it weighs as one model: 0.5 * mean + 0.5 * c
    c = _CountLike([[0.0, 0.0, 1.0]])
    mixed = blend.Blend([avg, c], (0.5, 0.5), "linear").score_torch(prefixes)
    assert torch.allclose(mixed[0, 1:], torch.tensor([0.0625, 0.25, 0.6875]))


def test_an_averaged_member_needs_one_catalogue() -> None:
    other = _CountLike([[1.0]])
    other.n_items = 1
    with pytest.raises(SystemExit, match="one catalogue"):
        blend.Average([_CountLike([[1.0, 1.0, 1.0]]), other])


# -- review (2026-12-01) ---------------------------------------------------------------------------------------------


def test_device_cuda_without_cuda_is_refused_before_anything_loads(monkeypatch) -> None:
    # a count-model blend met the missing GPU only after refitting every member on 90 % (minutes on YOOCHOOSE)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def no_load(*a, **k):
        raise AssertionError("nothing is loaded for a device that cannot be used")

    monkeypatch.setattr(blend, "load_srgnn_folder", no_load)
    monkeypatch.setattr(blend, "_load_member", no_load)
    with pytest.raises(SystemExit, match="CUDA is not available"):
        blend.main(["--data", "d", "--models", "a", "b", "--out", "o", "--device", "cuda"])


def test_a_member_over_another_catalogue_is_refused(monkeypatch) -> None:
    # members over another catalogue failed in a tensor sum after the refit, or (all of them over another) ranked
    # over items the data does not have
    class _Data:
        n_items = 3

    wide = _CountLike([[1.0, 1.0, 1.0, 1.0]])
    wide.n_items = 4
    members = {"a": _CountLike([[1.0, 1.0, 1.0]]), "b": wide}
    monkeypatch.setattr(blend, "load_srgnn_folder", lambda *a, **k: _Data())
    monkeypatch.setattr(blend, "_load_member", lambda spec, device: members[spec])
    with pytest.raises(SystemExit, match="b scores 4 items"):
        blend.main(["--data", "d", "--models", "a", "b", "--out", "o"])


def test_an_averaged_member_of_count_models_is_refitted_model_by_model(monkeypatch) -> None:
    fitted: list[tuple[str, int]] = []

    class _Saved(_CountLike):
        def __init__(self, name: str) -> None:
            super().__init__([[1.0, 1.0, 1.0]])
            self.name, self.config = name, type("C", (), {})()

    class _Fresh(_CountLike):
        def __init__(self, name: str) -> None:
            super().__init__([[1.0, 1.0, 1.0]])
            self.name = name

        def fit(self, train, n_items: int) -> None:
            fitted.append((self.name, n_items))

    monkeypatch.setattr(blend, "get_model", lambda name, **config: _Fresh(name))
    refit = blend._refit_on_90(blend.Average([_Saved("sknn"), _Saved("vsknn")]), "train", 3)
    assert isinstance(refit, blend.Average) and [m.name for m in refit.models] == ["sknn", "vsknn"]
    assert fitted == [("sknn", 3), ("vsknn", 3)]
