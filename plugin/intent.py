"""The session's intent vector: STAMP run in content space over the embeddings of what the visitor touched.

Items are text embeddings e_i (unit-norm, the index's space) projected by P into STAMP's item space:
x_i = P e_i. STAMP's trilinear score of an article a is q . (P e_a) = (P^T q) . e_a, so the intent vector
handed to FAISS is P^T q: one inner-product search ranks every article, including ones nobody clicked yet.

Untrained (`ContentSTAMP.zero_shot`), P = I and STAMP runs its similarity-attention setting: the intent is a
session mean weighted towards pages close to the last click. A model trained on logged sessions (saved with
`save`, a state_dict plus JSON config) replaces it through `ContentSTAMP.load`.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .atomic import atomic_write_json, read_committed, recorded_sha256, replace_keeping_committed
from .errors import DimensionMismatchError, EmptySessionError, IndexFormatError
from .stamp import STAMP, STAMPConfig, zero_shot_query

__all__ = ["Intent", "IntentModel", "ContentSTAMP", "ContentSTAMPConfig"]


# The seam (Intent, IntentModel) lives torch-free beside the zero-shot intent; re-exported here.
from .zero_shot import ZERO_SHOT_TEMPERATURE, Intent, IntentModel, session_items  # noqa: E402


@dataclass(frozen=True)
class ContentSTAMPConfig:
    input_dim: int = 384  # text-embedding size D
    stamp: STAMPConfig = STAMPConfig()
    zero_shot: bool = False


class ContentSTAMP(nn.Module):
    def __init__(self, config: ContentSTAMPConfig) -> None:
        super().__init__()
        self.config = config
        self.input_dim = config.input_dim
        self.proj = nn.Linear(config.input_dim, config.stamp.dim, bias=False)  # P: D -> d
        self.stamp = STAMP(config.stamp)

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

    def forward(self, emb: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """emb: (B, L, D) text embeddings, mask (B, L) -> (query in D-space (B, D), attention (B, L))."""
        x = self.proj(emb)  # (B, L, d)
        out = self.stamp(x, mask)  # query (B, d), attention (B, L)
        return out.query @ self.proj.weight, out.attention  # (B, d) @ (d, D) -> (B, D): P^T q

    @torch.inference_mode()
    def intent(self, items: np.ndarray, keys: Sequence[str | None] | None = None) -> Intent:
        items = session_items(items, self.input_dim)
        if self.config.zero_shot:  # identity projection: the closed form, no torch dispatch
            vec, att_np = zero_shot_query(items, self.config.stamp.similarity_temperature)
        else:
            q, att = self(torch.from_numpy(items).unsqueeze(0), torch.ones(1, len(items), dtype=torch.bool))
            vec, att_np = q[0].numpy(), att[0].abs().numpy()  # (D,), (L,)
        norm = float(np.linalg.norm(vec))
        att_np = att_np / max(float(att_np.sum()), 1e-12)
        return Intent(vector=vec / max(norm, 1e-12), attention=att_np)

    def save(self, directory: str | os.PathLike[str]) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cfg = asdict(self.config)
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        # Weights first, then the config recording their sha256: the pair commits with the second rename.
        sha = replace_keeping_committed(d / "intent_model.pt", buf.getvalue(), recorded_sha256(d / "intent_model.json"))
        atomic_write_json(d / "intent_model.json", {"type": "content-stamp", "config": cfg, "sha256": sha})

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ContentSTAMP:
        d = Path(directory)
        try:
            meta = json.loads((d / "intent_model.json").read_text(encoding="utf-8"))
            cfg = meta["config"]
            config = ContentSTAMPConfig(
                input_dim=cfg["input_dim"], stamp=STAMPConfig(**cfg["stamp"]), zero_shot=cfg["zero_shot"]
            )
            weights = read_committed(d / "intent_model.pt", meta.get("sha256"))
            state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise IndexFormatError(f"no readable content-STAMP model in {d}: {exc}") from None
        model = cls(config)
        model.load_state_dict(state)
        return model.eval()
