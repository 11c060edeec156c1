"""Do all workers get the traffic? `python -m plugin serve --workers 2` (Redis, the demo index) with a socket per
worker and with uvicorn's one shared socket (`--shared-socket`), one after the other in one run: wrk on
`/v1/health` for --seconds per connection count, and each worker's CPU seconds over that run read from /proc.

    python bench/worker_balance.py [--connections 1,2,4,8,16] [--seconds 5]

A worker with ~0 CPU seconds got no connection. BENCHMARKS.md, "wrk against the production configuration", round 4.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from soak import Redis  # noqa: E402
from wrk_load import Service, _index  # noqa: E402


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", default="1,2,4,8,16")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--cache", default=None, help="where the demo index is built/cached (default: a temp dir)")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    index = _index(argparse.Namespace(index=None, cache=args.cache, encoder="hashing:384"))
    redis = Redis(os.environ.get("REDIS_URL"))
    print("| sockets | connections | req/s | CPU s, worker 1 | CPU s, worker 2 |\n|---|---:|---:|---:|---:|")
    try:
        for shared in (True, False):
            prefix = f"balance-{os.getpid()}-{int(shared)}:"
            svc = Service(index, 2, redis.url, prefix, serve_args=("--shared-socket",) if shared else ())
            try:
                for c in (int(x) for x in args.connections.split(",")):
                    before = {pid: _cpu_seconds(pid) for pid in svc.workers()}
                    out = subprocess.run(
                        ["wrk", "-t1", f"-c{c}", f"-d{args.seconds:g}s", svc.url + "/v1/health"],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
                    cpu = [round(_cpu_seconds(pid) - t, 2) for pid, t in before.items()]
                    name = "one shared (uvicorn)" if shared else "one per worker"
                    print(f"| {name} | {c} | {rps:.0f} | " + " | ".join(f"{x:.2f}" for x in cpu) + " |", flush=True)
            finally:
                svc.stop()
    finally:
        redis.close("balance-")  # every run's keys, and the private redis-server
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
