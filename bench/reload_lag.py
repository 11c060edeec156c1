"""Hot reload under traffic: N uvicorn workers serve an index while new versions are committed to it; how long
until every worker serves each new version, and how many requests failed meanwhile.

    python bench/reload_lag.py --index DIR [--workers 2] [--swaps 5] [--clients 4]

DIR is any saved index (flat or versioned); it is copied into a temporary folder first and never changed. Each
swap loads the current version, removes or restores one article (no text is encoded) and saves: a new version,
exactly as `python -m plugin index` commits one. Clients meanwhile post article opens and ask for suggestions
(plain app, in-memory sessions, each client on one worker). Lag = from `save` returning until every worker's
GET /v1/health reports the new version (polled every 20 ms).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plugin import SessionRecommender  # noqa: E402
from plugin.versions import is_index_dir, resolve_version  # noqa: E402


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--swaps", type=int, default=5)
    p.add_argument("--clients", type=int, default=4)
    args = p.parse_args()
    if not is_index_dir(args.index):
        p.error(f"no index in {args.index}")
    with tempfile.TemporaryDirectory(prefix="reload-lag-") as tmp:
        d = Path(tmp) / "ix"
        shutil.copytree(resolve_version(args.index)[0], d / "seed")
        rec = SessionRecommender.load(d / "seed")
        rec.save(d)
        ids = rec.index.ids()
        env = {**os.environ, "PYTHONPATH": str(REPO), "SESSION_SUGGEST_INDEX": str(d), "OMP_NUM_THREADS": "1"}
        ports = [_free_port() for _ in range(args.workers)]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "adapters.http.app:app_from_env",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                cwd=REPO,
                env=env,
                stderr=subprocess.DEVNULL,
            )
            for port in ports
        ]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        statuses: Counter[int] = Counter()
        stop = threading.Event()
        threads: list[threading.Thread] = []
        try:
            for url in urls:
                while True:
                    try:
                        if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.2)

            def client(url: str) -> None:
                with httpx.Client(base_url=url, timeout=30) as http:
                    i = 0
                    while not stop.is_set():
                        if i % 5 == 0:
                            sid = http.post("/v1/sessions").json()["session_id"]
                        r = http.post(
                            f"/v1/sessions/{sid}/events",
                            json={"kind": "article_open", "article_id": ids[i * 7 % len(ids)]},
                        )
                        statuses[r.status_code] += 1
                        statuses[http.get(f"/v1/sessions/{sid}/suggestions", params={"k": 3}).status_code] += 1
                        i += 1

            threads += [threading.Thread(target=client, args=(urls[c % len(urls)],)) for c in range(args.clients)]
            for t in threads:
                t.start()
            lags = []
            removed = None
            for _ in range(args.swaps):
                time.sleep(1.0)
                rec = SessionRecommender.load(d)
                if removed is None:
                    removed = rec.kb.get(ids[-1])
                    rec.remove_articles([removed.id])
                else:
                    rec.upsert_articles([removed])  # its text is in the embedding cache: nothing is encoded
                    removed = None
                folder = rec.save(d)
                start = time.perf_counter()
                while {httpx.get(u + "/v1/health", timeout=30).json()["index_version"] for u in urls} != {folder.name}:
                    time.sleep(0.02)
                lags.append(time.perf_counter() - start)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join()
            for proc in procs:
                proc.terminate()
                proc.wait()
    failed = sum(n for code, n in statuses.items() if code != 200)
    print(f"{args.workers} workers, {args.clients} clients, {len(ids)} articles, {args.swaps} new versions")
    print(
        f"lag until every worker served the new version: median {statistics.median(lags):.2f} s, "
        f"max {max(lags):.2f} s ({', '.join(f'{x:.2f}' for x in lags)})"
    )
    print(f"requests: {sum(statuses.values())}, failed: {failed} ({dict(statuses)})")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
