"""Where a long session's GET of suggestions spends more CPU than a 3-page session's: thread CPU per part.

    python bench/length_parts.py [--sessions 40] [--calls 300] [--modes warm,cold] [--store redis|memory]

What the HTTP route does for one GET (`context`, `needs_encoding`, `suggest(context=...)`) on sessions filled like
`bench/wrk_load.py --fill 190` fills them (the wrk mix: KB page views, site pages with ~1.5 kB of text, impressions,
clicks, searches) against fresh 3-page sessions, over the stdlib demo KB (384-d hashing encoder), with the store in a
private redis-server by default. Each part is wrapped by a timer that adds the thread CPU spent inside it (parts nest:
the indented ones are inside the one above). Modes:

  warm    every session's pages in this process's caches (what a worker holding them pays);
  cold    before each call, this process's page contents, visitors' vectors and BM25 scores of non-KB texts are
          dropped (the KB's own BM25 entries stay, as under traffic): what a worker that lost the session's pages
          pays (bench/wrk_load.py --length-ratio with 1,000 long sessions, more pages than a worker's caches hold).

With `--sessions 1000 --modes warm` the caches hold what they can of 1,000 long sessions' pages (steady state of
`bench/wrk_load.py --length-ratio 5`'s 2,000 visitors, as one worker serving them sees it).
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from http_load import _index  # noqa: E402  (the demo index, built once and cached)
from wrk_load import _fill_events  # noqa: E402  (the wrk fill's mix of events)


def _timed(acc: dict[str, int], obj: Any, name: str, label: str) -> None:
    f: Callable[..., Any] = getattr(obj, name)

    @functools.wraps(f)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.thread_time_ns()
        try:
            return f(*args, **kwargs)
        finally:
            acc[label] += time.thread_time_ns() - t

    setattr(obj, name, timed)


def _drop_session_caches(rec: Any) -> None:
    """This worker loses the session's pages: page contents, visitors' vectors, BM25 scores of non-KB texts, and
    the sessions' resolved context rows (`plugin.session_rows`)."""
    rec.pages._data.clear()
    rec.page_encoder.cache._data.clear()
    rec.rows.clear()
    with rec.lexical._lock:
        scores = rec.lexical._scores
        scores.forget([k for k in scores if not (isinstance(k, tuple) and k[0] == "a")])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", help="where to build/cache the demo index (default: a temp dir)")
    p.add_argument("--store", default="redis", choices=["redis", "memory"])
    p.add_argument("--sessions", type=int, default=40, help="long sessions (and as many 3-page ones)")
    p.add_argument("--calls", type=int, default=300, help="timed calls per kind and mode")
    p.add_argument("--modes", default="warm,cold")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import faiss

    faiss.omp_set_num_threads(1)
    import plugin.recommender as recommender_module
    from plugin import SessionRecommender, SessionSettings, explain

    index_dir = _index(argparse.Namespace(index=None, cache=args.cache, encoder="hashing:384"))
    redis = None
    settings = SessionSettings()
    store = None
    if args.store == "redis":
        from soak import Redis

        from plugin.redis_store import RedisSessionStore

        redis = Redis(os.environ.get("REDIS_URL"))
        store = RedisSessionStore.from_url(redis.url, settings, prefix="length-parts:")
    try:
        rec = SessionRecommender.load(index_dir, store=store, session_settings=settings)
        faiss.omp_set_num_threads(1)
        rng = random.Random(args.seed)
        kb = [(a.id, a.url) for a in (rec.kb.get(x) for x in rec.index.ids()) if a.url]
        groups: dict[str, list[str]] = {"long": [], "short": []}
        for i in range(args.sessions):
            sid = f"long-{i}"
            rec.track(sid, "page_view", url=rng.choice(kb)[1])
            for ev in _fill_events(rng, kb, 189):
                rec.track(sid, ev.pop("kind"), **ev)
            groups["long"].append(sid)
            sid = f"short-{i}"
            for _, url in rng.sample(kb, 3):
                rec.track(sid, "page_view", url=url)
            groups["short"].append(sid)

        acc: dict[str, int] = defaultdict(int)
        for obj, name, label in [
            (rec.store, "context", "context read"),
            (rec, "needs_encoding", "needs_encoding"),
            (rec, "_session_rows", "session rows (memo, else look-ups)"),
            (rec, "_resolve_rows", "  rows looked up"),
            (rec.pages, "for_events", "  page contents (worker cache)"),
            (rec.store, "contents", "    store.contents"),
            (rec.page_encoder, "encode", "  page encoder"),
            (rec.lexical, "search", "lexical.search (BM25)"),
            (rec.intent_model, "intent", "intent"),
            (rec, "_interests", "interests"),
            (rec, "_first_hits", "first hits (FAISS)"),
            (rec, "_candidates", "candidates"),
            (recommender_module, "mmr_order", "mmr"),
            (explain, "drivers", "explain.drivers"),
            (rec.titles, "query", "titles.query"),
            (rec, "_linked_from", "linked"),
        ]:
            _timed(acc, obj, name, label)

        print(
            f"\n{args.sessions} long sessions ({len(rec.events(groups['long'][0]))} events, "
            f"{len(rec.context(groups['long'][0]).events)} in the context) and {args.sessions} 3-page sessions, "
            f"{args.store} store; load average {os.getloadavg()[0]:.2f}"
        )
        for mode in args.modes.split(","):
            for _ in range(2):  # warm-up: every session once, twice (caches as full as they get)
                for sids in groups.values():
                    for sid in sids:
                        rec.suggest(sid, k=3)
            parts: dict[str, dict[str, list[int]]] = {k: defaultdict(list) for k in groups}
            total: dict[str, list[int]] = {k: [] for k in groups}
            for _ in range(args.calls):
                for kind, sids in groups.items():
                    sid = rng.choice(sids)
                    if mode == "cold":
                        _drop_session_caches(rec)
                    acc.clear()
                    t = time.thread_time_ns()
                    ctx = rec.context(sid)
                    rec.needs_encoding(ctx.events)
                    rec.suggest(sid, k=3, context=ctx)
                    total[kind].append(time.thread_time_ns() - t)
                    for label, ns in acc.items():
                        parts[kind][label].append(ns)
            print(
                f"\n{mode}: mean thread CPU µs per call ({args.calls} calls each; caches: {len(rec.pages)} page "
                f"contents, {len(rec.lexical._scores)} BM25 texts, {len(rec.page_encoder.cache)} visitors' vectors)\n"
            )
            print("| part | long | 3-page | long − 3-page |\n|---|---:|---:|---:|")

            def mean(kind: str, label: str, parts: dict[str, dict[str, list[int]]] = parts) -> float:
                return sum(parts[kind].get(label, [])) / args.calls / 1e3

            for label in sorted(set(parts["long"]) | set(parts["short"]), key=lambda lab: -mean("long", lab)):
                lo, sh = mean("long", label), mean("short", label)
                print(f"| {label} | {lo:.0f} | {sh:.0f} | {lo - sh:.0f} |")
            ml, ms = statistics.mean(total["long"]) / 1e3, statistics.mean(total["short"]) / 1e3
            pl, ps = statistics.median(total["long"]) / 1e3, statistics.median(total["short"]) / 1e3
            print(f"| **whole call, mean** | {ml:.0f} | {ms:.0f} | {ml - ms:.0f} (**{ml / ms:.2f}**) |")
            print(f"| whole call, p50 | {pl:.0f} | {ps:.0f} | {pl - ps:.0f} (**{pl / ps:.2f}**) |")
    finally:
        if redis is not None:
            redis.close("length-parts:")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
