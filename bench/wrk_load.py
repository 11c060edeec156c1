"""Production load measured from outside the process: wrk (C, its own process) against the hardened app with
Redis and 2 uvicorn workers, as docs/production.md tells operators to run it.

    python bench/wrk_load.py [--index DIR] [--rate 300] [--duration 60] [--workers 2] [--visitors 2000] [--fill N]
                             [--steady S] [--length-ratio R] [--site-pages [N]] [--site-zipf S]
                             [--suggest-connections 1,2,4,8,16] [--suggest-duration 10] [--skip-mixed] [--json OUT]

Starts a private redis-server (or uses --redis-url) and `python -m plugin serve --index DIR --workers N
--redis-url URL` on 127.0.0.1, with a fixed signing secret and `trust_forwarded_for` (the service sits behind a
proxy; every simulated visitor sends its own X-Forwarded-For address, so the per-client and per-session rate
limits run as in production rather than being lifted). It pre-creates --visitors signed sessions, seeds each
with 3 KB page views (`--fill N`: then fills each session to N events in the mix's proportions, so the runs serve
sessions at their bounds, as a long-running site does), then runs:

  mixed    bench/wrk/mixed.lua at --rate req/s for --duration s: GET suggestions, page views (KB pages and site
           pages with text), page view + suggestions batches, impressions, clicks, searches, chat, new visitors.
           Every site page is a new random text (the worst case: each one embedded), or with --site-pages N one of
           N fixed pages by Zipf popularity (exponent --site-zipf), as a real site's visitors read its pages.
           Debian's wrk has no constant-rate mode (wrk2 has); bench/wrk/common.lua paces the requests on a fixed
           schedule at --rate (each connection that finishes claims the next send time), after a 10 s warm-up at the
           same rate. The achieved rate is reported, with the sends that were late because every connection was
           busy (latency is counted from the send, as wrk does). The measured run also reports the CPU, in cores,
           of each worker, Redis, wrk and the rest of the box.
  suggest  bench/wrk/suggest.lua, GET suggestions only, closed loop at each --suggest-connections count:
           the highest throughput whose p90 stays <= --p90-ms is reported.
  length   (--length-ratio R) half the visitors filled to --fill events (default 190), then GET suggestions on
           one connection, alternating R times between the filled half and the 3-page half: the long / 3-page p50
           of issue #13 item 1 at the production configuration, from outside the process.

Every non-2xx answer and every socket error is an error. Workers' RSS is read from /proc before and after the
mixed run (and sampled every 5 s). `--steady S` first runs the same traffic for S seconds, so the measured minute
shows a server whose bounded caches have filled (steady state) rather than one that has just started. The
1-minute load average is printed beside the numbers: the box is shared.
Exit status 1 on any error in the mixed run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from http_load import _index  # noqa: E402  (the demo index, built once and cached)
from soak import HOST, Redis, _children, _free_port, _rss_kib  # noqa: E402

WRK_DIR = ROOT / "bench" / "wrk"
SECRET = "wrk-load-secret-" + "w" * 32


class Service:
    """`python -m plugin serve` (the hardened factory) with N workers on a free loopback port."""

    def __init__(
        self,
        index: Path,
        workers: int,
        redis_url: str,
        prefix: str,
        extra_env: dict[str, str] | None = None,
        serve_args: tuple[str, ...] = (),
    ):
        self.port = _free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SESSION_SUGGEST_SECRET": SECRET,
            "SESSION_SUGGEST_REDIS_PREFIX": prefix,
            "SESSION_SUGGEST_LIMITS": json.dumps({"trust_forwarded_for": True}),
            **(extra_env or {}),
        }
        # stderr to a file, not a pipe: a pipe nobody reads fills up and stalls the server mid-run
        self.log = tempfile.NamedTemporaryFile(prefix="wrk-load-service-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "plugin",
                "serve",
                "--index",
                str(index),
                "--workers",
                str(workers),
                "--redis-url",
                redis_url,
                "--host",
                HOST,
                "--port",
                str(self.port),
                *serve_args,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.url = f"http://{HOST}:{self.port}"
        self._wait(workers)

    def _wait(self, workers: int) -> None:
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited: {Path(self.log.name).read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200 and len(self.workers()) >= workers:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError("the service did not answer /v1/health within 180 s")

    def workers(self) -> list[int]:
        return _children(self.proc.pid)

    def rss_mib(self) -> list[float]:
        return [round(_rss_kib(p) / 1024, 1) for p in self.workers()]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


async def _seed_visitors(url: str, n: int, kb_urls: list[str], seed: int) -> list[tuple[str, str]]:
    """n signed sessions, each with 3 KB page views; returns (session id, client address) pairs."""
    import httpx

    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    sem = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def one(i: int) -> None:
            ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            h = {"X-Forwarded-For": ip}
            async with sem:
                r = await http.post("/v1/sessions", headers=h)
                r.raise_for_status()
                sid = r.json()["session_id"]
                for page in rng.sample(kb_urls, 3):
                    (
                        await http.post(
                            f"/v1/sessions/{sid}/events", json={"kind": "page_view", "url": page}, headers=h
                        )
                    ).raise_for_status()
                out.append((sid, ip))

        await asyncio.gather(*(one(i) for i in range(n)))
    return out


_WORDS = (
    "json serialize socket network thread lock csv reader parse date time zone regex pattern http client server "
    "queue async file path encode decode unicode bytes buffer stream process signal test"
).split()


# A site's popularity of its pages, rank r read with probability ~ r^-s: web request traces fit s = 0.64-0.83
# (Breslau et al., "Web caching and Zipf-like distributions", INFOCOM 1999); 0.8 is near their higher end.
SITE_ZIPF = 0.8
# The number of fixed site pages `--site-pages` draws from when given without a number: about the size of the two
# documentation sites this project is tuned on (PostgreSQL's ~1,170 pages and Django's ~690 together: ~1,860). It
# fits a worker's page cache (4,096 pages, ~5 kB each), as a small or mid-sized site's pages do.
SITE_PAGES = 2000


def site_pages(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """n fixed site pages (url, title, text), most popular first: the same for the same n and seed, each with the
    mix's ~1.5 kB of text (220 of its words), so that the fill and bench/wrk/mixed.lua read the same pages."""
    rng = random.Random(f"site-pages:{seed}")
    text = lambda k: " ".join(rng.choice(_WORDS) for _ in range(k))  # noqa: E731
    return [(f"https://site.test/page{r}", text(4), text(220)) for r in range(1, n + 1)]


