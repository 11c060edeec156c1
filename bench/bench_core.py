"""Core speed benchmark (issue 2): suggest() latency over a 100k-article KB, and indexing throughput.

    python bench/bench_core.py [--articles 100000] [--queries 2000] [--index-texts 600]

One core (torch, faiss and BLAS pinned to 1 thread). Latency: a 10-event session over N articles with
cached embeddings, p50/p99 of the whole `suggest()` call (intent + FAISS + rules + reasons), beside a
numpy brute-force baseline (mean of the session vectors, matrix-vector product, top-k) in the same run.
Indexing: `SessionRecommender.build` vs raw `SentenceTransformer.encode` on the same texts, same model.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

torch.set_num_threads(1)
faiss.omp_set_num_threads(1)

from plugin import Article, ArticleIndex, KnowledgeBase, SessionRecommender, SuggestSettings  # noqa: E402
from plugin.encoder import l2_normalize  # noqa: E402


class _NoEncoder:
    """Suggest over KB pages only reads index vectors; any call to encode would be a bug in the bench."""

    name = "precomputed"

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def encode(self, texts):
        raise AssertionError("the benchmark session only views KB articles; nothing should be encoded")


def clustered_vectors(n: int, dim: int, clusters: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.standard_normal((clusters, dim), dtype=np.float32))
    assign = rng.integers(0, clusters, n)
    return l2_normalize(centres[assign] + 0.6 * l2_normalize(rng.standard_normal((n, dim), dtype=np.float32)))


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.array(xs) * 1e3, p))


def bench_suggest(n: int, queries: int, dim: int = 384, k: int = 3) -> list[str]:
    vecs = clustered_vectors(n, dim)
    ids = [f"a{i}" for i in range(n)]
    kb = KnowledgeBase(Article(i, f"Article {i}", f"https://kb.test/{i}") for i in ids)
    rng = np.random.default_rng(1)
    sessions = [rng.choice(n, 10, replace=False) for _ in range(queries)]
    rows = [
        "| method | index | p50 ms | p99 ms | ratio p50 vs numpy | top-k agreement with exact |",
        "|---|---|---|---|---|---|",
    ]
    picked: dict[str, list[list[str]]] = {}

    # numpy brute force baseline: mean intent, one mat-vec, top-k excluding seen
    times = []
    for s in tqdm(sessions, desc="numpy brute force", leave=False):
        t = time.perf_counter()
        q = vecs[s].mean(0)
        scores = vecs @ q
        scores[s] = -np.inf
        top = np.argpartition(-scores, k)[:k]
        top[np.argsort(-scores[top])]
        times.append(time.perf_counter() - t)
    base = pct(times, 50)
    rows.append(f"| numpy brute force (baseline) | dense matrix | {base:.3f} | {pct(times, 99):.3f} | 1.00 | |")

    for kind in ("flat", "hnsw"):
        index = ArticleIndex(dim, kind)
        t0 = time.perf_counter()
        index.upsert(ids, vecs)
        build_s = time.perf_counter() - t0
        rec = SessionRecommender(kb, _NoEncoder(dim), index, settings=SuggestSettings(k=k, min_score=-1.0))
        for j, s in enumerate(sessions):
            for i in s:
                rec.track(f"s{j}", "article_open", article_id=ids[i], ts=float(i))
        for j in range(20):  # warm-up
            rec.suggest(f"s{j}", k=k)
        times, picked[kind] = [], []
        for j in tqdm(range(queries), desc=f"suggest {kind}", leave=False):
            t = time.perf_counter()
            got = rec.suggest(f"s{j}", k=k)
            times.append(time.perf_counter() - t)
            picked[kind].append([s.article.id for s in got])
        p50 = pct(times, 50)
        agree = np.mean([len(set(a) & set(b)) / k for a, b in zip(picked[kind], picked["flat"])])
        rows.append(
            f"| `SessionRecommender.suggest` | {kind} (built in {build_s:.1f}s) | {p50:.3f} | {pct(times, 99):.3f} "
            f"| {base / p50:.2f}× | {agree:.3f} |"
        )
    return rows


def bench_indexing(n_texts: int) -> list[str]:
    from sentence_transformers import SentenceTransformer

    from plugin.demo_kb import stdlib_articles
    from plugin.encoder import SentenceTransformerEncoder, default_model_path

    base = stdlib_articles(progress=False)
    arts = [
        Article(f"{a.id}#{r}", f"{a.title} ({r})", f"https://kb.test/{a.id}/{r}", a.text)
        for r in range((n_texts + len(base) - 1) // len(base))
        for a in base
    ][:n_texts]
    texts = [a.embed_text() for a in arts]
    model = SentenceTransformer(default_model_path(), device="cpu")
    model.encode(texts[:32], batch_size=64)  # warm-up
    t = time.perf_counter()
    model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    raw = time.perf_counter() - t
    enc = SentenceTransformerEncoder()
    t = time.perf_counter()
    SessionRecommender.build(arts, encoder=enc, progress=False)
    ours = time.perf_counter() - t
    return [
        "| pipeline | texts | seconds | texts/s | ratio vs raw encode |",
        "|---|---|---|---|---|",
        f"| raw `SentenceTransformer.encode` | {len(texts)} | {raw:.1f} | {len(texts) / raw:.1f} | 1.00 |",
        f"| `SessionRecommender.build` (encode + index) | {len(texts)} | {ours:.1f} | {len(texts) / ours:.1f} | {raw / ours:.2f}× |",
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--articles", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--index-texts", type=int, default=600)
    p.add_argument("--skip-indexing", action="store_true")
    a = p.parse_args()
    print(f"## suggest() latency, {a.articles:,} articles × 384-d, 10-event sessions, k=3, 1 thread\n")
    print("\n".join(bench_suggest(a.articles, a.queries)))
    if not a.skip_indexing:
        print("\n## Indexing throughput (all-MiniLM-L6-v2, 1 thread)\n")
        print("\n".join(bench_indexing(a.index_texts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
