"""The vector index: article ids <-> FAISS rows, inner-product search, incremental updates, atomic save/load.

Which kinds allow what:

| kind | search | add | update / delete | memory-mapped load (workers share one copy) |
|---|---|---|---|---|
| `flat` | exact, O(N) | yes | yes (`remove_ids`) | no: each process reads its own copy |
| `ivf` | approximate (`nprobe` of `nlist` lists) | yes | yes (`remove_ids` through a hashed direct map) | yes |
| `ivfpq` | approximate: 4-bit PQ fast scan of `nprobe` lists, the best `rerank` re-scored exactly | yes | yes (both sets of lists) | yes (the exact lists; the PQ codes, ~N x 96 bytes at 384-d, are read) |
| `hnsw` | approximate (graph, `ef_search`) | yes | tombstones filtered inside the search; a rebuild past `HNSW_COMPACT_AT` | yes (the vectors; the graph links are read) |

`flat` is `IndexIDMap2(IndexFlatIP)`. `ivf` is `IndexIVFFlat` (inner product) holding the rows as its own ids,
its direct map a hash table so that rows can be reconstructed and removed; until it is trained (`train_at`
vectors, or `train()`), it is the flat index, exact. Its centroids stay as trained: adds and updates go to the
nearest list without a rebuild; after the KB has changed shape a `rebuild()` (`--rebuild`) re-trains them.
`ivfpq` is the `ivf` index plus a second set of lists over the same centroids holding 4-bit product-quantised
codes (`IndexIVFPQFastScan`, `pq_m` sub-quantisers): a search scans the codes (SIMD lookup tables, several times
faster than float vectors) for the best `rerank` rows, then re-scores those exactly against the `ivf` lists'
vectors, so its order is exact among them and `vectors()` stays exact. Untrained it is the flat index, like `ivf`.
Chosen for a million articles on tuning queries (bench/million.py, BENCHMARKS.md "A million articles").
`hnsw` is `IndexIDMap2(IndexHNSWFlat)`. An HNSW graph cannot drop a node, so a removed or updated article's old
row stays in the graph as a tombstone: searches still walk through it (the graph keeps its routes, so recall holds)
but an `IDSelector` over the dead rows keeps it out of the results, so a search asks for k rows, not k plus every
tombstone. When the tombstones reach `HNSW_COMPACT_AT` of the live rows, the change that crossed it rebuilds the
graph (`compact()`): they cost memory and, many, the graph's quality. A server memory-maps the vectors
(`IO_FLAG_MMAP_IFC`) and reads the graph; the first add copies the whole index into memory (writers only).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Iterable, Sequence
from itertools import repeat
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from .atomic import (
    atomic_write_json,
    committed_file,
    read_committed,
    recorded_sha256,
    replace_keeping_committed_with,
)
from .errors import (
    ConfigError,
    DimensionMismatchError,
    IndexFormatError,
    PluginError,
    UnknownArticleError,
)
from .lazy import LazyModule

__all__ = [
    "VectorIndex",
    "ArticleIndex",
    "INDEX_KINDS",
    "IVF_NPROBE",
    "IVF_TRAIN_AT",
    "PQ_NPROBE",
    "PQ_RERANK",
    "HNSW_M",
    "HNSW_EF_SEARCH",
    "HNSW_COMPACT_AT",
    "auto_nlist",
]

logger = logging.getLogger(__name__)

INDEX_KINDS = ("flat", "ivf", "ivfpq", "hnsw")
_IVF_KINDS = ("ivf", "ivfpq")
_FORMAT = "session-suggest/index/v1"

# ivf defaults, chosen on synthetic clustered 384-d vectors (bench/million.py, its tuning queries): nprobe 32 of
# auto_nlist(1M) = 4096 lists is the smallest that gave recall@10 >= 0.95 against exact search (0.951; 0.942 on
# held-out queries); it costs ~1 ms of CPU a search there, p99 1.3 ms (BENCHMARKS.md, "A million articles").
IVF_NPROBE = 32
# ivfpq: 4-bit sub-quantisers a code, by default one per 2 dimensions (192 at 384-d: 96 bytes a vector, 1/16 of
# the float vector). Measured on bench/million.py's tuning queries at 60,000 articles (nprobe 32): one per 4
# dimensions needed 4x the re-ranked rows for the same recall (0.985 at 400 against 100); residual codes were no
# more accurate and slower.
# ivfpq's nprobe and re-ranked rows, chosen at a million articles on the tuning queries of bench/million.py
# (BENCHMARKS.md, "A million articles"): the lowest CPU p99 among configurations with tuning recall@10 >= 0.96 --
# the goal 0.95 plus the 0.01 by which held-out recall fell short of tuning recall in the ivf measurement before
# it (0.951 tuning, 0.942 held-out). At nprobe 96 its scan costs a third of the flat lists' CPU (p50 0.67 against
# 1.98 ms) and less than ivf's default nprobe 32 (0.98 ms), at higher recall.
PQ_NPROBE = 96
PQ_RERANK = 100  # ivfpq: rows re-scored exactly a query (at least k)
HNSW_M = 32  # hnsw: links a node (2x on the bottom layer); build cost and memory grow with it
HNSW_EF_SEARCH = 64  # hnsw: candidates a search keeps (at least k)
# hnsw: tombstones, as a fraction of the live rows, at which a change rebuilds the graph (a full rebuild: minutes
# at a million articles, so it happens on a writer's change, never on a search)
HNSW_COMPACT_AT = 0.25
IVF_TRAIN_AT = 50_000  # an ivf index grown article by article turns from exact to inverted lists here
_MIN_POINTS_PER_LIST = 39  # k-means with fewer points a centroid is poorly determined (faiss warns likewise)


def auto_nlist(n: int) -> int:
    """Inverted lists for n vectors: the power of two nearest 4 * sqrt(n) (faiss's guideline), 16 to 65536."""
    return int(min(65536, max(16, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))))


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
        kind: Literal["flat", "ivf", "ivfpq", "hnsw"] = "flat",
        *,
        encoder_name: str = "",
        hnsw_m: int = HNSW_M,
        ef_search: int = HNSW_EF_SEARCH,
        nlist: int | None = None,
        nprobe: int | None = None,
        train_at: int = IVF_TRAIN_AT,
        pq_m: int | None = None,
        rerank: int = PQ_RERANK,
    ) -> None:
        if kind not in INDEX_KINDS:
            raise ConfigError(f"unknown index kind {kind!r}. Valid kinds are: {', '.join(INDEX_KINDS)}")
        if dim <= 0:
            raise ConfigError(f"index dimension must be positive, got {dim}")
        self.dim = dim
        self.kind = kind
        self.encoder_name = encoder_name
        if nlist is not None and nlist < 1:
            raise ConfigError(f"nlist must be at least 1 (or None: chosen from the size at training), got {nlist}")
        nprobe = nprobe or (PQ_NPROBE if kind == "ivfpq" else IVF_NPROBE)
        if nprobe < 1 or train_at < 1 or rerank < 1:
            raise ConfigError(f"nprobe, train_at and rerank must be at least 1, got {nprobe}, {train_at}, {rerank}")
        pq_m = pq_m or (dim // 2 if dim % 2 == 0 else dim)
        if kind == "ivfpq" and (pq_m < 1 or dim % pq_m):
            raise ConfigError(f"pq_m must divide the dimension {dim}, got {pq_m}")
        self.pq_m = pq_m
        self.rerank = rerank
        self._scan: faiss.Index | None = None  # ivfpq once trained: the PQ fast-scan lists
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.nlist = nlist  # lists once trained (None before, when chosen from the size at training)
        self._nlist_asked = nlist
        self.nprobe = nprobe
        self.train_at = train_at
        self._mapped = False  # loaded memory-mapped (read-only): copied into memory before the first change
        self._index = self._new_faiss()
        self._row_of: dict[str, int] = {}  # article id -> faiss id
        # faiss id -> article id (None: a removed row), as an array: a search turns ~50 rows into ids, and looking
        # each up in a million-entry dict cost ~0.6 us of cache misses apiece (~30 us a search at a million)
        self._names = np.empty(0, dtype=object)
        self._next = 0
        self._tombstones = 0
        self._dead: set[int] = set()  # hnsw: tombstoned rows, still in the graph
        self._live_params: faiss.SearchParameters | None = None  # hnsw: a search that skips them (built lazily)
        self._mean: np.ndarray | None = None  # cached mean of the live vectors, dropped on any change
        self._lock = threading.RLock()

    def _new_faiss(self) -> faiss.Index:
        if self.kind in ("flat", *_IVF_KINDS):  # an untrained ivf index is the flat one
            inner = faiss.IndexFlatIP(self.dim)
        else:
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
            inner.hnsw.efSearch = self.ef_search
        return faiss.IndexIDMap2(inner)

    def __len__(self) -> int:
        return len(self._row_of)

    @property
    def trained(self) -> bool:
        """True once an ivf index searches its inverted lists (before, it is exact)."""
        return isinstance(self._index, faiss.IndexIVF)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._row_of

    def ids(self) -> list[str]:
        return list(self._row_of)

    def holding(self, ids: Iterable[str]) -> set[str]:
        """Which of these articles the index holds: one set operation instead of `in` per id (a suggestion asks
        about its whole candidate pool)."""
        with self._lock:
            return self._row_of.keys() & set(ids)

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
            self._writable()
            self._drop(ids)
            self._mean = None
            rows = np.arange(self._next, self._next + len(ids), dtype=np.int64)
            self._next += len(ids)
            if len(ids):
                self._add(v, rows)
            for aid, row in zip(ids, rows.tolist()):
                self._row_of[aid] = row
            self._name(rows, ids)
            if self.kind in _IVF_KINDS and not self.trained and len(self._row_of) >= self.train_at:
                self.train()
            self._compact_if_due()

    def _name(self, rows: np.ndarray, ids: Sequence[str]) -> None:
        """Record rows' article ids in `_names`, growing it by doubling (rows only ever grow, up to `_next`)."""
        if self._next > len(self._names):
            grown = np.empty(max(self._next, 2 * len(self._names)), dtype=object)
            grown[: len(self._names)] = self._names
            self._names = grown
        named = np.empty(len(ids), dtype=object)
        named[:] = list(ids)  # element by element: a list of equal-length strings must not become a 2-d array
        self._names[rows] = named

    def _live_rows(self) -> np.ndarray:
        """The live rows, ascending (the order they were added in)."""
        return np.fromiter(sorted(self._row_of.values()), dtype=np.int64, count=len(self._row_of))

    def _add(self, v: np.ndarray, rows: np.ndarray) -> None:
        self._index.add_with_ids(v, rows)
        if self._scan is not None:
            self._scan.add_with_ids(v, rows)

    def train(self) -> None:
        """Turn an ivf index that is still flat into inverted lists, clustering the vectors it holds now
        (no-op for other kinds, once trained, or with fewer than 39 vectors a list: it stays exact)."""
        with self._lock:
            if self.kind not in _IVF_KINDS or self.trained:
                return
            n = len(self._row_of)
            nlist = self._nlist_asked or auto_nlist(n)
            if n < _MIN_POINTS_PER_LIST * nlist:
                logger.info("ivf index stays exact: %d vectors are too few to train %d lists", n, nlist)
                return
            self._writable()
            rows = self._live_rows()
            vecs = self._index.reconstruct_batch(rows)  # (n, D)
            ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            # k-means on at most 64 points a list and 10 rounds: recall is set by nprobe, and the default
            # 256 points x 25 rounds costs ~10x the build time. Flat lists, not 8-bit codes over an HNSW coarse
            # quantizer: measured at 1M (bench/million.py), that variant lost recall (0.934 against 0.951 at
            # nprobe 32) and gained only a quarter of the time; flat lists also give `vectors()` back exactly.
            ivf.cp.max_points_per_centroid = 64
            ivf.cp.niter = 10
            sample = vecs
            if n > 64 * nlist:
                sample = vecs[np.random.default_rng(0).choice(n, 64 * nlist, replace=False)]
            ivf.train(sample)
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct and remove by row id
            ivf.nprobe = self.nprobe
            if self.kind == "ivfpq":
                # codes trained on the same sample; by_residual off: measured no better here, and it costs a
                # table per probed list
                scan = faiss.IndexIVFPQFastScan(
                    ivf.quantizer, self.dim, nlist, self.pq_m, 4, faiss.METRIC_INNER_PRODUCT
                )
                scan.by_residual = False
                scan.train(sample)
                scan.nprobe = self.nprobe
                self._scan = scan
            # the flat copy goes before the lists fill: a million 384-d rows are 1.5 GB each
            self._index = ivf
            self._add(vecs, rows)
            self.nlist = nlist

    def set_nprobe(self, nprobe: int) -> None:
        """Lists an ivf search visits: more is closer to exact and slower (bench/million.py measures both)."""
        if nprobe < 1:
            raise ConfigError(f"nprobe must be at least 1, got {nprobe}")
        with self._lock:
            self.nprobe = nprobe
            if self.trained:
                self._index.nprobe = nprobe
            if self._scan is not None:
                self._scan.nprobe = nprobe

    def set_ef_search(self, ef_search: int) -> None:
        """Candidates an hnsw search keeps: more is closer to exact and slower (bench/million.py measures both)."""
        if ef_search < 1:
            raise ConfigError(f"ef_search must be at least 1, got {ef_search}")
        with self._lock:
            self.ef_search = ef_search
            self._live_params = None
            if self.kind == "hnsw":
                faiss.downcast_index(self._index.index).hnsw.efSearch = ef_search

    def _writable(self) -> None:
        """A memory-mapped index is read-only: copy its lists into memory before the first change."""
        if not self._mapped:
            return
        if self.kind == "hnsw":
            # the mapped vectors cannot grow (faiss aborts the process on a resize of a mapped vector), and a clone
            # shares the mapping: a copy through the serialised form, once, is the owned one
            self._index = faiss.deserialize_index(faiss.serialize_index(self._index))
            faiss.downcast_index(self._index.index).hnsw.efSearch = self.ef_search
            self._mapped = False
            return
        ivf = faiss.extract_index_ivf(self._index)
        src = ivf.invlists
        mem = faiss.ArrayInvertedLists(src.nlist, src.code_size)
        for i in range(src.nlist):
            size = src.list_size(i)
            if size:
                mem.add_entries(i, size, src.get_ids(i), src.get_codes(i))
        ivf.replace_invlists(mem, True)  # frees the mapped lists
        mem.this.disown()  # faiss owns the new lists now; python must not free them too
        self._mapped = False

    def _drop(self, ids: Sequence[str]) -> int:
        rows = [self._row_of.pop(a) for a in ids if a in self._row_of]
        if rows:
            self._mean = None
            self._names[rows] = None
            if self.kind in ("flat", *_IVF_KINDS):
                self._writable()
                # faiss's Python layer takes an id array; its stub names only IDSelector
                self._index.remove_ids(np.array(rows, dtype=np.int64))  # type: ignore[arg-type]
                if self._scan is not None:  # no direct map (fast-scan lists have none): a pass over its ids
                    self._scan.remove_ids(np.array(rows, dtype=np.int64))  # type: ignore[arg-type]
            else:  # hnsw: the rows stay in the graph, filtered out of every search (no copy of a mapped index)
                self._tombstones += len(rows)
                self._dead.update(rows)
                self._live_params = None
        return len(rows)

    def remove(self, ids: Sequence[str]) -> int:
        with self._lock:
            removed = self._drop(ids)
            self._compact_if_due()
            return removed

    def _compact_if_due(self) -> None:
        if self.kind == "hnsw" and self._tombstones > HNSW_COMPACT_AT * max(len(self._row_of), 1):
            logger.info(
                "hnsw index: %d tombstones against %d live rows: rebuilding the graph",
                self._tombstones,
                len(self._row_of),
            )
            self.rebuild()

    def _search_params(self) -> faiss.SearchParameters | None:
        """hnsw with tombstones: search parameters whose selector keeps the dead rows out of the results
        (caller holds the lock)."""
        if not self._dead:
            return None
        if self._live_params is None:
            dead = faiss.IDSelectorBatch(np.fromiter(self._dead, dtype=np.int64, count=len(self._dead)))
            live = faiss.IDSelectorNot(dead)
            params = faiss.SearchParametersHNSW()
            params.sel = live
            params.efSearch = self.ef_search
            # the SWIG objects hold raw pointers to one another: keep the Python owners alive with them
            self._live_params = params
            self._selectors = (dead, live)
        return self._live_params

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
                rows = np.fromiter(map(self._row_of.__getitem__, ids), dtype=np.int64, count=len(ids))
            except KeyError as exc:
                raise UnknownArticleError(f"article {exc.args[0]!r} is not in the index") from None
            if len(rows) == 0:
                return np.zeros((0, self.dim), dtype=np.float32)
            return self._index.reconstruct_batch(rows)

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """The rows of these articles, -1 for one the index does not hold: `holding` and `vectors` in one
        look-up per id (for `vectors_at`)."""
        with self._lock:
            return np.fromiter(map(self._row_of.get, ids, repeat(-1)), dtype=np.int64, count=len(ids))

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of rows `rows(ids)` returned, (len(rows), dim); UnknownArticleError when one was
        removed since."""
        with self._lock:
            if len(rows) == 0:
                return np.zeros((0, self.dim), dtype=np.float32)
            if any(a is None for a in self._names[rows].tolist()):
                raise UnknownArticleError("an article was removed from the index during the request")
            return self._index.reconstruct_batch(rows)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Top-k (article id, inner product) per query row, best first."""
        return self._search(queries, k, False)

    def search_rows(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float, int]]]:
        """`search`'s hits with each article's row (for `vectors_at`): a caller that reads the hits' vectors need
        not look their rows up again (a million-entry dict: a cache miss or two an id)."""
        return self._search(queries, k, True)

    def _search(self, queries: np.ndarray, k: int, with_rows: bool) -> list[list[Any]]:
        q = self._check(queries)
        if k <= 0:
            raise ConfigError(f"k must be positive, got {k}")
        with self._lock:
            if not self._row_of:
                return [[] for _ in range(len(q))]
            if self._scan is not None:
                return self._search_rerank(q, k, with_rows)
            fetch = min(k, len(self._row_of)) if self.kind == "hnsw" else min(k + self._tombstones, self._index.ntotal)
            scores, rows = self._index.search(q, fetch, params=self._search_params())
            # resolved under the lock: a concurrent remove/upsert must not change rows under our feet
            out = []
            for srow, rrow in zip(scores, rows):
                names = self._names[rrow].tolist()  # (fetch,) None for a removed row; -1 (none found) masked below
                hits = [
                    (a, s, r) if with_rows else (a, s)
                    for a, s, r in zip(names, srow.tolist(), rrow.tolist())
                    if r >= 0 and a is not None
                ]
                out.append(hits[:k])
        return out

    def _search_rerank(self, q: np.ndarray, k: int, with_rows: bool) -> list[list[Any]]:
        """ivfpq: the best `rerank` rows by their PQ codes, re-scored exactly (caller holds the lock)."""
        assert self._scan is not None
        _, rows = self._scan.search(q, min(max(self.rerank, k), self._scan.ntotal))  # (nq, R)
        out: list[list[Any]] = []
        for qi, rrow in enumerate(rows):
            live = rrow[rrow >= 0]  # (r,)
            if not len(live):
                out.append([])
                continue
            exact = self._index.reconstruct_batch(live) @ q[qi]  # (r,)
            best = np.argsort(-exact, kind="stable")[:k]
            # as Python ints and floats in one conversion each, not one numpy scalar per hit
            top = live[best]  # (k,)
            names, scores = self._names[top].tolist(), exact[best].tolist()
            out.append(list(zip(names, scores, top.tolist())) if with_rows else list(zip(names, scores)))
        return out

    def compact(self) -> None:
        """Rebuild without tombstoned rows (HNSW)."""
        with self._lock:
            if not self._tombstones:
                return
            self.rebuild()

    def rebuild(self) -> None:
        """A new FAISS index over the live vectors: drops HNSW tombstones and re-trains ivf centroids on the
        articles the index holds now."""
        with self._lock:
            ids = list(self._row_of)
            vecs = self.vectors(ids)
            self._index = self._new_faiss()
            self._scan = None
            self._row_of.clear()
            self._names = np.empty(0, dtype=object)
            self._tombstones = 0
            self._dead.clear()
            self._live_params = None
            self._mapped = False
            self.nlist = self._nlist_asked
            self.upsert(ids, vecs)
            self.train()

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
                "nlist": self._nlist_asked,
                "nprobe": self.nprobe,
                "train_at": self.train_at,
                "pq_m": self.pq_m,
                "rerank": self.rerank,
                "trained": self.trained,
                "next": self._next,
                "tombstones": self._tombstones,
                "rows": self._row_of,
                "ntotal": int(self._index.ntotal),
            }
            # Index first, then metadata, which records the index's sha256 and so commits the pair: after a crash
            # between the two renames, load finds the committed index in the backup kept by the first. FAISS
            # writes the file itself: a million-article index is never held in memory twice.
            if self._mapped and self.kind != "hnsw":
                self._writable()  # write_index cannot read memory-mapped lists back into the file format (it can
                # read hnsw's mapped vectors)
            index = self._index
            meta["sha256"] = replace_keeping_committed_with(
                d / "index.faiss", lambda tmp: faiss.write_index(index, tmp), recorded_sha256(d / "index.json")
            )
            scan = self._scan
            if scan is not None:
                meta["scan_sha256"] = replace_keeping_committed_with(
                    d / "scan.faiss",
                    lambda tmp: faiss.write_index(scan, tmp),
                    recorded_sha256(d / "index.json", "scan_sha256"),
                )
        atomic_write_json(d / "index.json", meta)

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], *, expect_dim: int | None = None, mmap: bool | None = None
    ) -> ArticleIndex:
        """The index saved in `directory`. A trained ivf index (its lists) and an hnsw index (its vectors) are
        memory-mapped unless `mmap=False`: the processes serving one index folder then share one copy in the page
        cache instead of each holding its own (a change copies them into memory first). A field of index.json that is
        missing or of another type is an `IndexFormatError` naming the file."""
        d = Path(directory)
        try:
            return cls._load(d, expect_dim, mmap)
        except PluginError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # e.g. "rows": [] or "next": "x"
            raise IndexFormatError(
                f"{d / 'index.json'}: a field is missing or of the wrong type ({type(exc).__name__}: {str(exc)[:120]})"
            ) from None

    @classmethod
    def _load(cls, d: Path, expect_dim: int | None, mmap: bool | None) -> ArticleIndex:
        try:
            meta = json.loads((d / "index.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexFormatError(
                f"no index at {d} (index.json missing); build one with `python -m plugin index`"
            ) from None
        except ValueError as exc:
            raise IndexFormatError(f"{d / 'index.json'} is not valid JSON: {exc}") from None
        if meta.get("format") != _FORMAT:
            raise IndexFormatError(f"{d} holds format {meta.get('format')!r}, expected {_FORMAT!r}")
        if expect_dim is not None and meta["dim"] != expect_dim:
            raise DimensionMismatchError(
                f"index at {d} was built with {meta['dim']}-d vectors ({meta.get('encoder')}), "
                f"but the encoder gives {expect_dim}-d; rebuild the index with this encoder"
            )
        ivf_kind = meta.get("kind") in _IVF_KINDS
        hnsw = meta.get("kind") == "hnsw"
        mapped = bool(((ivf_kind and meta.get("trained")) or hnsw) and mmap is not False)
        scan = None
        try:
            if mapped:
                path = committed_file(d / "index.faiss", meta.get("sha256"))
                # IO_FLAG_MMAP maps inverted lists; IO_FLAG_MMAP_IFC maps a flat code array (hnsw's vectors)
                flag = faiss.IO_FLAG_MMAP_IFC if hnsw else faiss.IO_FLAG_MMAP
                index = _read_bounded(path, flag | faiss.IO_FLAG_READ_ONLY)
            else:
                raw = np.frombuffer(read_committed(d / "index.faiss", meta.get("sha256")), dtype=np.uint8)
                index = _deserialize_bounded(raw)
            if meta.get("kind") == "ivfpq" and meta.get("trained"):
                raw = np.frombuffer(read_committed(d / "scan.faiss", meta.get("scan_sha256")), dtype=np.uint8)
                scan = _deserialize_bounded(raw)
        except (OSError, RuntimeError, MemoryError, ValueError, OverflowError) as exc:
            raise IndexFormatError(f"{d / 'index.faiss'} is unreadable: {str(exc)[:300]}") from None
        if ivf_kind and bool(meta.get("trained")) != isinstance(index, faiss.IndexIVF):
            raise IndexFormatError(
                f"{d}: index.json says a{'' if meta.get('trained') else 'n un'}trained ivf index, "
                f"index.faiss holds a {type(index).__name__}"
            )
        if scan is not None and (scan.ntotal != index.ntotal or not isinstance(scan, faiss.IndexIVF)):
            raise IndexFormatError(f"{d}: scan.faiss does not match index.faiss ({scan.ntotal} vs {index.ntotal} rows)")
        if index.ntotal != meta["ntotal"] or index.d != meta["dim"]:
            raise IndexFormatError(
                f"{d}: index.faiss holds {index.ntotal} x {index.d}, metadata says {meta['ntotal']} x {meta['dim']}"
            )
        self = cls(
            meta["dim"],
            meta["kind"],
            encoder_name=meta.get("encoder", ""),
            hnsw_m=meta["hnsw_m"],
            ef_search=meta["ef_search"],
            nlist=meta.get("nlist"),
            nprobe=meta.get("nprobe"),
            train_at=int(meta.get("train_at", IVF_TRAIN_AT)),
            pq_m=meta.get("pq_m"),
            rerank=int(meta.get("rerank", PQ_RERANK)),
        )
        self._index = index
        self._scan = scan
        if scan is not None:
            scan.nprobe = self.nprobe
        self._mapped = mapped
        if self.kind == "hnsw":
            faiss.downcast_index(index.index).hnsw.efSearch = self.ef_search
        if isinstance(index, faiss.IndexIVF):
            index.nprobe = self.nprobe
            self.nlist = int(index.nlist)
        self._row_of = {k: int(v) for k, v in meta["rows"].items()}
        self._next = int(meta["next"])
        if self._row_of:
            rows = np.fromiter(self._row_of.values(), dtype=np.int64, count=len(self._row_of))
            if int(rows.min()) < 0 or int(rows.max()) >= self._next:
                raise IndexFormatError(f"{d}: index.json names rows outside 0..{self._next - 1}")
            self._name(rows, list(self._row_of))
        self._tombstones = int(meta["tombstones"])
        if self._tombstones and self.kind == "hnsw":  # the graph's rows that no live article holds
            self._dead = set(faiss.vector_to_array(index.id_map).tolist()) - set(self._row_of.values())
            if len(self._dead) != self._tombstones:
                raise IndexFormatError(
                    f"{d}: {len(self._dead)} dead rows in index.faiss, metadata says {self._tombstones}"
                )
        return self


_DESERIALIZE_LOCK = threading.Lock()


def _read_bounded(path: Path, flags: int) -> faiss.Index:
    """faiss.read_index under the same bound as `_deserialize_bounded`: the file's own length."""
    with _DESERIALIZE_LOCK:
        before = faiss.get_deserialization_vector_byte_limit()
        faiss.set_deserialization_vector_byte_limit(4 * (path.stat().st_size + 64))
        try:
            return faiss.read_index(str(path), flags)
        finally:
            faiss.set_deserialization_vector_byte_limit(before)


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
