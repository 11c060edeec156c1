"""Where one `suggest()` over the million spends its CPU: thread-CPU timers around its parts, no profiler.

    python bench/suggest_parts.py --index /tmp/scale/m1 [--nprobe 96 --rerank 100 | --ef 512] [--calls 1000]

bench/million.py's synthetic million (same seeds, KB titles and sessions as `million.suggest_latency` and
`ab_suggest.py million`), the saved index given by --index (memory-mapped), --calls warm-up calls and then
--calls timed ones. Each part is wrapped by a timer that adds the thread's CPU time spent inside it; cProfile's
own cost per Python call inflated the many small parts several-fold (BENCHMARKS.md, "A million articles", round 4).
Parts nest (the session's items include index vectors), so the rest is the call's own arithmetic and lists.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from million import WORDS_PER_TOPIC, D, intent_queries, synthetic  # noqa: E402

import plugin  # noqa: E402
import plugin.explain  # noqa: E402
import plugin.lexical  # noqa: E402
import plugin.recommender  # noqa: E402
from plugin.encoder import HashingEncoder  # noqa: E402
from plugin.index import ArticleIndex  # noqa: E402


def timers(rec: plugin.SessionRecommender, spent: dict[str, int]) -> None:
    """Wrap the parts of a suggestion in thread-CPU timers that add into `spent` (ns)."""

    def wrap(owner: Any, name: str, label: str) -> None:
        if not hasattr(owner, name):  # an older version of the plugin (bench/ab_suggest.py --base)
            return
        inner = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.thread_time_ns()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0) + time.thread_time_ns() - t

        setattr(owner, name, timed)

    ix = rec.index
    for name in ("search", "search_rows"):
        wrap(ix, name, "index search")
    wrap(ix, "vectors", "index vectors (read pages)")
    wrap(ix, "vectors_at", "index vectors (candidates)")
    wrap(ix, "rows", "index rows (non-hits)")
    wrap(plugin.lexical.LexicalScores, "get", "BM25 of the candidates")
    wrap(rec.lexical, "search", "BM25 query tokens")
    wrap(rec.kb, "find_many", "KB look-up")
    wrap(rec.intent_model, "intent", "intent")
    wrap(plugin.recommender, "mmr_order", "MMR")
    wrap(plugin.recommender, "passing", "filters")
    wrap(plugin.explain, "drivers", "reasons")
    wrap(rec, "context", "session store read")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", required=True, help="an index folder bench/million.py saved (--work)")
    ap.add_argument("--n", type=int, default=1_000_000, help="the --n it was built with")
    ap.add_argument("--nprobe", type=int, default=96)
    ap.add_argument("--rerank", type=int, default=100)
    ap.add_argument("--ef", type=int, default=512, help="hnsw: ef_search")
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    x, topic = synthetic(args.n)
    _, reads = intent_queries(x, topic, 1000, seed=2)
    del x
    ix = ArticleIndex.load(args.index)
    if ix.kind == "hnsw":
        ix.set_ef_search(args.ef)
    else:
        ix.set_nprobe(args.nprobe)
        ix.rerank = args.rerank
    rng = np.random.default_rng(3)  # million.suggest_latency's titles
    kb = plugin.KnowledgeBase(
        plugin.Article(
            id=f"a{i}",
            title=" ".join([*rng.choice([f"w{t}x{j}" for j in range(WORDS_PER_TOPIC)], 3, replace=False), f"u{i}"]),
            url=f"/kb/a{i}",
        )
        for i, t in enumerate(topic.tolist())
    )
    enc = HashingEncoder(D)  # never called: every page read is in the index
    enc.name = ""
    rec = plugin.SessionRecommender(kb, enc, ix)
    rec.lexical.warm()
    faiss.omp_set_num_threads(1)
    spent: dict[str, int] = {}
    timers(rec, spent)

    def call(i: int) -> float:
        sid = f"s{i}"
        for row in reads[i % len(reads)]:
            rec.track(sid, "page_view", article_id=f"a{row}", url=f"/kb/a{row}")
        t = time.thread_time_ns()
        rec.suggest(sid, k=5)
        return (time.thread_time_ns() - t) / 1e6

    for i in range(args.calls):
        call(i)
    spent.clear()
    cpu = [call(i) for i in range(args.calls, 2 * args.calls)]
    total_ms = sum(cpu)
    parts = {k: v / 1e6 / args.calls for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}
    report = {
        "command": "python bench/suggest_parts.py " + " ".join(sys.argv[1:]),
        "load_average": os.getloadavg()[0],
        **{f"cpu_p{q}_ms": float(np.percentile(cpu, q)) for q in (50, 90, 99)},
        "cpu_mean_ms": total_ms / args.calls,
        "parts_ms_a_call": parts,
    }
    print(
        f"suggest() CPU p50 {report['cpu_p50_ms']:.3f} ms, p90 {report['cpu_p90_ms']:.3f}, "
        f"p99 {report['cpu_p99_ms']:.3f}, mean {report['cpu_mean_ms']:.3f} (with the timers)"
    )
    for name, ms in parts.items():
        print(f"  {name:28s} {ms * 1000:7.1f} us a call ({100 * ms / report['cpu_mean_ms']:4.1f}%)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
