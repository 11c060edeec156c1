"""Two versions of the plugin in one process: suggest() of each on the same sessions, calls interleaved.

    python bench/ab_suggest.py --base /tmp/base length [--cache DIR] [--calls 400]
    python bench/ab_suggest.py --base /tmp/base million --index /tmp/scale/m1 [--n 1000000] [--calls 1000]

`--base` is a checkout of the other version (e.g. `git worktree add --detach /tmp/base <commit>`); the other side is
this repository. Each version gets its own recommender over the same index folder, the same sessions are tracked into
both, and each timed call of one is followed by the same call of the other (which goes first alternates), so both
see the same moment of a shared machine: two processes never get the same share of it, and the run-to-run spread of
one process on a loaded box was as large as the changes measured (BENCHMARKS.md, item 1 and 4, round 3). Thread CPU
time per call; every pair of answers is compared (article, score, reason).

length:  bench/session_length.py's sessions over the stdlib demo KB (in-memory store): long (200 events), full
         context, 3-page; p50 per group and the long / 3-page ratio.
million: bench/million.py's synthetic million (same seeds, KB titles and sessions, the saved index given by --index,
         memory-mapped, nprobe 96 and re-rank 100 unless --nprobe/--rerank), 1,000 warm-up calls then --calls timed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def load_plugin(root: Path) -> dict[str, ModuleType]:
    """Import `plugin` from `root` and take it out of sys.modules again, so the other version can be imported too."""
    for name in [m for m in sys.modules if m == "plugin" or m.startswith("plugin.")]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        importlib.import_module("plugin")
        importlib.import_module("plugin.encoder")
        importlib.import_module("plugin.index")
    finally:
        sys.path.remove(str(root))
    mods = {m: sys.modules[m] for m in list(sys.modules) if m == "plugin" or m.startswith("plugin.")}
    for name in mods:
        del sys.modules[name]
    return mods


def answers(found: list[Any]) -> list[tuple[str, float, str]]:
    return [(s.article.id, s.score, s.reason) for s in found]


def length(versions: dict[str, Path], calls: int, cache: str | None) -> dict[str, Any]:
    import faiss
    import session_length as sl
    from http_load import _index

    sys.modules.update(load_plugin(ROOT))  # the demo index is built (once, cached) by this repository's code
    index_dir = _index(argparse.Namespace(index=None, cache=cache, encoder="hashing:384"))
    recs, groups = {}, {}
    for name, root in versions.items():
        plugin = load_plugin(root)["plugin"]
        rec = plugin.SessionRecommender.load(
            index_dir, session_settings=plugin.SessionSettings(max_events=200, dedupe_window_seconds=0)
        )
        faiss.omp_set_num_threads(1)
        rng = random.Random(0)  # the same events in both
        arts = [rec.kb.get(a) for a in rec.index.ids()]
        corpus = [a.text[:400] for a in arts if a.text]
        kb_urls = [a.url for a in arts if a.url]
        groups[name] = {
            "long": sl._reader(rec, rng, 20, 200, 20_000, corpus, kb_urls),
            "full": sl._reader(rec, rng, 20, 2 * rec.settings.max_context_events, 20_000, corpus, kb_urls),
            "short": sl._short(rec, rng, 20, kb_urls),
        }
        for sid in [s for sids in groups[name].values() for s in sids]:  # warm-up, as session_length.py does
            rec.suggest(sid, k=3)
        recs[name] = rec
    cpu: dict[str, dict[str, list[float]]] = {n: {g: [] for g in ("long", "full", "short")} for n in recs}
    same, rng = 0, random.Random(1)
    names = list(recs)
    for i in range(calls):
        for group in ("long", "full", "short"):
            j = rng.randrange(20)
            got = {}
            for name in names if i % 2 == 0 else names[::-1]:
                c = time.thread_time_ns()
                got[name] = answers(recs[name].suggest(groups[name][group][j], k=3))
                cpu[name][group].append((time.thread_time_ns() - c) / 1e6)
            same += got[names[0]] == got[names[1]]
    out: dict[str, Any] = {}
    for name in names:
        p50 = {g: statistics.median(v) for g, v in cpu[name].items()}
        out[name] = {**{f"{g}_cpu_p50_ms": v for g, v in p50.items()}, "long/short": p50["long"] / p50["short"]}
    out["identical"] = f"{same} of {3 * calls}"
    return out


def million(versions: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    import faiss
    import numpy as np
    from million import WORDS_PER_TOPIC, D, intent_queries, synthetic

    x, topic = synthetic(args.n)
    _, reads = intent_queries(x, topic, 1000, seed=2)
    del x
    recs = {}
    for name, root in versions.items():
        mods = load_plugin(root)
        plugin, encoder, index = mods["plugin"], mods["plugin.encoder"], mods["plugin.index"]
        ix = index.ArticleIndex.load(args.index)
        ix.set_nprobe(args.nprobe)
        ix.rerank = args.rerank
        rng = np.random.default_rng(3)  # million.suggest_latency's titles

        def words(t: int) -> list[str]:
            return [f"w{t}x{j}" for j in range(WORDS_PER_TOPIC)]

        kb = plugin.KnowledgeBase(
            plugin.Article(
                id=f"a{i}", title=" ".join([*rng.choice(words(int(t)), 3, replace=False), f"u{i}"]), url=f"/kb/a{i}"
            )
            for i, t in enumerate(topic.tolist())
        )
        enc = encoder.HashingEncoder(D)  # never called: every page read is in the index
        enc.name = ""
        rec = plugin.SessionRecommender(kb, enc, ix)
        rec.lexical.warm()
        recs[name] = rec
    faiss.omp_set_num_threads(1)
    names = list(recs)
    cpu: dict[str, list[float]] = {n: [] for n in names}
    same = 0
    for i in range(2 * args.calls):  # the first half warms caches and is not counted (as suggest_latency)
        sid = f"s{i}"
        got = {}
        for name in names if i % 2 == 0 else names[::-1]:
            rec = recs[name]
            for row in reads[i % len(reads)]:
                rec.track(sid, "page_view", article_id=f"a{row}", url=f"/kb/a{row}")
            c = time.thread_time_ns()
            got[name] = answers(rec.suggest(sid, k=5))
            if i >= args.calls:
                cpu[name].append((time.thread_time_ns() - c) / 1e6)
        same += i >= args.calls and got[names[0]] == got[names[1]]
    out: dict[str, Any] = {
        name: {f"cpu_p{q}_ms": float(np.percentile(cpu[name], q)) for q in (50, 90, 99)} for name in names
    }
    out["identical"] = f"{same} of {args.calls}"
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, required=True, help="a checkout of the version to compare against")
    p.add_argument("--json", type=Path)
    sub = p.add_subparsers(dest="mode", required=True)
    ln = sub.add_parser("length", help="bench/session_length.py's sessions")
    ln.add_argument("--calls", type=int, default=400, help="timed calls per group and version")
    ln.add_argument("--cache", help="where the demo index is built/cached (default: a temp dir)")
    mi = sub.add_parser("million", help="bench/million.py's million over a saved index")
    mi.add_argument("--index", required=True, help="the index folder bench/million.py saved (--work)")
    mi.add_argument("--n", type=int, default=1_000_000, help="the --n it was built with")
    mi.add_argument("--nprobe", type=int, default=96)
    mi.add_argument("--rerank", type=int, default=100)
    mi.add_argument("--calls", type=int, default=1000, help="timed calls per version (as many warm-up calls)")
    args = p.parse_args()
    versions = {"base": args.base.resolve(), "this": ROOT}
    report = {
        "command": "python bench/ab_suggest.py " + " ".join(sys.argv[1:]),
        "load_average_before": os.getloadavg()[0],
        **(length(versions, args.calls, args.cache) if args.mode == "length" else million(versions, args)),
        "load_average_after": os.getloadavg()[0],
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
