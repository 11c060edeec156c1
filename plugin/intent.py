"""The session's intent vector: STAMP run in content space over the embeddings of what the visitor touched.

Items are text embeddings e_i (unit-norm, the index's space) projected by P into STAMP's item space:
x_i = P e_i. STAMP's trilinear score of an article a is q . (P e_a) = (P^T q) . e_a, so the intent vector
handed to FAISS is P^T q: one inner-product search ranks every article, including ones nobody clicked yet.

Untrained (`ContentSTAMP.zero_shot`), P = I and STAMP runs its similarity-attention setting: the intent is a
session mean weighted towards pages close to the last click. A model trained on logged sessions (saved with
`save`, a state_dict plus JSON config) replaces it through `ContentSTAMP.load`.

A trained model is a hybrid. Articles clicked often enough in training (`item_keys`) carry two learned vectors:
v_i added to their text embedding as STAMP reads them, x_i = P (e_i + v_i), and n_i added to the intent when the
article is the last click, P^T q + n_t (where its readers go next, learned in the index's space; measured in
BENCHMARKS "Learning loop": the plain content model stayed further below a transition-count model). With
`output_vectors`, such an article is also scored as a candidate on e_a + u_a, u_a learned: an intent that scores
candidates by their text alone cannot say "after page i comes page j" for arbitrary i, j (BENCHMARKS: a free query
per last page, text-scored, stayed below Markov-1), a learned candidate vector can. `intent` hands back q . u_a
for those articles (`Intent.learned_scores`, a small numpy index beside FAISS's text search). Every other article
reads, and is scored, as its text alone. `plain_scoring` says the recommender should score candidates as they
were trained (plain cosine plus the learned part: no centring, lexical fusion, link bonus or interest split);
train-intent sets it on its validation split. `transitions` (plugin/transitions.py, optional) adds the log's
item-to-item transition counts to the candidate scores the same way, through `learned_scores`: train-intent
blends them in when its validation split says so, and they are saved and loaded beside the weights. An article added after
training (outside `catalogue`) has no learned part, so its trained score says little: it is either put at the rank
the zero-shot intent (`cold_vector`) gives it (`cold_start="rank"`, `rules.merge_cold_start`) or scored on the
trained scale from that rank and the zero-shot score (`cold_start="score"`, `plugin/cold_start.py`), whichever
train-intent's validation split, with some known articles playing new ones, prefers; the same split chooses the
zero-shot ranking's temperature (`zero_shot_temperature`), how deep in it an added article may be shown
(`cold_depth`), and which known successors it may not displace (`cold_protect`: those the transition counts
give at least that probability keep their places at the top).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .atomic import atomic_write_json, read_committed, recorded_sha256, replace_keeping_committed
from .cold_start import COLD_START_POLICIES, ColdStartCalibration
from .errors import ConfigError, DimensionMismatchError, IndexFormatError
from .stamp import STAMP, STAMPConfig, zero_shot_query
from .transitions import ItemTransitions

__all__ = ["Intent", "IntentModel", "ContentSTAMP", "ContentSTAMPConfig"]


# The seam (Intent, IntentModel) lives torch-free beside the zero-shot intent; re-exported here.
from .zero_shot import ZERO_SHOT_TEMPERATURE, Intent, IntentModel, session_items  # noqa: E402


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


class _ShapesOnly(TorchFunctionMode):
    """Builds a module's parameters without filling them: only their shapes are wanted. Torch fills a meta tensor's
    `normal_` (STAMP's and nn.Embedding's initialisation) through a Python reference that imports torch._dynamo, a
    one-off 2 s of CPU (6-7 s beside request threads) that fell on the hot-reload thread the first time a worker
    loaded a trained intent model, so the new version was served long after the 2 s goal (issue 14 item 5)."""

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func is torch.Tensor.normal_ or func is nn.init.normal_:  # both: the mode is off inside its own call
            return args[0] if args else kwargs["tensor"]  # nn.init passes the tensor by keyword
        return func(*args, **kwargs)


class ContentSTAMP(nn.Module):
    def __init__(self, config: ContentSTAMPConfig) -> None:
        super().__init__()
        self.config = config
        self.input_dim = config.input_dim
        self.proj = nn.Linear(config.input_dim, config.stamp.dim, bias=False)  # P: D -> d
        self.stamp = STAMP(config.stamp)
        self.item_vectors: nn.Embedding | None = None
        self.next_vectors: nn.Embedding | None = None
        if config.item_keys:
            # Zero-initialised: an untrained hybrid reads every article as its text, like the content model.
            self.item_vectors = nn.Embedding(len(config.item_keys) + 1, config.input_dim, padding_idx=0)
            self.next_vectors = nn.Embedding(len(config.item_keys) + 1, config.input_dim, padding_idx=0)
            nn.init.zeros_(self.item_vectors.weight)
            nn.init.zeros_(self.next_vectors.weight)
        self.out_vectors: nn.Embedding | None = None
        if config.item_keys and config.output_vectors:
            self.out_vectors = nn.Embedding(len(config.item_keys) + 1, config.input_dim, padding_idx=0)
            nn.init.zeros_(self.out_vectors.weight)  # untrained: every candidate scored on its text, as before
        self._rows = {k: i + 1 for i, k in enumerate(config.item_keys)}
        self._catalogue = frozenset(config.catalogue) if config.catalogue else None
        # Click counts from the same log, blended into the candidate scores (plugin/transitions.py); not weights
        # of this module: fitted by counting, saved beside it, set by train-intent when validation wants them.
        self.transitions: ItemTransitions | None = None

    def rows(self, keys: Sequence[str | None]) -> list[int]:
        """Learned-vector row of each article id (0: none, the article reads as its text alone)."""
        return [self._rows.get(k, 0) if k is not None else 0 for k in keys]

    @classmethod
    def zero_shot(cls, input_dim: int, temperature: float = ZERO_SHOT_TEMPERATURE) -> ContentSTAMP:
        cfg = ContentSTAMPConfig(
            input_dim=input_dim,
            stamp=STAMPConfig(dim=input_dim, attention="similarity", similarity_temperature=temperature),
            zero_shot=True,
        )
        model = cls(cfg)
        with torch.no_grad():
            model.proj.weight.copy_(torch.eye(input_dim))
        model.stamp = STAMP.zero_shot(input_dim, temperature=temperature)
        return model.eval()

    def forward(
        self, emb: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """emb: (B, L, D) text embeddings, mask (B, L), rows (B, L) learned-vector rows (0: none)
        -> (query in D-space (B, D), attention (B, L))."""
        items = emb if rows is None or self.item_vectors is None else emb + self.item_vectors(rows)  # (B, L, D)
        x = self.proj(items)  # (B, L, d)
        out = self.stamp(x, mask)  # query (B, d), attention (B, L)
        q = out.query @ self.proj.weight  # (B, d) @ (d, D) -> (B, D): P^T q
        if rows is not None and self.next_vectors is not None:
            last = rows.gather(1, (mask.sum(1).long() - 1).clamp(min=0).unsqueeze(1)).squeeze(
                1
            )  # (B,) last click's row
            q = q + self.next_vectors(last)  # (B, D): where readers of the last page go next, in the index's space
        return q, out.attention

    def candidate_vectors(self, table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """table: (N, D) candidates' text embeddings, rows (N,) their learned rows (0: none) -> (N, D) the vectors
        an intent is scored against: e_a + u_a, or e_a alone."""
        if self.out_vectors is None:
            return table  # (N, D)
        return table + self.out_vectors(rows)  # (N, D)

    @torch.inference_mode()
    def intent(self, items: np.ndarray, keys: Sequence[str | None] | None = None) -> Intent:
        items = session_items(items, self.input_dim)
        if self.config.zero_shot:  # identity projection: the closed form, no torch dispatch
            vec, att_np = zero_shot_query(items, self.config.stamp.similarity_temperature)
        else:
            rows = None
            if self.item_vectors is not None and keys is not None:
                if len(keys) != len(items):
                    raise DimensionMismatchError(f"{len(keys)} article ids for {len(items)} session items")
                rows = torch.tensor([self.rows(keys)], dtype=torch.long)  # (1, L)
            q, att = self(torch.from_numpy(items).unsqueeze(0), torch.ones(1, len(items), dtype=torch.bool), rows)
            vec, att_np = q[0].numpy(), att[0].abs().numpy()  # (D,), (L,)
        norm = float(np.linalg.norm(vec))
        att_np = att_np / max(float(att_np.sum()), 1e-12)
        learned_ids: tuple[str, ...] = ()
        learned_scores = None
        if self.out_vectors is not None:
            # The learned halves of the candidate vectors, q . u_a for every article that has one: (K, D) @ (D,)
            learned_ids = self.config.item_keys
            learned_scores = self.out_vectors.weight[1:].numpy() @ (vec / max(norm, 1e-12))  # (K,)
        if self.transitions is not None and keys is not None:
            learned_ids, learned_scores = self._add_transitions(learned_ids, learned_scores, keys)
        cold, calibration, protected = None, None, frozenset[str]()
        if self._catalogue is not None:
            cold, _ = zero_shot_query(items, self.config.zero_shot_temperature)  # (D,)
            cold = cold / max(float(np.linalg.norm(cold)), 1e-12)
            if self.config.cold_start == "score":
                calibration = ColdStartCalibration.from_tuple(self.config.cold_calibration)
            elif self.config.cold_protect > 0 and self.transitions is not None and keys is not None:
                t_rows, trans, _ = self.transitions.components(keys, popular=False)
                protected = frozenset(self.transitions.keys[j] for j in t_rows[trans >= self.config.cold_protect])
        return Intent(
            vector=vec / max(norm, 1e-12),
            attention=att_np,
            cold_vector=cold,
            catalogue=self._catalogue,
            cold_calibration=calibration,
            cold_protected=protected,
            learned_ids=learned_ids if learned_scores is not None else (),
            learned_scores=learned_scores,
        )

    def _add_transitions(
        self, ids: tuple[str, ...], scores: np.ndarray | None, keys: Sequence[str | None]
    ) -> tuple[tuple[str, ...], np.ndarray | None]:
        """The learned candidate scores plus weight * T(j | session) of the transition component, over the union
        of the articles either speaks for (an article in neither reads as its text alone)."""
        assert self.transitions is not None
        t_ids, t_scores = self.transitions.scores(keys)
        if not t_ids:
            return ids, scores
        merged = dict(zip(ids, scores.tolist())) if scores is not None else {}
        for a, t in zip(t_ids, t_scores.tolist()):
            merged[a] = merged.get(a, 0.0) + t
        return tuple(merged), np.fromiter(merged.values(), np.float32, len(merged))  # (K',)

    def save(self, directory: str | os.PathLike[str]) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cfg = asdict(self.config)
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        # Weights first, then the config recording their sha256: the pair commits with the second rename.
        sha = replace_keeping_committed(d / "intent_model.pt", buf.getvalue(), recorded_sha256(d / "intent_model.json"))
        atomic_write_json(d / "intent_model.json", {"type": "content-stamp", "config": cfg, "sha256": sha})
        if self.transitions is not None:
            self.transitions.save(d)
        else:
            (d / "transitions.json").unlink(missing_ok=True)  # a folder saved into again loses its old component

    @classmethod
    def _check_fits(cls, config: ContentSTAMPConfig, state: object, d: Path) -> None:
        """The saved weights have exactly the shapes the config asks for. Checked on the meta device, which
        allocates nothing, before the model is built: a config.json edited to `"stamp": {"dim": 50000}` had the
        loader allocate and initialise 60 GB (the hot-reload thread took the server down) before
        `load_state_dict` could refuse it."""
        with torch.device("meta"), _ShapesOnly():
            wanted = {k: tuple(v.shape) for k, v in cls(config).state_dict().items()}
        got = (
            {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
            if isinstance(state, dict)
            else {}
        )
        if got != wanted or not isinstance(state, dict) or len(state) != len(got):
            wrong = sorted(k for k in wanted.keys() | got.keys() if wanted.get(k) != got.get(k))
            raise IndexFormatError(
                f"{d / 'intent_model.pt'} does not fit {d / 'intent_model.json'}: "
                f"{len(wrong)} weight(s) missing, extra or of another shape ({', '.join(wrong[:3])})"
            )

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ContentSTAMP:
        d = Path(directory)
        try:
            meta = json.loads((d / "intent_model.json").read_text(encoding="utf-8"))
            cfg = meta["config"]
            # Models saved before the hybrid have no item_keys or catalogue: they load as they were.
            config = ContentSTAMPConfig(
                input_dim=cfg["input_dim"],
                stamp=STAMPConfig(**cfg["stamp"]),
                zero_shot=cfg["zero_shot"],
                item_keys=tuple(cfg.get("item_keys", ())),
                catalogue=tuple(cfg.get("catalogue", ())),
                zero_shot_temperature=float(cfg.get("zero_shot_temperature", 2.0)),
                output_vectors=bool(cfg.get("output_vectors", False)),
                plain_scoring=bool(cfg.get("plain_scoring", False)),
                cold_start=str(cfg.get("cold_start", "rank")),
                cold_calibration=tuple(float(x) for x in cfg.get("cold_calibration", ())),
                cold_depth=int(cfg.get("cold_depth", 0)),
                cold_protect=float(cfg.get("cold_protect", 0.0)),
            )
            weights = read_committed(d / "intent_model.pt", meta.get("sha256"))
            state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
            cls._check_fits(config, state, d)
            model = cls(config)
            model.load_state_dict(state)
        except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:  # TypeError: a field of another type
            raise IndexFormatError(f"no readable content-STAMP model in {d}: {exc}") from None
        if ItemTransitions.saved_in(d):
            model.transitions = ItemTransitions.load(d)
        return model.eval()
