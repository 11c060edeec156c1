"""The session's intent vector: STAMP run in content space over the embeddings of what the visitor touched.

Items are text embeddings e_i (unit-norm, the index's space) projected by P into STAMP's item space:
x_i = P e_i. STAMP's trilinear score of an article a is q . (P e_a) = (P^T q) . e_a, so the intent vector
handed to FAISS is P^T q: one inner-product search ranks every article, including ones nobody clicked yet.

Untrained (`ContentSTAMP.zero_shot`), P = I and STAMP runs its similarity-attention setting: the intent is a
session mean weighted towards pages close to the last click. A model trained on logged sessions (saved with
`save`, a state_dict plus JSON config, and the same weights as an npz) replaces it: through `ContentSTAMP.load` to
train on, and served in numpy without torch (`plugin.frozen_intent.FrozenContentSTAMP`, the same intent).

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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .atomic import atomic_write_json, read_committed, recorded_sha256, replace_keeping_committed
from .errors import DimensionMismatchError, IndexFormatError
from .frozen_intent import NPZ_SHA256, FrozenContentSTAMP, assemble_intent, read_weights, write_weights
from .intent_config import ContentSTAMPConfig, STAMPConfig, content_stamp_config
from .stamp import STAMP, zero_shot_query
from .transitions import ItemTransitions

__all__ = ["Intent", "IntentModel", "ContentSTAMP", "ContentSTAMPConfig"]


# The seam (Intent, IntentModel) lives torch-free beside the zero-shot intent; re-exported here.
from .zero_shot import ZERO_SHOT_TEMPERATURE, Intent, IntentModel, session_items  # noqa: E402

__all__ += ["STAMPConfig"]


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
        out = None if self.out_vectors is None else self.out_vectors.weight[1:].numpy()  # (K, D)
        return assemble_intent(self.config, items, keys, vec, att_np, out, self.transitions)

    def frozen(self) -> FrozenContentSTAMP:
        """This model in numpy, for serving: the same `intent` without torch (plugin/frozen_intent.py)."""
        state = {k: v.detach().cpu().numpy().copy() for k, v in self.state_dict().items()}
        return FrozenContentSTAMP(self.config, state, self.transitions)

    def save(self, directory: str | os.PathLike[str]) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cfg = asdict(self.config)
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        # Weights first, then the config recording their sha256: the pair commits with the second rename.
        sha = replace_keeping_committed(d / "intent_model.pt", buf.getvalue(), recorded_sha256(d / "intent_model.json"))
        # The same arrays in numpy, for serving without torch (plugin/frozen_intent.py), committed with the config too.
        npz_sha = write_weights(d, {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()})
        atomic_write_json(
            d / "intent_model.json", {"type": "content-stamp", "config": cfg, "sha256": sha, NPZ_SHA256: npz_sha}
        )
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
            config = content_stamp_config(meta["config"])
            if "sha256" not in meta and NPZ_SHA256 in meta:  # saved in its numpy form, which keeps no state_dict
                state: object = {
                    k: torch.from_numpy(v.copy()) for k, v in read_weights(d, config, meta[NPZ_SHA256]).items()
                }
            else:
                weights = read_committed(d / "intent_model.pt", meta.get("sha256"))
                state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
            cls._check_fits(config, state, d)
            model = cls(config)
            model.load_state_dict(state)  # type: ignore[arg-type]
        except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:  # TypeError: a field of another type
            raise IndexFormatError(f"no readable content-STAMP model in {d}: {exc}") from None
        if ItemTransitions.saved_in(d):
            model.transitions = ItemTransitions.load(d)
        return model.eval()