def zipf_cum_weights(n: int, s: float) -> list[float]:
    """Cumulative popularity of ranks 1..n, rank r weighing r^-s (what mixed.lua draws by)."""
    if n < 1 or s < 0:
        raise ValueError(f"need n >= 1 pages and an exponent s >= 0, got n={n}, s={s}")
    return list(itertools.accumulate(r**-s for r in range(1, n + 1)))


def _fill_events(
    rng: random.Random,
    kb: list[tuple[str, str]],
    n: int,
    site: tuple[list[tuple[str, str, str]], list[float]] | None = None,
) -> list[dict[str, Any]]:
    """n events in bench/wrk/mixed.lua's proportions of what a session holds: page views (half KB pages, half site
    pages with ~1.5 kB of text: new random texts, or with `site` (pages, cumulative weights) drawn from those
    pages by popularity), impressions in threes, clicks and searches."""
    text = lambda k: " ".join(rng.choice(_WORDS) for _ in range(k))  # noqa: E731
    out: list[dict[str, Any]] = []
    while len(out) < n:
        r = rng.random()
        if r < 0.45:
            if rng.random() < 0.5:
                out.append({"kind": "page_view", "url": rng.choice(kb)[1]})
            elif site is not None:
                url, title, body = rng.choices(site[0], cum_weights=site[1])[0]
                out.append({"kind": "page_view", "url": url, "title": title, "text": body})
            else:
                url = f"https://site.test/p{rng.randrange(100_000)}"
                out.append({"kind": "page_view", "url": url, "title": text(4), "text": text(220)})
        elif r < 0.8:
            out.extend(
                {"kind": "suggestion_impression", "article_id": rng.choice(kb)[0], "position": i} for i in range(3)
            )
        elif r < 0.9:
            out.append({"kind": "suggestion_click", "article_id": rng.choice(kb)[0], "position": rng.randrange(3)})
        else:
            out.append({"kind": "search", "query": text(3)})
    return out[:n]


