"""What lexical fusion costs: `suggest()` latency on a real manual with the defaults, without BM25, and the old
default, same sessions, one thread.

    python -m bench.relevance_latency [DOCS_DIR] [--sessions 200]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # see bench/relevance.py
    os.environ.setdefault(_var, "1")

import argparse
import time

import numpy as np

from .docs_corpus import load_corpus
from .relevance import DEFAULT_DOCS, _corpus_name, make_sessions, variant
from .relevance_index import build_recommender
from .relevance_protocols import split_chapters

SETTINGS = (
    ("default", {}),
    ("lexical_weight=0", dict(lexical_weight=0.0)),
    (
        "old default",
        dict(centre=False, lexical_weight=0.0, topic_split=None, min_score=0.2, mmr_lambda=0.7, temperature=2.0),
    ),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.relevance_latency", description=__doc__.split("\n\n")[0])
    ap.add_argument("docs", nargs="?", default=DEFAULT_DOCS[0])
    ap.add_argument("--sessions", type=int, default=200)
    args = ap.parse_args(argv)
    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    corpus = load_corpus(args.docs, name=_corpus_name(args.docs))
    rec = build_recommender(corpus, progress=False)
    sessions = make_sessions(corpus, split_chapters(corpus.members(), 0)[1], args.sessions, 100)["topical-3"]
    print(f"{corpus.name}: {len(corpus.articles)} articles, {len(sessions)} 3-page sessions, k=5\n")
    print("| settings | first call ms (builds BM25) | p50 ms | p99 ms |\n|---|---|---|---|")
    for name, kw in SETTINGS:
        v = variant(rec, **kw)
        t0 = time.perf_counter()
        v.suggest_for([corpus.articles[0].id], k=5)
        first = time.perf_counter() - t0
        for j, s in enumerate(sessions):
            for i, p in enumerate(s.pages):
                v.track(f"s{j}", "page_view", article_id=p, ts=1000.0 + 60.0 * i)
        times = []
        for j in range(len(sessions)):
            t = time.perf_counter()
            v.suggest(f"s{j}", k=5)
            times.append(time.perf_counter() - t)
        p50, p99 = np.percentile(times, [50, 99]) * 1000
        print(f"| {name} | {first * 1000:.0f} | {p50:.1f} | {p99:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
