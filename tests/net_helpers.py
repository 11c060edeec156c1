"""Network helpers shared by tests that start real servers (uvicorn, redis-server) on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["free_port", "uvicorn_processes"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it; a server started next will almost surely get it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextmanager
def uvicorn_processes(factory: str, n: int, *, env: Mapping[str, str], cwd: Path, timeout: float = 90) -> Iterator[list[str]]:
    """n separate uvicorn processes serving the app factory `factory` on free ports; yields their base urls once
    each answers GET /v1/health, and stops them afterwards."""
    import httpx
    import pytest

    ports = [free_port() for _ in range(n)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            cwd=cwd, env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        deadline = time.monotonic() + timeout
        for url, proc in zip(urls, procs):
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"worker exited: {proc.stderr.read().decode()[-2000:]}")
                try:
                    if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"workers did not start within {timeout} s")
                time.sleep(0.2)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
