"""Which torch device the trainer and the evaluator run on: ``cpu``, ``cuda`` (``cuda:N``) or ``auto``.

Models do no device picking (house rule): the trainer moves the network to the resolved device and the models put
each batch where their network lives. This module only turns the user's word into a ``torch.device`` and says
clearly when the word cannot be honoured, instead of failing later inside a CUDA call.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

__all__ = ["DEVICE_CHOICES", "resolve_device"]

DEVICE_CHOICES: tuple[str, ...] = ("cpu", "cuda", "auto")


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"``/``"cuda:N"`` (must be usable here) or ``"auto"`` (CUDA when available, else CPU)."""
    word = name.strip().lower()
    if word == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if word == "cpu":
        return torch.device("cpu")
    if word == "cuda" or word.startswith("cuda:"):
        index = word[5:]
        if index and not index.isdigit():
            raise ConfigError(f"device {name!r} is not valid. Valid devices are: {', '.join(DEVICE_CHOICES)}, cuda:N")
        if not torch.cuda.is_available():
            built = "built without CUDA" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise ConfigError(
                f"device {name!r}: CUDA is not available here (torch {torch.__version__}, {built}, "
                f"no usable GPU). Valid devices here are: cpu, auto"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here. "
                f"Valid devices are: cuda:0..cuda:{torch.cuda.device_count() - 1}, cpu, auto"
            )
        return torch.device(word)
    raise ConfigError(f"device {name!r} is not valid. Valid devices are: {', '.join(DEVICE_CHOICES)}, cuda:N")