async def _fill_visitors(
    url: str,
    visitors: list[tuple[str, str]],
    kb: list[tuple[str, str]],
    n: int,
    seed: int,
    site: tuple[list[tuple[str, str, str]], list[float]] | None = None,
) -> None:
    """Each visitor's session filled up to n events (batches of 50, the API's largest), as if it had browsed for
    a long time: the measured run then serves sessions at their bounds instead of 3-page ones."""
    import httpx
    from tqdm.auto import tqdm

    rng = random.Random(seed + 1)
    sem = asyncio.Semaphore(8)
    bar = tqdm(total=len(visitors), desc="filling sessions")
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def one(sid: str, ip: str, events: list[dict[str, Any]]) -> None:
            async with sem:
                for i in range(0, len(events), 50):
                    r = await http.post(
                        f"/v1/sessions/{sid}/events/batch",
                        json={"events": events[i : i + 50]},
                        headers={"X-Forwarded-For": ip},
                    )
                    r.raise_for_status()
            bar.update()

        await asyncio.gather(*(one(sid, ip, _fill_events(rng, kb, n - 3, site)) for sid, ip in visitors))
    bar.close()


def _wrk(script: str, url: str, connections: int, duration: float, threads: int, args: list[str]) -> dict[str, Any]:
    cmd = [
        "wrk",
        "-t",
        str(min(threads, connections)),
        "-c",
        str(connections),
        "-d",
        f"{duration:g}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_DIR / script),
        url,
        "--",
        *args,
    ]
    # wrk's own CPU: the children's rusage grows by what each waited-for child used (the load generator shares
    # the box's cores with the service, so its share belongs beside the service's)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(ln for ln in reversed(out.splitlines()) if ln.startswith("{"))
    r = json.loads(line)
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["connections"] = connections
    r["wrk_cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
    for p in ("p50", "p90", "p99", "max"):
        r[f"{p}_ms"] = r.pop(f"{p}_us") / 1000
    return r


def wrk_rate_args(rate: float, threads: int) -> list[str]:
    """The pacing arguments bench/wrk/common.lua reads after a script's files: the run's total requests/s on a
    fixed schedule (0: closed loop) and wrk's thread count (each thread paces its share)."""
    if rate < 0:
        raise ValueError(f"rate must be >= 0 requests/s (0: closed loop), got {rate}")
    return [f"{rate:g}", str(threads)]


def _proc_cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (/proc/<pid>/stat fields 14 and 15); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])  # fields after "(comm) ": state is [0], utime [11], stime [12]


def _box_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat's first line."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values[:8]) - idle, sum(values[:8])


