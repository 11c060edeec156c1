"""A trained content STAMP served in numpy: `FrozenContentSTAMP`, the same `Intent` as `plugin.intent.ContentSTAMP`
computed from its saved weights without torch.

At serving time the trained model is a forward pass over one session, a few matrix-vector products; importing torch
for it tripled the one-shot CLI's time and each worker's memory (BENCHMARKS "One-shot CLI and a worker with a trained
intent model installed"). `ContentSTAMP.save` writes its weights twice: the state_dict (`intent_model.pt`, what
training continues from) and the same arrays as an uncompressed `intent_model.npz` (no pickle), each under the
sha256 `intent_model.json` records ("sha256", "npz_sha256"). An index folder loads its model as this class when the
npz is there (`load_intent_model`), and as the torch module otherwise (folders saved before). The maths is
`plugin/stamp.py`'s, equation numbers as there; what an intent is made of once the query is known
(`assemble_intent`) is shared with the torch module.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .atomic import atomic_write_json, committed_file, recorded_sha256, replace_keeping_committed_with
from .cold_start import ColdStartCalibration
from .errors import DimensionMismatchError, IndexFormatError
from .intent_config import ContentSTAMPConfig, content_stamp_config, weight_shapes
from .transitions import ItemTransitions
from .zero_shot import Intent, IntentModel, session_items, zero_shot_query

__all__ = ["FrozenContentSTAMP", "assemble_intent", "load_intent_model", "read_weights", "write_weights"]

META = "intent_model.json"
WEIGHTS = "intent_model.npz"
NPZ_SHA256 = "npz_sha256"  # the key of the npz's hash in META ("sha256" is the state_dict's)
_HEADER_ROOM = 1 << 16  # a .npy header is at most 64 KiB beyond its data (format 2.0 allows more; numpy writes less)


class FrozenContentSTAMP:
    """A trained `ContentSTAMP` as numpy arrays: what it computes in `intent`, and nothing to train."""

    def __init__(
        self,
        config: ContentSTAMPConfig,
        weights: Mapping[str, np.ndarray],
        transitions: ItemTransitions | None = None,
    ) -> None:
        wanted = weight_shapes(config)
        got = {k: tuple(v.shape) for k, v in weights.items()}
        if got != wanted:
            wrong = sorted(k for k in wanted.keys() | got.keys() if wanted.get(k) != got.get(k))
            raise DimensionMismatchError(
                f"weights do not fit the config: {len(wrong)} missing, extra or of another shape ({', '.join(wrong[:3])})"
            )
        self.config = config
        self.input_dim = config.input_dim
        self.weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        self.transitions = transitions
        self._rows = {k: i + 1 for i, k in enumerate(config.item_keys)}
        self._catalogue = frozenset(config.catalogue) if config.catalogue else None

    def rows(self, keys: Sequence[str | None]) -> list[int]:
        """Learned-vector row of each article id (0: none, the article reads as its text alone)."""
        return [self._rows.get(k, 0) if k is not None else 0 for k in keys]

    def _query(self, emb: np.ndarray, rows: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
        """`ContentSTAMP.forward` on one unpadded session: emb (L, D), rows (L,) or None -> (P^T q (D,), a (L,))."""
        w = self.weights
        items = (
            emb if rows is None or "item_vectors.weight" not in w else emb + w["item_vectors.weight"][rows]
        )  # (L, D)
        x = items @ w["proj.weight"].T  # (L, d): x_i = P (e_i + v_i)
        x_t = x[-1]  # (d,)
        m_s = x.mean(0)  # (d,)
        if self.config.stamp.attention == "additive":
            pre = (
                x @ w["stamp.w1.weight"].T
                + x_t @ w["stamp.w2.weight"].T
                + (m_s @ w["stamp.w3.weight"].T + w["stamp.w3.bias"])
            )  # (L, d)
            sig = 0.5 * (1.0 + np.tanh(0.5 * pre))  # (L, d): sigmoid, without exp's overflow
            alpha = sig @ w["stamp.w0.weight"][0]  # (L,) eq. 7, un-normalised as in the paper
        else:
            sim = self.config.stamp.similarity_temperature * (x @ (x_t + m_s))  # (L,)
            alpha = np.exp(sim - sim.max())  # (L,)
            alpha /= alpha.sum()
        m_a = alpha @ x  # (d,) eq. 8
        h_s = np.tanh(w["stamp.mlp_s.weight"] @ m_a + w["stamp.mlp_s.bias"])  # (d,) eq. 9
        h_t = np.tanh(w["stamp.mlp_t.weight"] @ x_t + w["stamp.mlp_t.bias"])  # (d,) eq. 10
        q = (h_s * h_t) @ w["proj.weight"]  # (d,) @ (d, D) -> (D,): P^T q, eq. 11's query in the index's space
        if rows is not None and "next_vectors.weight" in w:
            q = q + w["next_vectors.weight"][rows[-1]]  # (D,): where readers of the last page go next
        return q.astype(np.float32), alpha.astype(np.float32)

    def intent(self, items: np.ndarray, keys: Sequence[str | None] | None = None) -> Intent:
        items = session_items(items, self.input_dim)
        if self.config.zero_shot:
            vec, att = zero_shot_query(items, self.config.stamp.similarity_temperature)  # (D,), (L,)
        else:
            rows = None
            if "item_vectors.weight" in self.weights and keys is not None:
                if len(keys) != len(items):
                    raise DimensionMismatchError(f"{len(keys)} article ids for {len(items)} session items")
                rows = self.rows(keys)
            vec, att = self._query(items, rows)
        out = self.weights.get("out_vectors.weight")
        return assemble_intent(
            self.config, items, keys, vec, np.abs(att), None if out is None else out[1:], self.transitions
        )

    def save(self, directory: str | os.PathLike[str]) -> None:
        """The weights as `intent_model.npz` and the config recording its sha256 (no state_dict: torch is not here;
        `ContentSTAMP.load` reads the npz when the config records no state_dict)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        sha = write_weights(d, self.weights)
        atomic_write_json(d / META, {"type": "content-stamp", "config": asdict(self.config), NPZ_SHA256: sha})
        for stale in ("intent_model.pt", "intent_model.prev.pt"):  # an older model's, which the config no longer names
            (d / stale).unlink(missing_ok=True)
        if self.transitions is not None:
            self.transitions.save(d)
        else:
            (d / "transitions.json").unlink(missing_ok=True)

    @staticmethod
    def saved_in(directory: str | os.PathLike[str]) -> bool:
        """The folder's model was saved with its numpy weights (folders saved before have the state_dict only)."""
        try:
            meta = json.loads((Path(directory) / META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(meta, dict) and NPZ_SHA256 in meta

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> FrozenContentSTAMP:
        d = Path(directory)
        try:
            meta = json.loads((d / META).read_text(encoding="utf-8"))
            config = content_stamp_config(meta["config"])
            weights = read_weights(d, config, meta[NPZ_SHA256])
            model = cls(config, weights)
        except (OSError, KeyError, TypeError, ValueError, DimensionMismatchError) as exc:
            raise IndexFormatError(f"no readable content-STAMP model in {d}: {exc}") from None
        if ItemTransitions.saved_in(d):
            model.transitions = ItemTransitions.load(d)
        return model


def load_intent_model(directory: str | os.PathLike[str]) -> IntentModel:
    """The trained model installed in an index folder, for serving: in numpy when its npz weights are there, else
    (a folder saved before them) as the torch module, which imports torch."""
    if FrozenContentSTAMP.saved_in(directory):
        return FrozenContentSTAMP.load(directory)
    from .intent import ContentSTAMP  # torch: only for a model saved before the numpy weights

    return ContentSTAMP.load(directory)


def assemble_intent(
    config: ContentSTAMPConfig,
    items: np.ndarray,
    keys: Sequence[str | None] | None,
    vec: np.ndarray,
    attention: np.ndarray,
    out_vectors: np.ndarray | None,
    transitions: ItemTransitions | None,
) -> Intent:
    """The `Intent` of a content STAMP once its query is known. items (L, D); vec (D,) the query P^T q (+ n_t);
    attention (L,) non-negative; out_vectors (K, D) the learned candidate vectors u_a of `config.item_keys`
    (None: the model has none)."""
    norm = float(np.linalg.norm(vec))
    unit = vec / max(norm, 1e-12)  # (D,)
    att = attention / max(float(attention.sum()), 1e-12)  # (L,)
    learned_ids: tuple[str, ...] = ()
    learned_scores = None
    if out_vectors is not None:
        learned_ids = config.item_keys
        learned_scores = out_vectors @ unit  # (K, D) @ (D,) -> (K,): q . u_a
    if transitions is not None and keys is not None:
        learned_ids, learned_scores = _add_transitions(transitions, learned_ids, learned_scores, keys)
    cold, calibration, protected = None, None, frozenset[str]()
    catalogue = frozenset(config.catalogue) if config.catalogue else None
    if catalogue is not None:
        cold, _ = zero_shot_query(items, config.zero_shot_temperature)  # (D,)
        cold = cold / max(float(np.linalg.norm(cold)), 1e-12)
        if config.cold_start == "score":
            calibration = ColdStartCalibration.from_tuple(config.cold_calibration)
        elif config.cold_protect > 0 and transitions is not None and keys is not None:
            t_rows, trans, _ = transitions.components(keys, popular=False)
            protected = frozenset(transitions.keys[j] for j in t_rows[trans >= config.cold_protect])
    return Intent(
        vector=unit,
        attention=att,
        cold_vector=cold,
        catalogue=catalogue,
        cold_calibration=calibration,
        cold_protected=protected,
        learned_ids=learned_ids if learned_scores is not None else (),
        learned_scores=learned_scores,
    )


def _add_transitions(
    transitions: ItemTransitions, ids: tuple[str, ...], scores: np.ndarray | None, keys: Sequence[str | None]
) -> tuple[tuple[str, ...], np.ndarray | None]:
    """The learned candidate scores plus weight * T(j | session) of the transition component, over the union
    of the articles either speaks for (an article in neither reads as its text alone)."""
    t_ids, t_scores = transitions.scores(keys)
    if not t_ids:
        return ids, scores
    merged = dict(zip(ids, scores.tolist())) if scores is not None else {}
    for a, t in zip(t_ids, t_scores.tolist()):
        merged[a] = merged.get(a, 0.0) + t
    return tuple(merged), np.fromiter(merged.values(), np.float32, len(merged))  # (K',)


def write_weights(directory: Path, weights: Mapping[str, np.ndarray]) -> str:
    """The weights as an uncompressed float32 npz (no pickle), the committed one kept as its backup until the
    config naming the new one is written; returns the new file's sha256."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, allow_pickle=False, **{k: np.asarray(v, dtype=np.float32) for k, v in weights.items()})

    return replace_keeping_committed_with(directory / WEIGHTS, write, recorded_sha256(directory / META, NPZ_SHA256))


def read_weights(directory: Path, config: ContentSTAMPConfig, sha256: str | None) -> dict[str, np.ndarray]:
    """The npz's arrays, each checked against the shape the config asks for before it is read: a config edited to
    absurd sizes, or an archive whose headers were, is an `IndexFormatError` before anything is allocated."""
    wanted = weight_shapes(config)
    path = committed_file(directory / WEIGHTS, sha256)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = {i.filename: i for i in zf.infolist()}
            if set(members) != {f"{k}.npy" for k in wanted}:
                extra, missing = (
                    set(members) - {f"{k}.npy" for k in wanted},
                    {f"{k}.npy" for k in wanted} - set(members),
                )
                raise IndexFormatError(
                    f"{path} does not fit {directory / META}: weights missing {sorted(missing)[:3]}, extra {sorted(extra)[:3]}"
                )
            for name, shape in wanted.items():
                info = members[f"{name}.npy"]
                nbytes = 4 * math.prod(shape)
                if info.compress_type != zipfile.ZIP_STORED or not nbytes < info.file_size <= nbytes + _HEADER_ROOM:
                    raise IndexFormatError(
                        f"{path}: {name} is compressed or not the {shape} float32 array {directory / META} asks for"
                    )
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    header = (
                        np.lib.format.read_array_header_1_0(fh)
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0(fh)
                    )
                    if header != (shape, False, np.dtype("<f4")):
                        raise IndexFormatError(
                            f"{path}: {name} is {header[0]} {header[2]}, the config asks {shape} float32"
                        )
                    data = fh.read(nbytes + 1)
                if len(data) != nbytes:
                    raise IndexFormatError(f"{path}: {name} holds {len(data)} bytes, {shape} float32 is {nbytes}")
                out[name] = np.frombuffer(data, dtype="<f4").reshape(shape)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise IndexFormatError(f"{path} is no readable weights archive: {exc}") from None
    return out
