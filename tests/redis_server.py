"""A Redis server for the tests marked `redis`: $REDIS_URL when set (CI starts one), else a private
`redis-server` on a free 127.0.0.1 port with persistence off; the tests skip only if neither is possible."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest
from net_helpers import free_port, stop_processes
from services import unavailable


def wait_ready(url: str, timeout: float = 10.0) -> bool:
    import redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if redis.Redis.from_url(url, socket_timeout=1).ping():
                return True
        except redis.exceptions.RedisError:
            time.sleep(0.05)
    return False


def redis_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )


def spawn_redis(binary: str, port: int, workdir: str) -> subprocess.Popen[bytes]:
    """A private redis-server on 127.0.0.1:port, persistence off (ready once `wait_ready` says so)."""
    args = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", workdir]
    return subprocess.Popen(
        [binary, *args, "--protected-mode", "yes"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    try:
        import redis  # noqa: F401
    except ImportError:
        unavailable("redis-py is not installed (pip install -e '.[dev]')")
    url = os.environ.get("REDIS_URL")
    if url:
        if not wait_ready(url, 5.0):
            unavailable(f"REDIS_URL={url} does not answer")
        yield url
        return
    binary = redis_binary()
    if binary is None:
        unavailable("no REDIS_URL and no redis-server binary (apt-get install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="redis-test-")
    proc = spawn_redis(binary, port, workdir)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        if not wait_ready(url):
            unavailable("redis-server did not start")
        yield url
    finally:
        stop_processes(proc, timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix private to one test; its keys are deleted afterwards (the server may be shared)."""
    import redis

    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
