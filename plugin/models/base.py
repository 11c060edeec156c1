"""The one interface every session model implements, and the on-disk format they share.

A `SessionModel` is fitted on training sessions (item ids 1..n_items, date order) and scores the whole
catalogue for a batch of prefixes:

    prefixes: (B, L) int64, left-aligned, 0-padded  ->  scores: (B, n_items + 1) float32, column 0 = -inf

Neural dot-product models (STAMP, GRU4Rec, SR-GNN) are `DotProductModel`s: ``score = query_vectors(prefixes)
@ item_vectors().T``, so serving can put ``item_vectors()`` into a FAISS inner-product index. Row j of
``item_vectors()`` is item j+1 (padding has no row), and ``item_keys[j]`` is that item's original id.

On disk a model is a folder: ``config.json`` (model name, its config, n_items, item_keys, format version) and
``state.npz`` (numpy arrays, written and read with ``allow_pickle=False``). Nothing is pickled. Both are written
atomically and the config, written last, records the arrays' sha256 (plugin.atomic), like every core save.
"""

from __future__ import annotations

import io
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..arrays import open_npz
from ..atomic import atomic_write_json, read_committed, recorded_sha256, replace_keeping_committed
from ..errors import ConfigError, DimensionMismatchError, IndexFormatError, UnknownArticleError
from .data import Examples

__all__ = ["SessionModel", "DotProductModel", "FORMAT_VERSION", "read_config", "config_from_dict"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
STATE_FILE = "state.npz"


def config_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Build a frozen config dataclass, naming the valid fields when a key is unknown."""
    valid = {f.name for f in fields(cls)}
    unknown = set(values) - valid
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} option(s) {sorted(unknown)}. Valid options are: {sorted(valid)}")
    return cls(**values)


class SessionModel(ABC):
    """Fit on sessions, score the full catalogue for a batch of prefixes, save/load as config.json + state.npz."""

    name: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.config_class()
        self.n_items = 0
        self.item_keys: tuple[str, ...] | None = None

    # --- training and scoring -----------------------------------------------------------------------------
    @abstractmethod
    def fit(
        self,
        train: Sequence[np.ndarray],
        n_items: int,
        valid: Examples | None = None,
        item_keys: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Fit on training sessions; ``valid`` (prefix examples) is for early stopping only. Returns a report."""

    @abstractmethod
    def score(self, prefixes: np.ndarray) -> np.ndarray:
        """(B, L) left-aligned 0-padded item ids -> (B, n_items + 1) float32 scores, column 0 = -inf."""

    def _start_fit(self, n_items: int, item_keys: Sequence[str] | None) -> None:
        if n_items < 1:
            raise ConfigError("n_items must be >= 1")
        if item_keys is not None and len(item_keys) != n_items:
            raise DimensionMismatchError(f"{len(item_keys)} item keys for {n_items} items")
        self.n_items = int(n_items)
        self.item_keys = None if item_keys is None else tuple(str(k) for k in item_keys)

    def _check_prefixes(self, prefixes: np.ndarray) -> np.ndarray:
        if self.n_items < 1:
            raise ConfigError(f"{self.name} is not fitted: call fit() or load() first")
        p = np.asarray(prefixes)
        if p.ndim != 2 or p.shape[1] < 1:
            raise DimensionMismatchError(f"expected prefixes of shape (batch, length), got {p.shape}")
        if p.size and (int(p.min()) < 0 or int(p.max()) > self.n_items):
            raise DimensionMismatchError(f"item ids must be in 0..{self.n_items} (0 = padding)")
        if p.shape[0] and bool((p[:, 0] == 0).any()):
            raise DimensionMismatchError("every prefix needs at least one item, left-aligned (column 0 non-zero)")
        return p.astype(np.int64, copy=False)

    def index_of(self, key: str) -> int:
        """Item index (1..n_items) of an original item id, for serving."""
        if self.item_keys is None:
            raise ConfigError(f"{self.name} was trained without item keys; items are plain indices 1..{self.n_items}")
        lookup = getattr(self, "_key_index", None)
        if lookup is None:
            lookup = {k: i + 1 for i, k in enumerate(self.item_keys)}
            self._key_index = lookup
        try:
            return lookup[str(key)]
        except KeyError as exc:
            raise UnknownArticleError(f"item {key!r} is not in the model's catalogue") from exc

    # --- persistence --------------------------------------------------------------------------------------
    @abstractmethod
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything fitted, as plain numpy arrays."""

    @abstractmethod
    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore from `state_arrays` output (config, n_items and item_keys are already set)."""

    def save(self, directory: str | Path) -> Path:
        if self.n_items < 1:
            raise ConfigError(f"{self.name} is not fitted; nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "model": self.name,
            "config": asdict(self.config),
            "n_items": self.n_items,
            "item_keys": None if self.item_keys is None else list(self.item_keys),
        }
        buf = io.BytesIO()
        arrays: dict[str, Any] = self.state_arrays()
        np.savez(buf, **arrays)
        # Like every core save: arrays first (the committed ones kept as a backup), the config that records
        # their hash last, so a save killed midway leaves the previous model loadable.
        meta["sha256"] = replace_keeping_committed(
            directory / STATE_FILE, buf.getvalue(), recorded_sha256(directory / CONFIG_FILE)
        )
        atomic_write_json(directory / CONFIG_FILE, meta)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> SessionModel:
        meta = read_config(directory)
        if meta["model"] != cls.name:
            raise IndexFormatError(f"{directory} holds a {meta['model']!r} model, not {cls.name!r}")
        model = cls(config_from_dict(cls.config_class, meta["config"]))
        model.n_items = int(meta["n_items"])
        model.item_keys = None if meta.get("item_keys") is None else tuple(meta["item_keys"])
        try:
            raw = read_committed(Path(directory) / STATE_FILE, meta.get("sha256"))
            with open_npz(raw) as z:  # refuses compressed members (a zip bomb) and never unpickles
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"{directory}/{STATE_FILE} is missing or not a numpy archive: {exc}") from exc
        model.load_state_arrays(arrays)
        return model


class DotProductModel(SessionModel):
    """A model whose score is an inner product between a session query and item vectors (FAISS-ready)."""

    @abstractmethod
    def item_vectors(self) -> np.ndarray:
        """(n_items, d) float32; row j is item j+1."""

    @abstractmethod
    def query_vectors(self, prefixes: np.ndarray) -> np.ndarray:
        """(B, L) prefixes -> (B, d) float32 queries; score of item j+1 is query . item_vectors()[j]."""

    def score(self, prefixes: np.ndarray) -> np.ndarray:
        q = self.query_vectors(prefixes)  # (B, d)
        out = np.empty((q.shape[0], self.n_items + 1), dtype=np.float32)  # (B, N+1)
        out[:, 0] = -np.inf
        np.matmul(q, self.item_vectors().T, out=out[:, 1:])
        return out


def read_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise IndexFormatError(f"{directory} is not a saved session model: {CONFIG_FILE} is missing") from exc
    except json.JSONDecodeError as exc:
        raise IndexFormatError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION or "model" not in meta:
        raise IndexFormatError(f"{path} is not a session-model config of format version {FORMAT_VERSION}")
    return meta
