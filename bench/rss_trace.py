"""One app process's memory under the wrk mix, request by request: does RSS go flat once every bound is reached?

    python bench/rss_trace.py [--requests 200000] [--sessions 500] [--max-events 200] [--every 10000]
                              [--redis-url URL | --store memory] [--tracemalloc FRAMES --trace-from N]
                              [--trim] [--json OUT]

The hardened app as `python -m plugin serve` runs it (`adapters.http.hardened.app_from_env`, with REDIS_URL set:
sessions, rate limits and revocations in Redis), driven in process by Starlette's TestClient with
bench/wrk/mixed.lua's proportions (35 % GET suggestions, 20 % page views, 15 % view + suggestions, 10 % impression
batches, 5 % clicks, 6 % searches, 4 % chat, 5 % new visitors) on --sessions visitors; half the page views are KB
pages, half site pages with ~1.5 kB of new random text (urls drawn from 100,000), every search and question new
random words. The store runs with --max-events (`SessionSettings.max_events`; the only change from app_from_env),
so a small bound is reached early: from then on every append also forgets the session's oldest event.

Every --every requests it prints, and --json keeps: this process's RSS (/proc/self/statm), the Python heap
(`sys.getallocatedblocks()`; with --tracemalloc, tracemalloc's traced bytes), glibc's own count of the C heap
(`mallinfo2`: bytes in use, bytes free but held), each bounded cache's size, how many sessions are at their bound,
and Redis's `used_memory` and RSS (a separate process: its growth is not the worker's). `--trim` also calls
`malloc_trim(0)` after each row and prints RSS after it: what glibc could give back (free pages), as against live
memory. With --tracemalloc, tracing starts at --trace-from (before: no overhead) and each later row prints the
allocations that grew most since the previous one, grouped by traceback (while tracing, CPython reports no
obmalloc statistics: the py_arenas/py_used columns are left out; tracing's own records add to RSS).

A private redis-server (bench/soak.py's helper) unless --redis-url or REDIS_URL is given; the demo KB (384-d
hashing encoder) built once and cached like bench/wrk_load.py's.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from http_load import _index  # noqa: E402  (the demo index, built once and cached)
from wrk_load import _WORDS  # noqa: E402  (bench/wrk/mixed.lua's words)

from adapters.http.allocator import malloc_arena_count  # noqa: E402

PREFIX = "rss-trace:"
MIX = [k for k, n in [("suggest", 35), ("view", 20), ("view_batch", 15), ("impressions", 10), ("click", 5),
                      ("search", 6), ("chat", 4), ("new", 5)] for _ in range(n)]  # fmt: skip
PAGE = os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
        + ("keepcost",)
    ]


def _libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        return libc
    except (OSError, AttributeError):  # not glibc >= 2.33: the C-heap columns stay empty
        return None


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def c_heap(libc: Any) -> dict[str, float]:
    """glibc's view of malloc's memory, MiB: in use (`uordblks` + mmapped `hblkhd`), free but held in the
    arenas (`fordblks`), the main arena's top chunk that malloc_trim could give back (`keepcost`)."""
    if libc is None:
        return {}
    m = libc.mallinfo2()
    mib = 2**20
    return {
        "c_arenas": malloc_arena_count(),
        "c_used_mib": round((m.uordblks + m.hblkhd) / mib, 1),
        "c_free_mib": round(m.fordblks / mib, 1),
        "c_arena_mib": round(m.arena / mib, 1),
        "c_mmap_mib": round(m.hblkhd / mib, 1),
    }


