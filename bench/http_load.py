"""Load-generate GET suggestions against the HTTP service on loopback and print a Markdown table.

    python bench/http_load.py --workers 1,2 --sessions 1000 --duration 10 --rate 500,1000

For each worker count N it starts N single-process uvicorn servers (`adapters.http.app:app_from_env`) on
free 127.0.0.1 ports over the same index and pins every session to one of them, as a sticky load balancer
would (sessions live in each worker's memory until a shared store is configured). It then seeds the
sessions with page views and measures two things, bounded by --duration and --max-requests:

  closed loop  --connections keep-alive connections, each sending the next request when the last answers
               (maximum throughput);
  open loop    --rate requests/s on a fixed schedule, latency counted from the scheduled send time, so a
               stalled server is not hidden by the client waiting for it (coordinated omission).

The client is a tiny asyncio HTTP/1.1 client on raw sockets (the same 2 cores run it and the servers).
A baseline row times `SessionRecommender.suggest` in-process, without HTTP, in the same run.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: list[int]) -> float:
    """user+system CPU time of these processes so far (from /proc; Linux)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Conn:
    """One keep-alive HTTP/1.1 connection; just enough protocol for this service's JSON answers."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _percentiles(lat_s: list[float]) -> tuple[float, float, float]:
    if len(lat_s) < 2:
        return (float("nan"),) * 3  # type: ignore[return-value]
    q = statistics.quantiles(lat_s, n=100, method="inclusive")
    return q[49] * 1e3, q[89] * 1e3, q[98] * 1e3


async def _seed(
    ports: list[int], n_sessions: int, article_ids: list[str], pages: int, rng: random.Random
) -> dict[int, list[str]]:
    by_port: dict[int, list[str]] = {p: [] for p in ports}
    conns = {p: Conn(p) for p in ports}
    for c in conns.values():
        await c.open()
    for i in range(n_sessions):
        port = ports[i % len(ports)]
        c = conns[port]
        status, body = await c.request("POST", "/v1/sessions", b"")
        assert status == 201, body
        sid = json.loads(body)["session_id"]
        for aid in rng.sample(article_ids, pages):
            ev = json.dumps({"kind": "page_view", "article_id": aid, "title": aid}).encode()
            status, body = await c.request("POST", f"/v1/sessions/{sid}/events", ev)
            assert status == 200, body
        by_port[port].append(sid)
    for c in conns.values():
        c.close()
    return by_port


async def _run(
    by_port: dict[int, list[str]],
    connections: int,
    duration: float,
    max_requests: int,
    rate: float | None,
    k: int,
    seed: int,
    server_pids: list[int],
) -> dict[str, float]:
    ports = sorted(by_port)
    latencies: list[float] = []
    errors = 0
    sent = 0
    t0 = time.perf_counter()
    deadline = t0 + duration

    async def worker(i: int) -> None:
        nonlocal errors, sent
        port = ports[i % len(ports)]
        sids = by_port[port]
        rng = random.Random(seed * 1000 + i)
        c = Conn(port)
        await c.open()
        n = 0
        try:
            while True:
                now = time.perf_counter()
                if now >= deadline or sent >= max_requests:
                    return
                if rate:
                    # connection i owns every `connections`-th slot of the global schedule
                    scheduled = t0 + (i + n * connections) / rate
                    if scheduled >= deadline:
                        return
                    if scheduled > now:
                        await asyncio.sleep(scheduled - now)
                    start = scheduled
                else:
                    start = time.perf_counter()
                sent += 1
                n += 1
                status, _ = await c.request("GET", f"/v1/sessions/{rng.choice(sids)}/suggestions?k={k}")
                if status != 200:
                    errors += 1
                latencies.append(time.perf_counter() - start)
        finally:
            c.close()

    cpu0, server_cpu0 = time.process_time(), _cpu_seconds(server_pids)
    await asyncio.gather(*(worker(i) for i in range(connections)))
    elapsed = time.perf_counter() - t0
    n = max(len(latencies), 1)
    server_cpu = (_cpu_seconds(server_pids) - server_cpu0) / n * 1e3
    client_cpu = (time.process_time() - cpu0) / n * 1e3
    p50, p90, p99 = _percentiles(latencies)
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "errors": errors,
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
    }


def _start_servers(n: int, index_dir: Path, http: str, loop: str) -> tuple[list[subprocess.Popen], list[int]]:
    env = {
        **os.environ,
        "SESSION_SUGGEST_INDEX": str(index_dir),
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    procs, ports = [], []
    for _ in range(n):
        port = _free_port()
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "adapters.http.app:app_from_env",
            "--host",
            HOST,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--http",
            http,
            "--loop",
            loop,
        ]
        procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT))
        ports.append(port)
    deadline = time.monotonic() + 120
    for port, proc in zip(ports, procs):
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server on port {port} did not start") from None
                time.sleep(0.2)
    return procs, ports


def _baseline(index_dir: Path, n_sessions: int, pages: int, n_calls: int, k: int, seed: int) -> dict[str, float]:
    import faiss
    import torch

    from plugin import SessionRecommender

    torch.set_num_threads(1)  # as the servers run (OMP_NUM_THREADS=1, see _start_servers)
    faiss.omp_set_num_threads(1)
    rec = SessionRecommender.load(index_dir)
    rng = random.Random(seed)
    ids = rec.kb.ids()
    sids = [f"s{i}" for i in range(n_sessions)]
    for sid in sids:
        for aid in rng.sample(ids, pages):
            rec.track(sid, "page_view", article_id=aid, title=aid)
    lat = []
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(n_calls):
        s = time.perf_counter()
        rec.suggest(rng.choice(sids), k)
        lat.append(time.perf_counter() - s)
    elapsed = time.perf_counter() - t0
    cpu = (time.process_time() - cpu0) / n_calls * 1e3
    p50, p90, p99 = _percentiles(lat)
    return {
        "requests": n_calls,
        "rps": n_calls / elapsed,
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "errors": 0,
        "server_cpu": cpu,
        "client_cpu": 0.0,
    }


def _index(args: argparse.Namespace) -> Path:
    if args.index:
        return Path(args.index)
    from plugin.cli import build_demo_recommender, demo_index_dir

    cache = Path(args.cache) if args.cache else Path(tempfile.gettempdir()) / "session-suggest-bench"
    rec = build_demo_recommender(cache, encoder=args.encoder, progress=False)
    return demo_index_dir(cache, rec.encoder.name)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", help="index dir (default: the stdlib demo KB, built once and cached)")
    p.add_argument("--cache", help="where to build/cache the demo index (default: a temp dir)")
    p.add_argument(
        "--encoder",
        default="hashing:384",
        help="for the demo index; GET suggestions never embeds, so 384-d hashing costs what MiniLM does",
    )
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts to compare")
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--pages", type=int, default=3, help="page views seeded per session")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument("--rate", default="1000", help="open-loop rates in requests/s, comma-separated (0: none)")
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--http", default="auto", help="uvicorn --http: auto, h11, httptools")
    p.add_argument("--loop", default="auto", help="uvicorn --loop: auto, asyncio, uvloop")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    rates = [float(r) for r in args.rate.split(",") if float(r) > 0]
    load0 = os.getloadavg()
    index_dir = _index(args)
    n_articles = sum(1 for _ in open(index_dir / "articles.jsonl", encoding="utf-8"))
    ids = [json.loads(line)["id"] for line in open(index_dir / "articles.jsonl", encoding="utf-8")]
    rows = []
    base = _baseline(index_dir, min(args.sessions, 1000), args.pages, 3000, args.k, args.seed)
    rows.append(("in-process suggest()", "-", "1 thread", base))
    for n in [int(x) for x in args.workers.split(",")]:
        procs, ports = _start_servers(n, index_dir, args.http, args.loop)
        try:
            rng = random.Random(args.seed)
            by_port = asyncio.run(_seed(ports, args.sessions, ids, args.pages, rng))
            pids = [proc.pid for proc in procs]
            asyncio.run(_run(by_port, args.connections, 2.0, 5000, None, args.k, args.seed + 1, pids))  # warm-up
            closed = asyncio.run(
                _run(by_port, args.connections, args.duration, args.max_requests, None, args.k, args.seed, pids)
            )
            rows.append((f"HTTP, {n} worker(s)", "closed loop", f"{args.connections} conns", closed))
            for rate in rates:
                opened = asyncio.run(
                    _run(by_port, args.connections, args.duration, args.max_requests, rate, args.k, args.seed + 2, pids)
                )
                rows.append((f"HTTP, {n} worker(s)", f"open loop {rate:.0f}/s", f"{args.connections} conns", opened))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=20)

    print(
        f"\nGET /v1/sessions/{{id}}/suggestions?k={args.k} — {n_articles} articles ({index_dir.name}), "
        f"{args.sessions} sessions x {args.pages} page views, {os.cpu_count()} CPUs, uvicorn --http {args.http} "
        f"--loop {args.loop}, {args.duration:.0f} s per row\n"
    )
    load1, load5, _ = os.getloadavg()
    print(f"load average during the run: {load0[0]:.2f} before, {load1:.2f} after (1 min)\n")
    print(
        "| setup | load | client | requests | req/s | p50 ms | p90 ms | p99 ms | errors | server CPU ms/req "
        "| client CPU ms/req |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, mode, client, r in rows:
        print(
            f"| {name} | {mode} | {client} | {r['requests']} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p90']:.2f} "
            f"| {r['p99']:.2f} | {r['errors']} | {r['server_cpu']:.3f} | {r['client_cpu']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
