"""The model lab: session models behind one interface (`SessionModel`), one file per algorithm, and a registry;
beside them their data (`data`, `walks`), trainer (`training`, `device`, `precision`) and evaluation (`metrics`,
`evaluation`). The chat core reaches this package only through `plugin.serving` (and the CLI, for `train` and
`evaluate`); the lab uses only the core's leaves (errors, atomic saves, events, the STAMP maths), never its
pipeline (tests/test_layering.py).

get_model("vsknn", k=100)          a fresh, unfitted model (config options as keyword arguments)
load_model("runs/stamp_digi")      a saved model, whatever its kind
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..errors import ConfigError, IndexFormatError
from .base import DotProductModel, SessionModel, config_from_dict, read_config

__all__ = ["MODEL_NAMES", "SessionModel", "DotProductModel", "get_model", "load_model", "model_class"]

# name -> (module, class); modules are imported on first use so `import plugin.models` stays light
_REGISTRY: dict[str, tuple[str, str]] = {
    "pop": ("pop", "POP"),
    "spop": ("spop", "SPOP"),
    "markov": ("markov", "Markov"),
    "itemknn": ("itemknn", "ItemKNN"),
    "vsknn": ("vsknn", "VSKNN"),
    "stamp": ("stamp", "STAMPModel"),
    "gru4rec": ("gru4rec", "GRU4Rec"),
    "srgnn": ("srgnn", "SRGNN"),
    "core": ("core", "CORE"),
}
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def model_class(name: str) -> type[SessionModel]:
    key = name.lower().replace("-", "").replace("_", "")
    if key not in _REGISTRY:
        raise ConfigError(f"unknown session model {name!r}. Valid names are: {', '.join(MODEL_NAMES)}")
    module, cls = _REGISTRY[key]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def get_model(name: str, **options: Any) -> SessionModel:
    cls = model_class(name)
    return cls(config_from_dict(cls.config_class, options))


def load_model(directory: str | Path) -> SessionModel:
    """Load any saved session model (config.json + state.npz); dot-product models expose item/query vectors."""
    meta = read_config(directory)
    try:
        cls = model_class(str(meta["model"]))
    except ConfigError as exc:
        raise IndexFormatError(f"{directory}: {exc}") from exc
    return cls.load(directory)
