"""The vector index: article ids <-> FAISS rows, inner-product search, incremental updates, atomic save/load.

`kind="flat"` is `IndexIDMap2(IndexFlatIP)`: exact, supports `remove_ids`. `kind="hnsw"` (large KBs) is
`IndexIDMap2(IndexHNSWFlat)`: approximate and fast, but HNSW cannot delete, so a removed or updated article's
old row is tombstoned (filtered at search time) until the next `compact()`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np

from .atomic import atomic_write_json, read_committed, recorded_sha256, replace_keeping_committed
from .errors import ConfigError, DimensionMismatchError, IndexFormatError, UnknownArticleError
from .lazy import LazyModule

__all__ = ["VectorIndex", "ArticleIndex", "INDEX_KINDS"]

INDEX_KINDS = ("flat", "hnsw")
_FORMAT = "session-suggest/index/v1"


def _tune(module: ModuleType) -> None:
    # faiss picks BLAS for flat search when n_queries * dim >= this threshold (default 20 * 6400). BLAS is ~8x
    # faster for batches (100 queries) but ~3x slower for one query (measured: 100k x 384, one thread), so
    # switch from about ten 384-d queries up.
    module.cvar.distance_compute_blas_threshold = 4096


if TYPE_CHECKING:
    import faiss
else:  # imported (and tuned) when the first index is built or loaded, not at `import plugin`
    faiss = LazyModule("faiss", _tune)


@runtime_checkable
class VectorIndex(Protocol):
    """add/remove/search over string ids with unit-norm float32 vectors."""

    dim: int

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None: ...

    def remove(self, ids: Sequence[str]) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]: ...

    def vectors(self, ids: Sequence[str]) -> np.ndarray: ...

    def __len__(self) -> int: ...


class ArticleIndex:
    def __init__(
        self,
        dim: int,
        kind: Literal["flat", "hnsw"] = "flat",
        *,
        encoder_name: str = "",
        hnsw_m: int = 32,
        ef_search: int = 64,
    ) -> None:
        if kind not in INDEX_KINDS:
            raise ConfigError(f"unknown index kind {kind!r}. Valid kinds are: {', '.join(INDEX_KINDS)}")
        if dim <= 0:
            raise ConfigError(f"index dimension must be positive, got {dim}")
        self.dim = dim
        self.kind = kind
        self.encoder_name = encoder_name
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self._index = self._new_faiss()
        self._row_of: dict[str, int] = {}  # article id -> faiss id
        self._id_of: dict[int, str] = {}  # faiss id -> article id (live rows only)
        self._next = 0
        self._tombstones = 0
        self._mean: np.ndarray | None = None  # cached mean of the live vectors, dropped on any change
        self._lock = threading.RLock()

    def _new_faiss(self) -> faiss.Index:
        if self.kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = 80
        inner.hnsw.efSearch = self.ef_search
        return faiss.IndexIDMap2(inner)

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._row_of

    def ids(self) -> list[str]:
        return list(self._row_of)

    def _check(self, vectors: np.ndarray, n: int | None = None) -> np.ndarray:
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2 or v.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"index holds {self.dim}-d vectors ({self.encoder_name or 'unknown encoder'}), got shape {v.shape}"
            )
        if n is not None and len(v) != n:
            raise ConfigError(f"{n} ids but {len(v)} vectors")
        if not np.isfinite(v).all():
            raise ConfigError("vectors contain NaN or infinity")
        return v

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add new articles and replace the vectors of existing ones."""
        v = self._check(vectors, len(ids))
        if len(set(ids)) != len(ids):
            raise ConfigError("duplicate ids in one upsert")
        with self._lock:
            self._drop(ids)
            self._mean = None
            rows = np.arange(self._next, self._next + len(ids), dtype=np.int64)
            self._next += len(ids)
            if len(ids):
                self._index.add_with_ids(v, rows)
            for aid, row in zip(ids, rows.tolist()):
                self._row_of[aid] = row
                self._id_of[row] = aid

    def _drop(self, ids: Sequence[str]) -> int:
        rows = [self._row_of.pop(a) for a in ids if a in self._row_of]
        if rows:
            self._mean = None
        for r in rows:
            del self._id_of[r]
        if rows:
            if self.kind == "flat":
                # faiss's Python layer takes an id array; its stub names only IDSelector
                self._index.remove_ids(np.array(rows, dtype=np.int64))  # type: ignore[arg-type]
            else:
                self._tombstones += len(rows)
        return len(rows)

    def remove(self, ids: Sequence[str]) -> int:
        with self._lock:
            return self._drop(ids)

    def mean_vector(self) -> np.ndarray:
        """The mean of the live vectors, (dim,), zeros for an empty index; cached until the next change."""
        with self._lock:
            if self._mean is None:
                ids = self.ids()
                total = np.zeros(self.dim, dtype=np.float64)
                for start in range(0, len(ids), 10_000):  # bounded memory on a large index
                    total += self.vectors(ids[start : start + 10_000]).sum(0, dtype=np.float64)
                self._mean = (total / max(len(ids), 1)).astype(np.float32)
            return self._mean

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of these articles, (len(ids), dim)."""
        with self._lock:
            try:
                rows = np.fromiter((self._row_of[a] for a in ids), dtype=np.int64, count=len(ids))
            except KeyError as exc:
                raise UnknownArticleError(f"article {exc.args[0]!r} is not in the index") from None
            if len(rows) == 0:
                return np.zeros((0, self.dim), dtype=np.float32)
            return self._index.reconstruct_batch(rows)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Top-k (article id, inner product) per query row, best first."""
        q = self._check(queries)
        if k <= 0:
            raise ConfigError(f"k must be positive, got {k}")
        with self._lock:
            if not self._row_of:
                return [[] for _ in range(len(q))]
            fetch = min(k + self._tombstones, self._index.ntotal)
            scores, rows = self._index.search(q, fetch)
            id_of = self._id_of
            # resolved under the lock: a concurrent remove/upsert must not change rows under our feet
            out = []
            for srow, rrow in zip(scores, rows):
                hits = [(id_of[r], float(s)) for s, r in zip(srow.tolist(), rrow.tolist()) if r in id_of]
                out.append(hits[:k])
        return out

    def compact(self) -> None:
        """Rebuild without tombstoned rows (HNSW)."""
        with self._lock:
            if not self._tombstones:
                return
            ids = list(self._row_of)
            vecs = self.vectors(ids)
            self._index = self._new_faiss()
            self._row_of.clear()
            self._id_of.clear()
            self._tombstones = 0
            self.upsert(ids, vecs)

    # ------------------------------------------------------------ persistence

    def save(self, directory: str | os.PathLike[str]) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        with self._lock:
            meta = {
                "format": _FORMAT,
                "dim": self.dim,
                "kind": self.kind,
                "encoder": self.encoder_name,
                "hnsw_m": self.hnsw_m,
                "ef_search": self.ef_search,
                "next": self._next,
                "tombstones": self._tombstones,
                "rows": self._row_of,
                "ntotal": int(self._index.ntotal),
            }
            blob = faiss.serialize_index(self._index)
        # Index first, then metadata, which records the index's sha256 and so commits the pair: after a crash
        # between the two renames, load finds the committed index in the backup kept by the first.
        data = blob.tobytes()
        meta["sha256"] = replace_keeping_committed(d / "index.faiss", data, recorded_sha256(d / "index.json"))
        atomic_write_json(d / "index.json", meta)

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, expect_dim: int | None = None) -> ArticleIndex:
        d = Path(directory)
        try:
            meta = json.loads((d / "index.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexFormatError(f"no index at {d} (index.json missing); build one with `python -m plugin index`") from None
        except ValueError as exc:
            raise IndexFormatError(f"{d / 'index.json'} is not valid JSON: {exc}") from None
        if meta.get("format") != _FORMAT:
            raise IndexFormatError(f"{d} holds format {meta.get('format')!r}, expected {_FORMAT!r}")
        if expect_dim is not None and meta["dim"] != expect_dim:
            raise DimensionMismatchError(
                f"index at {d} was built with {meta['dim']}-d vectors ({meta.get('encoder')}), "
                f"but the encoder gives {expect_dim}-d; rebuild the index with this encoder"
            )
        try:
            raw = np.frombuffer(read_committed(d / "index.faiss", meta.get("sha256")), dtype=np.uint8)
            index = _deserialize_bounded(raw)
        except (OSError, RuntimeError, MemoryError, ValueError, OverflowError) as exc:
            raise IndexFormatError(f"{d / 'index.faiss'} is unreadable: {str(exc)[:300]}") from None
        if index.ntotal != meta["ntotal"] or index.d != meta["dim"]:
            raise IndexFormatError(
                f"{d}: index.faiss holds {index.ntotal} x {index.d}, metadata says {meta['ntotal']} x {meta['dim']}"
            )
        self = cls(meta["dim"], meta["kind"], encoder_name=meta.get("encoder", ""), hnsw_m=meta["hnsw_m"],
                   ef_search=meta["ef_search"])
        self._index = index
        if self.kind == "hnsw":
            faiss.downcast_index(index.index).hnsw.efSearch = self.ef_search  # type: ignore[attr-defined]
        self._row_of = {k: int(v) for k, v in meta["rows"].items()}
        self._id_of = {v: k for k, v in self._row_of.items()}
        self._next = int(meta["next"])
        self._tombstones = int(meta["tombstones"])
        return self


_DESERIALIZE_LOCK = threading.Lock()


def _deserialize_bounded(raw: np.ndarray) -> faiss.Index:
    """faiss.deserialize_index, refusing any vector that claims more bytes than the whole file holds.

    A crafted file can declare a vector of 2^36 elements: faiss then allocates (and zero-fills) that much before
    it finds the bytes missing, which is a MemoryError at best and the OOM killer at worst. faiss checks each
    declared size against a process-wide limit (`size < limit / (4 * element size)`, default 1 TiB); for the
    duration of this read the limit is this file's length. The lock keeps two loads from mixing limits."""
    with _DESERIALIZE_LOCK:
        before = faiss.get_deserialization_vector_byte_limit()
        faiss.set_deserialization_vector_byte_limit(4 * (int(raw.nbytes) + 64))
        try:
            return faiss.deserialize_index(raw)
        finally:
            faiss.set_deserialization_vector_byte_limit(before)