def py_heap() -> dict[str, float]:
    """CPython's small-object allocator (obmalloc), MiB: its arenas (1 MiB each, mmapped: outside mallinfo) and the
    bytes in blocks handed out. `sys._debugmallocstats` writes to the C stderr, so it is read from a file."""
    import tempfile

    with tempfile.TemporaryFile("w+") as f:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(f.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        out: dict[str, float] = {}
        for line in f:
            if line.startswith("# arenas allocated current"):
                out["py_arenas_mib"] = float(line.split("=")[1].replace(",", ""))  # 1 MiB arenas
            elif line.startswith("# bytes in allocated blocks"):
                out["py_used_mib"] = round(float(line.split("=")[1].replace(",", "")) / 2**20, 1)
        return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--sessions", type=int, default=500)
    p.add_argument("--max-events", type=int, default=200, help="SessionSettings.max_events (default: the default)")
    p.add_argument("--ttl", type=float, default=1800.0, help="session TTL, s (SESSION_SUGGEST_TTL_SECONDS)")
    p.add_argument("--every", type=int, default=10_000, help="requests between rows")
    p.add_argument("--store", default="redis", choices=["redis", "memory"])
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), help="default: a private redis-server")
    p.add_argument("--cache", help="where to build/cache the demo index (default: a temp dir)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES", help="trace with this many frames")
    p.add_argument("--trace-from", type=int, default=0, help="requests before tracing starts")
    p.add_argument("--top", type=int, default=12, help="tracebacks printed per row with --tracemalloc")
    p.add_argument("--trim", action="store_true", help="malloc_trim(0) after each row; print RSS after it")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args()

    import faiss
    from tqdm.auto import tqdm

    faiss.omp_set_num_threads(1)
    index = _index(argparse.Namespace(index=None, cache=args.cache, encoder="hashing:384"))
    redis = None
    env = {
        "SESSION_SUGGEST_INDEX": str(index),
        "SESSION_SUGGEST_SECRET": "rss-trace-secret-" + "r" * 32,
        "SESSION_SUGGEST_TTL_SECONDS": repr(args.ttl),
        "SESSION_SUGGEST_REDIS_PREFIX": PREFIX,
        # one client address per visitor, as wrk's; limits high enough that the trace never hits them
        "SESSION_SUGGEST_LIMITS": json.dumps({"trust_forwarded_for": True, "per_client": 10**9, "per_session": 10**9}),
    }
    os.environ.pop("REDIS_URL", None)
    if args.store == "redis":
        from soak import Redis

        redis = Redis(args.redis_url)
        env["REDIS_URL"] = redis.url
    os.environ.update(env)

    from fastapi.testclient import TestClient

    import adapters.http.hardened as hardened
    from plugin import SessionSettings
    from plugin.knowledge_base import _url_keys
    from plugin.session_store import id_digest

    # app_from_env reads no max_events: give it the bound this trace runs under, nothing else changed
    hardened.SessionSettings = functools.partial(SessionSettings, max_events=args.max_events)  # type: ignore[misc]
    libc = _libc()
    rows: list[dict[str, Any]] = []
    try:
        app = hardened.app_from_env()
        rec = app.state.recommender
        render = app.state.suggestion_json
        client = TestClient(app)
        rng = random.Random(args.seed)
        kb = [(a.id, a.url) for a in rec.kb if a.url]

        def text(n: int) -> str:
            return " ".join(rng.choice(_WORDS) for _ in range(n))

        def page_view() -> dict[str, Any]:
            if rng.random() < 0.5:
                return {"kind": "page_view", "url": rng.choice(kb)[1]}
            url = f"https://site.test/p{rng.randrange(100_000)}"
            return {"kind": "page_view", "url": url, "title": text(4), "text": text(220)}

        visitors: list[tuple[str, dict[str, str]]] = []
        for i in range(args.sessions):
            h = {"X-Forwarded-For": f"10.2.{i >> 8}.{i & 255}"}
            sid = client.post("/v1/sessions", headers=h).json()["session_id"]
            client.post(f"/v1/sessions/{sid}/events", json={"kind": "page_view", "url": kb[i % len(kb)][1]}, headers=h)
            visitors.append((sid, h))

        def events_held() -> tuple[float, int]:
            """Mean events per visitor's session and how many are at --max-events."""
            if redis is not None:
                pipe = redis.client.pipeline(transaction=False)
                for sid, _ in visitors:
                    pipe.llen(PREFIX + "ev:" + id_digest(sid))
                counts = pipe.execute()
            else:
                counts = [len(rec.store.read(sid)) for sid, _ in visitors]  # read touches: same as a GET would
            return sum(counts) / len(counts), sum(c >= args.max_events for c in counts)

        def row(done: int, t0: float) -> dict[str, Any]:
            held, full = events_held()
            r: dict[str, Any] = {
                "requests": done,
                "seconds": round(time.monotonic() - t0, 1),
                "rss_mib": round(rss_mib(), 1),
                "py_blocks": sys.getallocatedblocks(),
                **py_heap(),
                **c_heap(libc),
                "page_contents": len(rec.pages),
                "vectors": len(rec.page_encoder.cache),
                "bm25_scores": len(rec.lexical._scores),
                "bm25_tokens": len(rec.lexical._tokens),
                "url_keys": _url_keys.cache_info().currsize,
                "snippets": render._snippet.cache_info().currsize,
                "events_mean": round(held, 1),
                "sessions_full": full,
            }
            if tracemalloc.is_tracing():
                r["traced_mib"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
            if redis is not None:
                mem = redis.client.info("memory")
                r["redis_used_mib"] = round(int(mem["used_memory"]) / 2**20, 1)
                r["redis_rss_mib"] = round(int(mem["used_memory_rss"]) / 2**20, 1)
            if args.trim and libc is not None:
                libc.malloc_trim(0)
                r["rss_trimmed_mib"] = round(rss_mib(), 1)
            return r

        cols = ["requests", "seconds", "rss_mib", "rss_trimmed_mib", "py_blocks", "py_arenas_mib", "py_used_mib", "traced_mib", "c_used_mib",
                "c_free_mib", "c_arena_mib", "c_arenas", "page_contents", "vectors", "bm25_scores", "url_keys", "snippets",
                "events_mean", "sessions_full", "redis_used_mib", "redis_rss_mib"]  # fmt: skip
        print(
            f"store {type(rec.store).__name__}, max_events {rec.session_settings.max_events}, ttl "
            f"{rec.session_settings.ttl_seconds:g} s, {args.sessions} sessions, load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        snap = None
        t0 = time.monotonic()
        bar = tqdm(total=args.requests, desc="requests", mininterval=5)
        for done in range(args.requests + 1):
            if args.tracemalloc and done == args.trace_from:
                tracemalloc.start(args.tracemalloc)
            if done % args.every == 0:
                if tracemalloc.is_tracing():
                    new = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
                    if snap is not None:
                        tqdm.write(f"--- grew most since request {done - args.every:,} (by traceback)")
                        for st in new.compare_to(snap, "traceback")[: args.top]:
                            tqdm.write(f"  {st.size_diff / 2**20:+8.2f} MiB {st.count_diff:+9d} blocks")
                            for line in st.traceback.format()[-2 * args.tracemalloc :]:
                                if line.strip():
                                    tqdm.write("        " + line.strip()[:140])
                    snap = new
                r = row(done, t0)
                rows.append(r)
                if len(rows) == 1:
                    tqdm.write(" ".join(c for c in cols if c in r))
                tqdm.write(" ".join(str(r[c]) for c in cols if c in r))
            if done == args.requests:
                break
            sid, h = rng.choice(visitors)
            base = f"/v1/sessions/{sid}"
            kind = rng.choice(MIX)
            if kind == "suggest":
                resp = client.get(base + "/suggestions?k=3", headers=h)
            elif kind == "view":
                resp = client.post(base + "/events", json=page_view(), headers=h)
            elif kind == "view_batch":
                resp = client.post(base + "/events/batch", json={"events": [page_view()], "suggest": 3}, headers=h)
            elif kind == "impressions":
                events = [
                    {"kind": "suggestion_impression", "article_id": rng.choice(kb)[0], "position": i} for i in range(3)
                ]
                resp = client.post(base + "/events/batch", json={"events": events}, headers=h)
            elif kind == "click":
                event = {"kind": "suggestion_click", "article_id": rng.choice(kb)[0], "position": rng.randrange(3)}
                resp = client.post(base + "/events", json=event, headers=h)
            elif kind == "search":
                resp = client.post(base + "/events", json={"kind": "search", "query": text(3)}, headers=h)
            elif kind == "chat":
                resp = client.post(base + "/chat", json={"message": f"how do I {text(4)}?"}, headers=h)
            else:  # a new visitor: an id is issued, nothing stored (wrk's mix never uses it again either)
                resp = client.post("/v1/sessions", headers=h)
            if resp.status_code >= 300:
                raise RuntimeError(f"{kind}: HTTP {resp.status_code} {resp.text[:200]}")
            bar.update()
        bar.close()
        client.close()
    finally:
        if redis is not None:
            redis.close(PREFIX)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