class CpuWindow:
    """CPU used by named processes over a window, in cores (CPU seconds per wall second), beside the whole box's:
    were the cores saturated, and by whom."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = time.monotonic()
        self.ticks = {name: _proc_cpu_ticks(pid) for name, pid in pids.items()}
        self.box = _box_ticks()

    def stop(self, extra_cpu_s: dict[str, float] | None = None) -> dict[str, Any]:
        """Cores used by each process since the window opened; `extra_cpu_s`: CPU seconds measured otherwise (wrk's,
        from its rusage) over the same window. `others`: the box's busy cores not accounted for by any of them."""
        wall = time.monotonic() - self.t0
        hz = os.sysconf("SC_CLK_TCK")
        cores = {name: (_proc_cpu_ticks(pid) - self.ticks[name]) / hz / wall for name, pid in self.pids.items()}
        cores.update({name: sec / wall for name, sec in (extra_cpu_s or {}).items()})
        busy, total = _box_ticks()
        n = os.cpu_count() or 1
        box = n * (busy - self.box[0]) / max(1, total - self.box[1])
        return {
            "seconds": round(wall, 1),
            "cores": {name: round(c, 3) for name, c in cores.items()},
            "box_busy_cores": round(box, 3),
            "box_cores": n,
            "others": round(box - sum(cores.values()), 3),
        }


