"""The configuration of the session model, torch-free: STAMP's (`STAMPConfig`) and the content model's around it
(`ContentSTAMPConfig`), and how a saved `intent_model.json` is read back into one.

Kept apart from the torch modules (`plugin.stamp`, `plugin.intent`, which re-export them) so that serving a
trained model in its numpy form (`plugin.frozen_intent`) reads and checks its config without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .cold_start import COLD_START_POLICIES, ColdStartCalibration
from .errors import ConfigError
from .zero_shot import ZERO_SHOT_TEMPERATURE

__all__ = ["STAMPConfig", "ContentSTAMPConfig", "content_stamp_config", "weight_shapes"]

_ATTENTION_MODES = ("additive", "similarity")


@dataclass(frozen=True)
class STAMPConfig:
    dim: int = 100  # item-vector size d that the attention and the MLP cells work in
    attention: Literal["additive", "similarity"] = "additive"
    similarity_temperature: float = 10.0  # tau for attention="similarity"
    init_std: float = 0.05  # the official code's N(0, 0.05) weight init

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ConfigError(f"STAMPConfig.dim must be positive, got {self.dim}")
        if self.attention not in _ATTENTION_MODES:
            raise ConfigError(
                f"STAMPConfig.attention={self.attention!r} is not valid. Valid modes are: {', '.join(_ATTENTION_MODES)}"
            )
        if self.similarity_temperature <= 0:
            raise ConfigError("STAMPConfig.similarity_temperature must be positive")


@dataclass(frozen=True)
class ContentSTAMPConfig:
    input_dim: int = 384  # text-embedding size D
    stamp: STAMPConfig = STAMPConfig()
    zero_shot: bool = False
    item_keys: tuple[str, ...] = ()  # articles with a learned vector v_i (row i+1; row 0 is "none")
    catalogue: tuple[str, ...] = ()  # the articles trained over; others are ranked zero-shot (empty: none are)
    zero_shot_temperature: float = (
        ZERO_SHOT_TEMPERATURE  # tau of the zero-shot intent ranking articles outside the catalogue
    )
    output_vectors: bool = False  # item_keys also get a learned candidate vector u_a (scored on e_a + u_a)
    plain_scoring: bool = False  # serve with the score trained: plain cosine + learned part, no rule-based fusion
    # How articles outside `catalogue` are ranked (plugin/cold_start.py): "rank" = at their zero-shot rank,
    # "score" = on the trained scale through `cold_calibration` (zero_shot_weight, rank_weight, bias), which
    # train-intent fits on its validation split and keeps under either policy (switching needs no refit).
    cold_start: str = "rank"
    cold_calibration: tuple[float, ...] = ()
    # The merge shows an article added after training only where the zero-shot list ranks it within the top
    # `cold_depth` (0: wherever it shows it); train-intent chooses it with the temperature, on validation.
    cold_depth: int = 0
    # Protected slots: the rank merge puts no added article above the leading known candidates whose transition
    # evidence T(j | session) (plugin/transitions.py, unweighted) is at least this (0: none are protected);
    # train-intent chooses it with the temperature and depth, on validation.
    cold_protect: float = 0.0

    def __post_init__(self) -> None:
        if self.cold_depth < 0:
            raise ConfigError(f"ContentSTAMPConfig.cold_depth must be >= 0 (0: no limit), got {self.cold_depth}")
        if not self.cold_protect >= 0.0:
            raise ConfigError(
                f"ContentSTAMPConfig.cold_protect must be >= 0 (0: no protected slots), got {self.cold_protect}"
            )
        if self.cold_start not in COLD_START_POLICIES:
            raise ConfigError(
                f"unknown cold-start policy {self.cold_start!r}. Valid policies are: {', '.join(COLD_START_POLICIES)}"
            )
        if self.cold_start == "score":
            ColdStartCalibration.from_tuple(self.cold_calibration)  # ConfigError unless three numbers


def content_stamp_config(cfg: dict[str, Any]) -> ContentSTAMPConfig:
    """The config a saved `intent_model.json` records under "config" (`asdict` of one). Models saved before the
    hybrid have no item_keys or catalogue: they load as they were. A field of another type or an unknown one is a
    TypeError or ValueError (ConfigError is one), for the loader to report as the folder's format error."""
    input_dim = cfg["input_dim"]
    if not isinstance(input_dim, int) or isinstance(input_dim, bool):
        raise TypeError(f"input_dim must be an integer, got {input_dim!r}")
    return ContentSTAMPConfig(
        input_dim=input_dim,
        stamp=STAMPConfig(**cfg["stamp"]),
        zero_shot=bool(cfg["zero_shot"]),
        item_keys=tuple(str(k) for k in cfg.get("item_keys", ())),
        catalogue=tuple(str(k) for k in cfg.get("catalogue", ())),
        zero_shot_temperature=float(cfg.get("zero_shot_temperature", 2.0)),
        output_vectors=bool(cfg.get("output_vectors", False)),
        plain_scoring=bool(cfg.get("plain_scoring", False)),
        cold_start=str(cfg.get("cold_start", "rank")),
        cold_calibration=tuple(float(x) for x in cfg.get("cold_calibration", ())),
        cold_depth=int(cfg.get("cold_depth", 0)),
        cold_protect=float(cfg.get("cold_protect", 0.0)),
    )


def weight_shapes(config: ContentSTAMPConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every weight `ContentSTAMP(config).state_dict()` holds, by its name: worked out from the config
    alone, so a loader compares a file's shapes with them before it allocates anything."""
    big_d, d = config.input_dim, config.stamp.dim
    shapes: dict[str, tuple[int, ...]] = {
        "proj.weight": (d, big_d),  # P: D -> d
        "stamp.w1.weight": (d, d),
        "stamp.w2.weight": (d, d),
        "stamp.w3.weight": (d, d),
        "stamp.w3.bias": (d,),
        "stamp.w0.weight": (1, d),
        "stamp.mlp_s.weight": (d, d),
        "stamp.mlp_s.bias": (d,),
        "stamp.mlp_t.weight": (d, d),
        "stamp.mlp_t.bias": (d,),
    }
    if config.item_keys:
        rows = len(config.item_keys) + 1
        shapes["item_vectors.weight"] = (rows, big_d)
        shapes["next_vectors.weight"] = (rows, big_d)
        if config.output_vectors:
            shapes["out_vectors.weight"] = (rows, big_d)
    return shapes
