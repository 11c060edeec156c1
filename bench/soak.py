"""Soak: the hardened service with N uvicorn workers sharing one Redis, under steady mixed traffic on loopback.

    python bench/soak.py --duration 60 --rate 100 --workers 2 [--redis-url redis://127.0.0.1:6379/0]

Starts (only on 127.0.0.1) a private redis-server unless --redis-url/REDIS_URL is given, builds a synthetic
index (hashing encoder, --articles), and runs `uvicorn --workers N --factory adapters.http.hardened:app_from_env`.
Then --visitors simulated visitors send requests on a fixed open-loop schedule of --rate per second:

    45% page view (with page text)   35% GET suggestions   10% search   5% chat   5% a new visitor arrives

Each request is scheduled in advance and its latency is counted from the scheduled time (no coordinated
omission). Every non-2xx answer and every transport error counts as an error, except a 409 empty_session
for a visitor whose first page view is still in flight. Memory is sampled every --sample seconds: the RSS of
each worker process and Redis `used_memory`. "Flat" means the workers' RSS over the last third of the run
is within --rss-tolerance of the middle third (the first third is warm-up: caches and allocator pools).
Prints a JSON report; exit status 1 if there were errors or the workers' memory was not flat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
SECRET = "soak-secret-" + "s" * 32
TOPICS = [
    "json serialize",
    "socket network",
    "http client",
    "csv files",
    "turtle graphics",
    "ssl tls",
    "threads locks",
    "regex patterns",
    "dates times",
    "unit tests",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    """The uvicorn worker processes under the supervisor (not multiprocessing's resource tracker)."""
    try:
        kids = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    out = []
    for kid in kids:
        try:
            cmd = Path(f"/proc/{kid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmd:
            out.append(kid)
    return out


def build_index(directory: Path, n: int) -> None:
    from plugin import Article, HashingEncoder, SessionRecommender, SuggestSettings

    arts = [
        Article(
            f"a{i}",
            f"{TOPICS[i % len(TOPICS)].title()} guide {i}",
            f"https://kb.test/{i}",
            f"{TOPICS[i % len(TOPICS)]} article number {i} " * 5,
            tags=(TOPICS[i % len(TOPICS)].split()[0],),
        )
        for i in range(n)
    ]
    SessionRecommender.build(
        arts, encoder=HashingEncoder(256), progress=False, settings=SuggestSettings(min_score=-1.0)
    ).save(directory)


class Redis:
    def __init__(self, url: str | None) -> None:
        self.proc: subprocess.Popen | None = None
        self.tmp: str | None = None
        if url is None:
            port = _free_port()
            self.tmp = tempfile.mkdtemp(prefix="soak-redis-")
            binary = shutil.which("redis-server") or "/usr/bin/redis-server"
            self.proc = subprocess.Popen(
                [binary, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", self.tmp],
                stdout=subprocess.DEVNULL,
            )
            url = f"redis://{HOST}:{port}/0"
        self.url = url
        import redis

        self.client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                self.client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def close(self, prefix: str) -> None:
        keys = list(self.client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 1000):
            self.client.delete(*keys[i : i + 1000])
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            shutil.rmtree(self.tmp or "", ignore_errors=True)


class Visitor:
    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.views = 0


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    work = Path(tempfile.mkdtemp(prefix="soak-"))
    build_index(work / "index", args.articles)
    redis = Redis(args.redis_url or os.environ.get("REDIS_URL"))
    prefix = f"soak-{uuid.uuid4().hex[:8]}:"
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SESSION_SUGGEST_INDEX": str(work / "index"),
        "SESSION_SUGGEST_SECRET": SECRET,
        "REDIS_URL": redis.url,
        "SESSION_SUGGEST_REDIS_PREFIX": prefix,
        # one load generator is one client address: lift the per-client limit, keep the per-session one
        "SESSION_SUGGEST_LIMITS": json.dumps({"per_client": 10**9}),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "adapters.http.hardened:app_from_env",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=REPO,
        env=env,
    )
    base = f"http://{HOST}:{port}"
    latencies: list[float] = []
    errors: dict[str, int] = {}
    samples: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    try:
        async with httpx.AsyncClient(
            base_url=base, timeout=30, limits=httpx.Limits(max_connections=args.connections)
        ) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if (await http.get("/v1/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("server did not start")
                await asyncio.sleep(0.25)
            workers = _children(server.pid)
            rng = random.Random(0)

            async def new_visitor() -> Visitor:
                r = await http.post("/v1/sessions")
                r.raise_for_status()
                return Visitor(r.json()["session_id"])

            visitors = [await new_visitor() for _ in range(args.visitors)]

            async def one(kind: str, scheduled: float) -> None:
                try:
                    if kind == "new":
                        visitors[rng.randrange(len(visitors))] = await new_visitor()
                        status = 201
                    else:
                        v = visitors[rng.randrange(len(visitors))]
                        topic = rng.choice(TOPICS)
                        if kind == "view":
                            i = rng.randrange(args.articles * 2)  # half KB pages, half other pages with text
                            body = {
                                "kind": "page_view",
                                "url": f"https://site.test/{i}",
                                "title": f"{topic} page",
                                "text": f"{topic} details {i} " * 20,
                            }
                            r = await http.post(f"/v1/sessions/{v.sid}/events", json=body)
                            v.views += 1
                        elif kind == "search":
                            r = await http.post(f"/v1/sessions/{v.sid}/events", json={"kind": "search", "query": topic})
                        elif kind == "suggest":
                            r = await http.get(f"/v1/sessions/{v.sid}/suggestions", params={"k": 3})
                        else:
                            r = await http.post(
                                f"/v1/sessions/{v.sid}/chat", json={"message": f"how do I use {topic}?"}
                            )
                        status = r.status_code
                        if status == 409 and kind == "suggest" and v.views == 0:
                            status = 200  # a brand-new visitor with nothing tracked yet: an expected answer
                    if status >= 300:
                        errors[f"{kind}:{status}"] = errors.get(f"{kind}:{status}", 0) + 1
                except httpx.HTTPError as exc:
                    errors[f"{kind}:{type(exc).__name__}"] = errors.get(f"{kind}:{type(exc).__name__}", 0) + 1
                latencies.append(time.monotonic() - scheduled)
                counts[kind] = counts.get(kind, 0) + 1

            async def sampler(stop: asyncio.Event, t0: float) -> None:
                while not stop.is_set():
                    samples.append(
                        {
                            "t": round(time.monotonic() - t0, 1),
                            "workers_rss_mib": [round(_rss_kib(p) / 1024, 1) for p in workers],
                            "redis_used_mib": round(redis.used_memory() / 2**20, 2),
                        }
                    )
                    try:
                        await asyncio.wait_for(stop.wait(), args.sample)
                    except asyncio.TimeoutError:
                        pass

            mix = ["view"] * 45 + ["suggest"] * 35 + ["search"] * 10 + ["chat"] * 5 + ["new"] * 5
            stop = asyncio.Event()
            t0 = time.monotonic()
            sampling = asyncio.create_task(sampler(stop, t0))
            tasks = []
            n = int(args.duration * args.rate)
            for i in range(n):
                scheduled = t0 + i / args.rate
                delay = scheduled - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(rng.choice(mix), scheduled)))
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - t0
            stop.set()
            await sampling
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        redis.close(prefix)
        shutil.rmtree(work, ignore_errors=True)

    lat = sorted(latencies)

    def pct(p: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else 0.0

    def third(k: int) -> list[float]:
        rows = [s for s in samples if k * args.duration / 3 <= s["t"] < (k + 1) * args.duration / 3 + 1e-9]
        return [sum(s["workers_rss_mib"]) for s in rows] or [0.0]

    mid, last = statistics.mean(third(1)), statistics.mean(third(2))
    growth = (last - mid) / mid if mid else 0.0
    return {
        "workers": args.workers,
        "target_rate": args.rate,
        "requests": len(latencies),
        "achieved_rate": round(len(latencies) / elapsed, 1),
        "duration_s": round(elapsed, 1),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "mix": counts,
        "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
        "workers_rss_mib_middle_third": round(mid, 1),
        "workers_rss_mib_last_third": round(last, 1),
        "workers_rss_growth": round(growth, 4),
        "memory_flat": abs(growth) <= args.rss_tolerance,
        "redis_used_mib": {
            "start": samples[0]["redis_used_mib"] if samples else None,
            "end": samples[-1]["redis_used_mib"] if samples else None,
        },
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=100.0, help="requests per second (open loop)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--visitors", type=int, default=500)
    ap.add_argument("--articles", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--sample", type=float, default=2.0, help="seconds between memory samples")
    ap.add_argument("--rss-tolerance", type=float, default=0.05, help="allowed RSS growth, last vs middle third")
    ap.add_argument("--redis-url", default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    report = asyncio.run(soak(args))
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if report["errors"] == 0 and report["memory_flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
