"""Build (or load from the on-disk embedding cache) the plugin's index for a documentation corpus.

Embeddings are cached under runs/relevance-cache/ (ignored by git), keyed by the encoder and a hash of each text,
so a rerun after a change elsewhere re-encodes only texts that changed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from plugin import CachedEncoder, EmbeddingCache, SentenceTransformerEncoder, SessionRecommender
from plugin.chunking import MAX_WINDOWS
from plugin.encoder import Encoder

from .docs_corpus import DocsCorpus

__all__ = ["DEFAULT_CACHE", "build_recommender"]

logger = logging.getLogger(__name__)

DEFAULT_CACHE = Path("runs/relevance-cache/embeddings.npz")


def build_recommender(
    corpus: DocsCorpus,
    *,
    cache_path: Path = DEFAULT_CACHE,
    encoder: Encoder | None = None,
    progress: bool = True,
    max_windows: int | None = MAX_WINDOWS,
    **kwargs,
) -> SessionRecommender:
    """The plugin's own `SessionRecommender.build` over the corpus's articles, with cached embeddings
    (`max_windows`: windows pooled per article, `plugin.chunking`)."""
    inner = encoder if encoder is not None else SentenceTransformerEncoder()
    cache = EmbeddingCache(inner.dim, inner.name)
    if cache_path.exists():
        cache = EmbeddingCache.load(cache_path, inner.dim, inner.name)
    enc = CachedEncoder(inner, cache, max_windows=max_windows)
    rec = SessionRecommender.build(corpus.articles, encoder=enc, index_kind="flat", progress=progress, **kwargs)
    if enc.misses:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache.save(cache_path)
        logger.info("embedded %d new texts for %s; cache saved to %s", enc.misses, corpus.name, cache_path)
    return rec
