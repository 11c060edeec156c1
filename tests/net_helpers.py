"""Network helpers shared by tests that start real servers (uvicorn, redis-server) on 127.0.0.1."""

from __future__ import annotations

import socket

__all__ = ["free_port", "wait_until_healthy"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it; a server started next will almost surely get it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until_healthy(url: str, proc, what: str, timeout: float = 90.0) -> None:
    """Poll `url`/v1/health until it answers 200; fail the test if `proc` exits or the time runs out."""
    import time

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