def _mixed(
    service: Service,
    files: tuple[str, str],
    rate: float,
    duration: float,
    connections: int,
    threads: int,
    steady: float = 0.0,
    redis_pid: int | None = None,
    site_args: tuple[str, ...] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    # wrk paces every run on a fixed schedule at `rate` (bench/wrk/common.lua): no delay to calibrate, and the
    # offered rate does not fall when the service's latency rises after the warm-up (it did with a fixed delay)
    paced = [*files, *wrk_rate_args(rate, threads), *site_args]
    warm = _wrk("mixed.lua", service.url, connections, 10, threads, paced)
    samples: list[list[float]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not stop.wait(5):
            samples.append([round(time.monotonic() - t0, 1), *service.rss_mib()])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    pids = {f"worker {i + 1}": pid for i, pid in enumerate(service.workers())} | {"supervisor": service.proc.pid}
    if redis_pid is not None:
        pids["redis"] = redis_pid
    steady_run = None
    if steady > 0:  # the same traffic first, so the bounded caches fill before the measured run
        # (each wrk run opens its connections anew: the kernel hashes them to the workers afresh, so the workers'
        # shares of the CPU, which show how evenly the connections landed, are kept per run)
        steady_cpu = CpuWindow(pids)
        steady_run = _wrk("mixed.lua", service.url, connections, steady, threads, paced)
        steady_run["cpu"] = steady_cpu.stop({"wrk": steady_run["wrk_cpu_s"]})
    before = service.rss_mib()
    cpu = CpuWindow(pids)
    run = _wrk("mixed.lua", service.url, connections, duration, threads, paced)
    run["cpu"] = cpu.stop({"wrk": run["wrk_cpu_s"]})
    stop.set()
    sampler.join()
    run.update(rss_before_mib=before, rss_after_mib=service.rss_mib(), rss_samples_mib=samples)
    if steady_run is not None:
        run["steady"] = {k: steady_run[k] for k in ("requests", "rps", "errors", "p99_ms", "late", "cpu")} | {
            "seconds": steady
        }
    return warm, run


def _length_ratio(
    url: str, work: Path, visitors: list[tuple[str, str]], n_long: int, rounds: int, duration: float, threads: int
) -> dict[str, Any]:
    """GET suggestions on one connection, alternating between the filled sessions and the 3-page ones for `rounds`
    rounds of `duration` s each (issue #13 item 1, measured from outside: long / short p50 in one run)."""
    files = {"long": work / "long.txt", "short": work / "short.txt"}
    files["long"].write_text("".join(f"{sid} {ip}\n" for sid, ip in visitors[:n_long]))
    files["short"].write_text("".join(f"{sid} {ip}\n" for sid, ip in visitors[n_long:]))
    runs: dict[str, list[dict[str, Any]]] = {"long": [], "short": []}
    for _ in range(rounds):
        for kind in ("short", "long"):
            runs[kind].append(_wrk("suggest.lua", url, 1, duration, threads, [str(files[kind]), "0", str(threads)]))
    out: dict[str, Any] = {"rounds": rounds, "seconds": duration}
    for kind, rs in runs.items():
        for p in ("p50_ms", "p90_ms"):
            out[f"{kind}_{p}"] = statistics.median(r[p] for r in rs)
        out[f"{kind}_errors"] = sum(r["errors"] for r in rs)
        out[f"{kind}_rps"] = statistics.median(r["rps"] for r in rs)
    # paired by round (each long run next to its short one), so that the box's drift between rounds cancels
    out["p50_ratios_per_round"] = [round(a["p50_ms"] / b["p50_ms"], 3) for a, b in zip(runs["long"], runs["short"])]
    out["p50_ratio"] = statistics.median(out["p50_ratios_per_round"])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", help="index dir (default: the stdlib demo KB, built once and cached)")
    p.add_argument("--cache", help="where to build/cache the demo index (default: a temp dir)")
    p.add_argument("--encoder", default="hashing:384", help="for the demo index (minilm: the real model)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--visitors", type=int, default=2000)
    p.add_argument("--rate", type=float, default=300.0, help="mixed traffic, requests/s")
    p.add_argument("--duration", type=float, default=60.0, help="mixed run, seconds")
    p.add_argument("--connections", type=int, default=8, help="mixed run connections")
    p.add_argument(
        "--steady",
        type=float,
        default=0.0,
        help="seconds of the same mixed traffic before the measured run (caches fill: RSS at steady state)",
    )
    p.add_argument(
        "--fill",
        type=int,
        default=0,
        help="fill every visitor's session to this many events before the runs (e.g. 190: sessions at their bounds)",
    )
    p.add_argument(
        "--length-ratio",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="fill half the visitors (to --fill, default 190 events) and compare GET suggestions on them with the "
        "3-page half: ROUNDS alternating 1-connection runs of --suggest-duration s each (issue #13 item 1)",
    )
    p.add_argument(
        "--site-pages",
        type=int,
        nargs="?",
        const=SITE_PAGES,
        default=0,
        metavar="N",
        help="site pages drawn from N fixed pages by Zipf popularity (the fill's too; alone: N = "
        f"{SITE_PAGES}, about two documentation sites); default 0: every site page a new random text (worst case)",
    )
    p.add_argument("--site-zipf", type=float, default=SITE_ZIPF, help="popularity exponent of --site-pages")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (the box has few cores)")
    p.add_argument("--suggest-connections", default="1,2,4,8,16")
    p.add_argument("--suggest-duration", type=float, default=10.0)
    p.add_argument("--p90-ms", type=float, default=7.0)
    p.add_argument("--skip-mixed", action="store_true")
    p.add_argument("--skip-suggest", action="store_true")
    p.add_argument(
        "--shared-socket", action="store_true", help="serve --shared-socket: uvicorn's workers on one socket (before)"
    )
    p.add_argument("--redis-url", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if args.site_pages < 0:
        p.error(f"--site-pages must be >= 0 (0: every site page a new text), got {args.site_pages}")
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2

    from tqdm.auto import tqdm

    load_start = os.getloadavg()[0]
    index = _index(args)
    from plugin.versions import resolve_version

    arts = [json.loads(line) for line in open(resolve_version(index)[0] / "articles.jsonl", encoding="utf-8")]
    kb = [(a["id"], a["url"]) for a in arts if a.get("url") and " " not in a["id"] and " " not in a["url"]]
    redis = Redis(args.redis_url or os.environ.get("REDIS_URL"))
    prefix = f"wrk-{os.getpid()}:"
    work = Path(tempfile.mkdtemp(prefix="wrk-load-"))
    report: dict[str, Any] = {
        "workers": args.workers,
        "index": index.name,
        "articles": len(arts),
        "cpus": os.cpu_count(),
        "sockets": "one shared (uvicorn)" if args.shared_socket else "one per worker (SO_REUSEPORT)",
        "site_pages": {"pages": args.site_pages, "zipf": args.site_zipf} if args.site_pages else "all new texts",
    }
    site = None
    site_args: tuple[str, ...] = ()
    if args.site_pages:
        pages = site_pages(args.site_pages, args.seed)
        site = (pages, zipf_cum_weights(args.site_pages, args.site_zipf))
        (work / "site.txt").write_text("".join(f"{u}\t{t}\t{x}\n" for u, t, x in pages))
        site_args = (str(work / "site.txt"), f"{args.site_zipf:g}")
    service = None
    try:
        service = Service(
            index, args.workers, redis.url, prefix, serve_args=("--shared-socket",) if args.shared_socket else ()
        )
        visitors = asyncio.run(_seed_visitors(service.url, args.visitors, [u for _, u in kb], args.seed))
        fill = args.fill if args.fill > 3 else (190 if args.length_ratio else 0)
        # with --length-ratio only the first half is filled: the other half stays 3-page sessions to compare with
        filled = visitors[: len(visitors) // 2] if args.length_ratio else visitors
        if fill:
            t0 = time.monotonic()
            asyncio.run(_fill_visitors(service.url, filled, kb, fill, args.seed, site))
            report["fill"] = {"events": fill, "visitors": len(filled), "seconds": round(time.monotonic() - t0, 1)}
        if args.length_ratio:
            report["length"] = _length_ratio(
                service.url, work, visitors, len(filled), args.length_ratio, args.suggest_duration, args.threads
            )
        vfile, afile = work / "visitors.txt", work / "articles.txt"
        vfile.write_text("".join(f"{sid} {ip}\n" for sid, ip in visitors))
        afile.write_text("".join(f"{aid} {url}\n" for aid, url in kb))
        if not args.skip_mixed:
            load0 = os.getloadavg()[0]
            warm, run = _mixed(
                service,
                (str(vfile), str(afile)),
                args.rate,
                args.duration,
                args.connections,
                args.threads,
                args.steady,
                redis.proc.pid if redis.proc is not None else None,
                site_args,
            )
            report["mixed"] = {
                **run,
                "target_rate": args.rate,
                "load_before": load0,
                "load_after": os.getloadavg()[0],
                "warmup_rps": round(warm["rps"], 1),
                "warmup_errors": warm["errors"],
            }
        if not args.skip_suggest:
            rows = []
            for c in tqdm([int(x) for x in args.suggest_connections.split(",")], desc="suggest runs"):
                load0 = os.getloadavg()[0]
                r = _wrk(
                    "suggest.lua",
                    service.url,
                    c,
                    args.suggest_duration,
                    args.threads,
                    [str(vfile), "0", str(args.threads)],
                )
                r.update(load_before=load0, load_after=os.getloadavg()[0])
                rows.append(r)
            report["suggest"] = rows
            ok = [r for r in rows if r["p90_ms"] <= args.p90_ms and r["errors"] == 0]
            report["suggest_best_under_p90"] = max(ok, key=lambda r: r["rps"]) if ok else None
    finally:
        if service is not None:
            service.stop()
        redis.close(prefix)
        shutil.rmtree(work, ignore_errors=True)
    report["load_start"], report["load_end"] = load_start, os.getloadavg()[0]
    if args.json:  # first: the numbers are kept even if printing them fails
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    _print(report, args)
    return 1 if report.get("mixed", {}).get("errors", 0) else 0


def _print(report: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\nhardened app, `python -m plugin serve --workers {report['workers']} --redis-url …`, "
        f"{report['articles']} articles ({report['index']}), {report['cpus']} CPUs shared with wrk and Redis; "
        f"listening sockets: {report['sockets']}; "
        f"{args.visitors} signed visitors seeded with 3 KB page views"
        + (
            f", then {report['fill']['visitors']} of them filled to {report['fill']['events']} events each"
            if "fill" in report
            else ""
        )
        + (
            f"; site pages drawn from {args.site_pages} fixed pages (Zipf s = {args.site_zipf:g})"
            if args.site_pages
            else "; every site page a new random text"
        )
        + f"; wrk {args.threads} thread(s)\n"
    )
    m = report.get("mixed")
    if m:
        print(
            "| run | target req/s | achieved req/s | requests | errors | p50 ms | p90 ms | p99 ms | max ms "
            "| worker RSS MiB before → after | load avg (1 min) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        print(
            f"| mixed, {args.duration:.0f} s, {m['connections']} conns | {m['target_rate']:.0f} | {m['rps']:.1f} "
            f"| {m['requests']} | {m['errors']} | {m['p50_ms']:.2f} | {m['p90_ms']:.2f} | {m['p99_ms']:.2f} "
            f"| {m['max_ms']:.1f} | {m['rss_before_mib']} → {m['rss_after_mib']} "
            f"| {m['load_before']:.2f} → {m['load_after']:.2f} |"
        )
        if "steady" in m:
            st = m["steady"]
            print(
                f"\nbefore it, {st['seconds']:.0f} s of the same traffic: {st['requests']} requests, "
                f"{st['rps']:.1f} req/s, {st['errors']} errors, p99 {st['p99_ms']:.2f} ms, "
                f"{st['late']} sends late; CPU, cores: "
                + ", ".join(f"{name} {c:.2f}" for name, c in st["cpu"]["cores"].items())
            )
        print(
            f"\npacing (the measured run): {m['late']} of {m['paced']} sends late (every connection busy at the "
            f"scheduled time), by {m['lag_mean_ms']:.2f} ms on average, {m['lag_max_ms']:.2f} ms at most"
        )
        cpu = m["cpu"]
        print(
            f"CPU over the measured run, cores of {cpu['box_cores']}: "
            + ", ".join(f"{name} {c:.2f}" for name, c in cpu["cores"].items())
            + f", rest of the box {cpu['others']:.2f}; box busy {cpu['box_busy_cores']:.2f}"
        )
        print("\nworker RSS MiB every 5 s (seconds since the first run began, one column per worker):")
        for t, *rss in m["rss_samples_mib"]:
            print(f"  {t:7.1f} s  " + "  ".join(f"{r:7.1f}" for r in rss))
        print()
    ln = report.get("length")
    if ln:
        print(
            f"| GET suggestions, 1 conn, {ln['rounds']} × {ln['seconds']:.0f} s each, alternating | median req/s "
            "| median p50 ms | median p90 ms | errors |"
        )
        print("|---|---:|---:|---:|---:|")
        for kind, what in (("short", "3-page sessions"), ("long", f"sessions of {report['fill']['events']} events")):
            print(
                f"| {what} | {ln[kind + '_rps']:.0f} | {ln[kind + '_p50_ms']:.2f} | {ln[kind + '_p90_ms']:.2f} "
                f"| {ln[kind + '_errors']} |"
            )
        print(
            f"\nlong / 3-page p50, median of the rounds' ratios: **{ln['p50_ratio']:.2f}** "
            f"(per round: {ln['p50_ratios_per_round']})\n"
        )
    rows = report.get("suggest")
    if rows:
        print("| GET suggestions, closed loop | req/s | p50 ms | p90 ms | p99 ms | errors | load avg (1 min) |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for r in rows:
            print(
                f"| {r['connections']} conns, {args.suggest_duration:.0f} s | {r['rps']:.0f} | {r['p50_ms']:.2f} "
                f"| {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | {r['load_before']:.2f} → "
                f"{r['load_after']:.2f} |"
            )
        best = report.get("suggest_best_under_p90")
        print(
            f"\nhighest GET suggestions throughput with p90 <= {args.p90_ms} ms: "
            + (
                f"{best['rps']:.0f} req/s ({best['connections']} conns, p90 {best['p90_ms']:.2f} ms)"
                if best
                else "none of the runs"
            )
        )


if __name__ == "__main__":
    raise SystemExit(main())
