"""Spec = server: the hardened app, served by uvicorn, against its own OpenAPI document with schemathesis's
CLI and every check it has (`--checks all`: status codes, content types, headers and response schemas
conform; schema-valid input is accepted and invalid input rejected; no 5xx; …). The target is 0 failures.

    python bench/spec_conformance.py --examples 100       # the benchmark run (>= 1,000 cases in all)
    python bench/spec_conformance.py --examples 10        # a bounded run (what CI does via tests/test_spec.py)

Prints schemathesis's own summary and exits with its status. Session paths get a live, signed session id
through the schema's links (stateful phase) as well as generated ids (all of which must be refused).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


def serve(port: int):
    """The fuzz benchmark's app (hashing encoder, limits out of the way) on 127.0.0.1:port in a thread."""
    import uvicorn
    from fuzz import build_app

    server = uvicorn.Server(uvicorn.Config(build_app(), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return server, thread


def run(examples: int, seed: int, extra: list[str]) -> tuple[int, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = serve(port)
    try:
        cmd = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"http://127.0.0.1:{port}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(examples),
            "--seed",
            str(seed),
            "--generation-deterministic",
            "--workers",
            "1",
            "--no-color",
            *extra,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        return proc.returncode, proc.stdout + proc.stderr
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=100, help="schemathesis --max-examples per operation and phase")
    ap.add_argument("--seed", type=int, default=0)
    args, extra = ap.parse_known_args(argv)
    code, out = run(args.examples, args.seed, extra)
    print(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
