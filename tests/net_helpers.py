"""Network helpers shared by tests that start real servers (uvicorn, redis-server) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = [
    "free_port",
    "uvicorn_in_thread",
    "files_in_thread",
    "uvicorn_processes",
    "wait_until_healthy",
    "stop_processes",
]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it; a server started next will almost surely get it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def uvicorn_in_thread(app: Any, port: int | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a background thread; yields its base url, stops it on exit."""
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def files_in_thread(directory: str | os.PathLike[str], port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve a folder of static files (a plain web site) in a background thread; yields its base url."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), functools.partial(Quiet, directory=os.fspath(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def uvicorn_processes(
    factory: str, n: int, *, env: Mapping[str, str], cwd: Path, timeout: float = 90
) -> Iterator[list[str]]:
    """n separate uvicorn processes serving the app factory `factory` on free ports; yields their base urls once
    each answers GET /v1/health, and stops them afterwards."""
    ports = [free_port() for _ in range(n)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                factory,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for url, proc in zip(urls, procs):
            wait_until_healthy(url, proc, "worker", timeout)
        yield urls
    finally:
        stop_processes(*procs)


def stop_processes(*procs: subprocess.Popen, timeout: float = 10.0) -> None:
    """Ask each process to end (SIGTERM), wait for them, and kill those that take longer than `timeout`."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_until_healthy(url: str, proc, what: str, timeout: float = 90.0) -> None:
    """Poll `url`/v1/health until it answers 200; fail the test if `proc` exits or the time runs out."""
    import httpx
    import pytest

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not start within {timeout:g} s")
        time.sleep(0.2)
