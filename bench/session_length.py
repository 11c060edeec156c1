"""Does a suggestion cost more for a visitor who has read more? Long sessions vs 3-page sessions, same run.

    python bench/session_length.py [--index DIR] [--store memory,redis] [--long-events 200] [--text-chars 20000]
                                   [--pattern static,append]

Over one index (default: the stdlib demo KB with the 384-d hashing encoder, built once and cached; a suggestion
never embeds, so it costs what MiniLM's does), it fills --sessions long sessions — --long-events events each:
page views of pages outside the KB with --text-chars of real KB wording, KB page views, searches, and an
impression after each — and as many 3-page sessions (3 KB page views), then times `SessionRecommender.suggest`
on them interleaved, --calls each, on one thread. A third group holds exactly a full context (max_context_events
intent events), the most any suggestion reads. With `--store redis` the sessions live in a private redis-server
(or --redis-url), as in production, so the read includes the round trip. The ratios to watch: long / 3-page p50
(issue #13 goal: <= 1.2) and long / full-context p50 (what session length adds once the context is full).
Two patterns (`_measure`): "static" asks the same sessions again; "append" tracks one page view before each timed
call, as a visitor who reads a page and then sees suggestions (the 3-page group: a new visitor's third page; the same kind of page for both).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from http_load import _index  # noqa: E402  (the demo index, built once and cached)


def _reader(
    rec, rng: random.Random, n: int, long_events: int, text_chars: int, corpus: list[str], kb_urls: list[str]
) -> list[str]:
    """n sessions of long_events events each (half of them impressions); their ids."""
    out = []
    for s in range(n):
        sid = f"reader-{uuid.uuid4().hex}"
        for i in range(long_events // 2):
            if i % 10 == 0:
                rec.track(sid, "page_view", url=rng.choice(kb_urls))
            elif i % 10 == 5:
                rec.track(sid, "search", query=" ".join(rng.choice(corpus).split()[:4]) or "help")
            else:
                words = " ".join(rng.choice(corpus) for _ in range(40))
                while len(words) < text_chars:
                    words += " " + words
                rec.track(
                    sid,
                    "page_view",
                    url=f"https://site.test/{s}/{i}",
                    title=f"Site page {s}.{i}",
                    text=words[:text_chars],
                )
            rec.track(sid, "suggestion_impression", article_id=rec.kb.find(rng.choice(kb_urls)).id, position=0)
        out.append(sid)
    return out


def _short(rec, rng: random.Random, n: int, kb_urls: list[str]) -> list[str]:
    out = []
    for _ in range(n):
        sid = f"short-{uuid.uuid4().hex}"
        for url in rng.sample(kb_urls, 3):
            rec.track(sid, "page_view", url=url)
        out.append(sid)
    return out


def _next_page(rec, rng: random.Random, sid: str, n: int, text_chars: int, corpus: list[str], kb_urls: list[str]):
    """The visitor reads one more page before asking again: a KB page or a site page, as `_reader` tracks them."""
    if n % 2 == 0:
        rec.track(sid, "page_view", url=rng.choice(kb_urls))
        return
    words = " ".join(rng.choice(corpus) for _ in range(40))
    while len(words) < text_chars:
        words += " " + words
    rec.track(
        sid, "page_view", url=f"https://site.test/next/{sid}/{n}", title=f"Next page {n}", text=words[:text_chars]
    )


def _measure(
    rec,
    groups: dict[str, list[str]],
    calls: int,
    rng: random.Random,
    pattern: str,
    next_page=None,
    fresh_short=None,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and thread CPU seconds of each call, per group. On a shared box the wall clock's percentiles are
    mostly the scheduler (other jobs holding the cores); the CPU time is what the call cost this process.

    pattern "static": the same sessions asked again and again, nothing tracked in between (what a widget polling
    suggestions does, and every earlier round of this benchmark). "append": each timed call follows one new page
    view of that session (untimed), as a visitor who reads a page and then sees suggestions: a long session gets
    its next page; a 3-page session is a fresh visitor whose third page is tracked after two KB pages and one
    suggestion. In each round every group gets the same kind of page (a KB page or a site page with text, in
    turn), so both groups' calls meet one event their worker has not resolved or scored before."""
    times: dict[str, list[float]] = {kind: [] for kind in groups}
    cpu: dict[str, list[float]] = {kind: [] for kind in groups}
    for sid in [s for sids in groups.values() for s in sids]:  # warm-up: this worker's caches, as in serving
        rec.suggest(sid, k=3)
    n = 0
    for _ in range(calls):
        for kind, sids in groups.items():
            sid = rng.choice(sids)
            if pattern == "append":
                n += 1
                if kind == "short":
                    sid = fresh_short()
                next_page(sid, n)  # the same kind of page for every group in a round
            t, c = time.perf_counter(), time.thread_time()
            rec.suggest(sid, k=3)
            times[kind].append(time.perf_counter() - t)
            cpu[kind].append(time.thread_time() - c)
    return times, cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", help="index dir (default: the stdlib demo KB, built once and cached)")
    p.add_argument("--cache", help="where to build/cache the demo index (default: a temp dir)")
    p.add_argument("--encoder", default="hashing:384", help="for the demo index (minilm: the real model)")
    p.add_argument("--store", default="memory,redis", help="comma-separated: memory, redis")
    p.add_argument("--redis-url", default=None, help="default: a private redis-server on 127.0.0.1")
    p.add_argument("--sessions", type=int, default=20, help="long sessions (and as many short ones)")
    p.add_argument("--long-events", type=int, default=200, help="events per long session (half impressions)")
    p.add_argument("--text-chars", type=int, default=20_000, help="text per page view outside the KB")
    p.add_argument("--calls", type=int, default=300, help="timed suggest() calls per kind")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--pattern",
        default="static,append",
        help="comma-separated: static (the same sessions asked again), append (one new page view before each call)",
    )
    args = p.parse_args()

    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    from tqdm.auto import tqdm

    from plugin import SessionRecommender, SessionSettings

    load0 = os.getloadavg()[0]
    index_dir = _index(args)
    rows = []
    redis = None
    try:
        for kind in tqdm(args.store.split(","), desc="stores"):
            settings = SessionSettings(max_events=max(200, args.long_events), dedupe_window_seconds=0)
            store = None
            if kind == "redis":
                from soak import Redis

                from plugin.redis_store import RedisSessionStore

                redis = redis or Redis(args.redis_url or os.environ.get("REDIS_URL"))
                store = RedisSessionStore.from_url(redis.url, settings, prefix=f"bench-len-{uuid.uuid4().hex[:8]}:")
            rec = SessionRecommender.load(index_dir, store=store, session_settings=settings)
            faiss.omp_set_num_threads(1)
            rng = random.Random(args.seed)
            arts = [rec.kb.get(a) for a in rec.index.ids()]
            corpus = [a.text[:400] for a in arts if a.text]
            kb_urls = [a.url for a in arts if a.url]
            groups = {
                "long": _reader(rec, rng, args.sessions, args.long_events, args.text_chars, corpus, kb_urls),
                # exactly a full context: as many intent events as max_context_events (and as many impressions)
                "full": _reader(
                    rec, rng, args.sessions, 2 * rec.settings.max_context_events, args.text_chars, corpus, kb_urls
                ),
                "short": _short(rec, rng, args.sessions, kb_urls),
            }

            def fresh_short(rec=rec, rng=rng, kb_urls=kb_urls) -> str:
                # a new visitor: two KB pages and a suggestion; the third page is tracked by the caller
                sid = f"short-{uuid.uuid4().hex}"
                for url in rng.sample(kb_urls, 2):
                    rec.track(sid, "page_view", url=url)
                rec.suggest(sid, k=3)
                return sid

            def next_page(sid: str, n: int, rec=rec, rng=rng, corpus=corpus, kb_urls=kb_urls) -> None:
                _next_page(rec, rng, sid, n, args.text_chars, corpus, kb_urls)

            for pattern in args.pattern.split(","):
                t, c = _measure(rec, groups, args.calls, rng, pattern, next_page, fresh_short)
                held = (len(rec.events(groups["long"][0])), len(rec.events(groups["full"][0])))
                name = f"{kind}, {pattern}"
                rows.append((name, *held, {k: statistics.quantiles(v, n=100) for k, v in t.items()}))
                rows.append((f"{name}, thread CPU", *held, {k: statistics.quantiles(v, n=100) for k, v in c.items()}))
            if redis is not None and store is not None:
                redis.close(store.prefix)
    finally:
        if redis is not None and redis.proc is not None:
            redis.proc.terminate()
    load1 = os.getloadavg()[0]
    print(
        f"\nsuggest(k=3) on one thread, {args.sessions} long sessions ({args.long_events} events: page views with "
        f"{args.text_chars} chars of text, KB pages, searches, impressions), as many sessions that just fill the "
        f"context (max_context_events intent events) and {args.sessions} 3-page sessions, {args.calls} calls "
        f"each, interleaved; index {index_dir.name}; load average {load0:.2f} before, {load1:.2f} after\n"
    )
    print(
        "| store, pattern | events held: long / full context | long p50 ms (p90) | full-context p50 ms (p90) "
        "| 3-page p50 ms (p90) | long / 3-page p50 | long / full-context p50 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for kind, held, held_full, q in rows:

        def cell(k: str, q: dict = q) -> str:
            return f"{q[k][49] * 1e3:.2f} ({q[k][89] * 1e3:.2f})"

        print(
            f"| {kind} | {held} / {held_full} | {cell('long')} | {cell('full')} | {cell('short')} "
            f"| **{q['long'][49] / q['short'][49]:.2f}** | **{q['long'][49] / q['full'][49]:.2f}** |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
