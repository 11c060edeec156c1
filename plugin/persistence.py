"""An index folder on disk: what one version holds, and how a recommender is made back from it.

A version folder (`plugin.versions` commits them atomically) holds `articles.jsonl` (the KB), `embeddings.npz`
(the encoder's cache: article windows pooled, titles), `index.json` + `index.faiss` (`plugin.index`),
`settings.json` (the suggestion settings it was saved with), what the recommender derives from the whole KB and
would otherwise recompute at every load (`hubness.npz`: each article's neighbourhood similarity, `plugin.hubness`;
`titles.npz`: the centred title vectors, `plugin.titles`) and, when one is installed, the trained intent model
(`intent_model.json` + weights: a state_dict, `plugin.intent`, and the same arrays in numpy, `plugin.frozen_intent`). Nothing is pickled.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard, cast

import numpy as np

from .arrays import open_npz
from .atomic import atomic_write_json, atomic_write_text, atomic_write_with
from .config import SuggestSettings
from .encoder import (
    CachedEncoder,
    EmbeddingCache,
    Encoder,
    HashingEncoder,
    LazyEncoder,
    SentenceTransformerEncoder,
    backend_of,
    default_encoder_name,
    sentence_encoder,
)
from .errors import ConfigError, IndexFormatError
from .index import ArticleIndex
from .knowledge_base import KnowledgeBase, iter_jsonl
from .versions import resolve_version
from .zero_shot import IntentModel

if TYPE_CHECKING:
    from .frozen_intent import FrozenContentSTAMP
    from .intent import ContentSTAMP
    from .recommender import SessionRecommender

__all__ = ["encoder_for", "is_trained", "load_version", "write_version"]

logger = logging.getLogger(__name__)


def encoder_for(name: str, dim: int) -> Encoder:
    """The encoder an index was built with, from the name and dimension it recorded. The packaged
    sentence-transformer is made on first use only (`LazyEncoder`): loading it costs seconds, and a session
    whose pages are all in the index never needs it."""
    if name.startswith("hashing:"):
        return HashingEncoder(int(name.split(":", 1)[1]))
    if name.startswith("item-model:"):
        raise ConfigError(
            f"this index holds a session model's item vectors ({name}); "
            "serve it with plugin.serving.recommender_from_model(model_dir)"
        )
    backend = backend_of(name)
    if backend is not None and name == default_encoder_name(backend) and dim > 0:
        return LazyEncoder(partial(sentence_encoder, backend), name, dim)
    return SentenceTransformerEncoder()  # the constructor then says which encoder the index wants


def is_trained(model: IntentModel) -> TypeGuard[ContentSTAMP | FrozenContentSTAMP]:
    """A trained content STAMP, as the torch module or in numpy (`plugin.frozen_intent`), saved with the index (a
    zero-shot one is rebuilt on load instead). Checked without importing torch: no ContentSTAMP can exist unless
    plugin.intent was imported. The module may still be importing in another thread (a worker's reload thread
    loading its first trained model): no class exists before its module has defined it, and a request must not
    fail on the missing name meanwhile."""
    classes = tuple(
        c
        for c in (
            getattr(sys.modules.get(f"{__package__}.intent"), "ContentSTAMP", None),
            getattr(sys.modules.get(f"{__package__}.frozen_intent"), "FrozenContentSTAMP", None),
        )
        if isinstance(c, type)
    )
    if not classes or not isinstance(model, classes):
        return False
    return not cast("ContentSTAMP | FrozenContentSTAMP", model).config.zero_shot


def write_version(rec: SessionRecommender, d: Path) -> None:
    """Every file of one version, into the empty folder `d`."""
    lines = "".join(json.dumps(a.to_dict(), ensure_ascii=False) + "\n" for a in rec.kb)
    atomic_write_text(d / "articles.jsonl", lines)
    rec.encoder.cache.save(d / "embeddings.npz")
    if is_trained(rec.intent_model):
        rec.intent_model.save(d)
    atomic_write_json(d / "settings.json", {"suggest": rec.settings.model_dump()})
    _write_derived(rec, d)
    rec.index.save(d)


def _write_derived(rec: SessionRecommender, d: Path) -> None:
    """hubness.npz and titles.npz, for the parts the settings use (computed now if not yet)."""
    if not getattr(rec, "_embeds_text", True):
        return
    if rec.settings.hubness_weight > 0 and rec.settings.centre:
        ids, r = rec.hubness.export()
        if ids:
            _write_npz(d / "hubness.npz", ids=np.array(ids, dtype=str), r=r, centre=np.array(rec.settings.centre))
    if rec.settings.title_weight > 0:
        got = rec.titles.export()
        if got is not None and got[0]:
            _write_npz(d / "titles.npz", ids=np.array(got[0], dtype=str), vectors=got[1])


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)

    atomic_write_with(path, write)


def _read_derived(rec: SessionRecommender, d: Path) -> None:
    """Preload what the version saved of hubness and titles; a file that does not fit this KB is left unused (it is
    then recomputed, as for a version saved before these files existed)."""
    dim = rec.index.dim
    for name in ("hubness.npz", "titles.npz"):
        path = d / name
        if not path.exists():
            continue
        try:
            with open_npz(path) as z:
                ids = z["ids"].tolist()
                if name == "hubness.npz":
                    r = z["r"]
                    if r.shape == (len(ids),) and bool(z["centre"]) == rec.settings.centre:
                        rec.hubness.preload(ids, r)
                        continue
                else:
                    vecs = z["vectors"]
                    if vecs.shape == (len(ids), dim):
                        rec.titles.preload(ids, vecs)
                        continue
        except (OSError, ValueError, KeyError, IndexFormatError) as exc:
            logger.warning("%s unreadable (%s): recomputed when needed", path, exc)
            continue
        logger.warning("%s does not fit this index: recomputed when needed", path)


def load_version(
    cls: type[SessionRecommender], directory: str | os.PathLike[str], encoder: Encoder | None, kwargs: dict[str, Any]
) -> SessionRecommender:
    """One committed version of an index folder as a `cls` (SessionRecommender or a subclass)."""
    kwargs = dict(kwargs)
    d, version = resolve_version(directory)
    if not (d / "index.json").exists():
        raise IndexFormatError(
            f"no index in {directory}; build one with `python -m plugin index SOURCE --out {directory}`"
        )
    try:
        meta = json.loads((d / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{d / 'index.json'} is unreadable: {exc}") from None
    enc = encoder if encoder is not None else encoder_for(meta.get("encoder", ""), int(meta.get("dim", 0)))
    index = ArticleIndex.load(d, expect_dim=enc.dim)
    try:
        kb = KnowledgeBase(iter_jsonl(d / "articles.jsonl"))
    except FileNotFoundError:
        raise IndexFormatError(f"{d} has no articles.jsonl") from None
    missing = set(index.ids()) - set(kb.ids())
    if missing:
        raise IndexFormatError(f"{d}: {len(missing)} indexed article(s) have no record in articles.jsonl")
    cache = EmbeddingCache(enc.dim, enc.name)
    if (d / "embeddings.npz").exists():
        cache = EmbeddingCache.load(d / "embeddings.npz", enc.dim, enc.name)
    if "intent_model" not in kwargs and (d / "intent_model.json").exists():
        from .frozen_intent import load_intent_model  # numpy; torch only for a model saved before its npz

        kwargs["intent_model"] = load_intent_model(d)
    if "settings" not in kwargs and (d / "settings.json").exists():
        try:
            kwargs["settings"] = SuggestSettings.model_validate(
                json.loads((d / "settings.json").read_text(encoding="utf-8"))["suggest"]
            )
        except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            raise IndexFormatError(
                f"{d / 'settings.json'} holds no valid suggestion settings: {str(exc)[:200]}"
            ) from None
    rec = cls(kb, CachedEncoder(enc, cache), index, **kwargs)
    rec.version = version
    _read_derived(rec, d)
    return rec
