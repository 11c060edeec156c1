"""Several workers on their own SO_REUSEPORT sockets (adapters/http/workers.py): connections reach every worker,
a dead worker is replaced, a stop stops all, a taken port and an app that cannot start are clear failures."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from adapters.http.workers import _check_free, reuse_port_available
from tests.net_helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    not reuse_port_available(), reason="a socket per worker is Linux only (SO_REUSEPORT balancing)"
)


def _start(app: str, port: int, workers: int = 2) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from adapters.http.workers import serve; "
        f"sys.exit(serve({app!r}, host='127.0.0.1', port={port}, workers={workers}, factory={app.endswith('broken')},"
        " log_level='warning'))"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _pid(port: int, conn: http.client.HTTPConnection | None = None) -> int:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/")
    return int(c.getresponse().read())


def _wait_serving(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the server exited with {proc.returncode}"
        try:
            _pid(port)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the server did not answer in time")


def _pids_over_connections(port: int, n: int) -> set[int]:
    """Open n keep-alive connections at once (as a balancer's pool or wrk does) and ask each which pid serves it."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(n)]
    for c in conns:
        c.connect()
    try:
        with ThreadPoolExecutor(8) as pool:
            return set(pool.map(lambda c: _pid(port, c), conns))
    finally:
        for c in conns:
            c.close()


@pytest.fixture
def server() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = _start("tests.pid_app:app", port)
    try:
        _wait_serving(port, proc)
        deadline = time.monotonic() + 60  # both workers up: until then one socket takes every connection
        while len(_pids_over_connections(port, 32)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_connections_opened_at_once_reach_both_workers(server: tuple[subprocess.Popen[bytes], int]) -> None:
    # uvicorn's shared socket gave all 16 of a burst to one worker; with a socket each, the kernel hashes every
    # connection to one of the two: 32 landing on one has probability 2^-31
    _, port = server
    for _ in range(3):
        assert len(_pids_over_connections(port, 32)) == 2


def test_a_worker_that_dies_is_replaced_and_the_service_keeps_answering(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    _, port = server
    before = _pids_over_connections(port, 32)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    seen: set[int] = set()
    while time.monotonic() < deadline:
        try:
            seen = _pids_over_connections(port, 32)
        # connections queued at the dead worker's socket when it went are reset; one that meets the replacement's
        # socket between its bind and its listen is refused: both only while the worker is being replaced
        except (ConnectionResetError, ConnectionRefusedError):
            continue
        if len(seen) == 2 and victim not in seen:
            break
        time.sleep(0.2)
    assert victim not in seen and len(seen) == 2 and (seen & before) == before - {victim}
    for _ in range(3):  # and once replaced, nothing is lost: every connection is answered
        assert len(_pids_over_connections(port, 32)) == 2


def test_a_worker_killed_right_after_its_first_answer_counts_as_started() -> None:
    # a worker that has answered is one that started: the supervisor replaces it instead of taking it for a broken
    # app and stopping the service (a watcher thread that marked "started" up to 50 ms late stopped it under load)
    port = free_port()
    proc = _start("tests.pid_app:app", port)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline
            try:
                victim = _pid(port)
                break
            except OSError:
                time.sleep(0.01)
        os.kill(victim, signal.SIGKILL)
        seen: set[int] = set()
        while time.monotonic() < deadline and not (len(seen) == 2 and victim not in seen):
            assert proc.poll() is None, "the service stopped after a worker that had answered was killed"
            try:
                seen = _pids_over_connections(port, 32)
            except (ConnectionResetError, ConnectionRefusedError):
                continue
            time.sleep(0.2)
        assert victim not in seen and len(seen) == 2
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_sigterm_stops_every_worker(server: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = server
    workers = _pids_over_connections(port, 32)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    for pid in workers:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    with pytest.raises(OSError):
        _pid(port)


def test_a_taken_port_is_refused_before_any_worker_starts() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(OSError):
            _check_free("127.0.0.1", s.getsockname()[1])


def test_a_second_server_on_the_same_port_is_refused(server: tuple[subprocess.Popen[bytes], int]) -> None:
    # reuse-port sockets of one user would otherwise share the port silently with another deployment
    _, port = server
    with pytest.raises(OSError):
        _check_free("127.0.0.1", port)


def test_an_app_that_cannot_start_stops_the_server_with_status_1() -> None:
    port = free_port()
    proc = _start("tests.pid_app:broken", port)
    assert proc.wait(60) == 1  # not a restart loop


def test_shared_socket_is_uvicorns_own_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    # the escape hatch and the benchmark's "before": nothing of ours runs, uvicorn gets the workers
    import uvicorn

    from adapters.http import workers

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    monkeypatch.setattr(workers, "_check_free", lambda *a: pytest.fail("no reuse-port path expected"))
    assert workers.serve("tests.pid_app:app", host="127.0.0.1", port=1, workers=2, shared_socket=True) == 0
    assert calls == [{"app": "tests.pid_app:app", "host": "127.0.0.1", "port": 1, "workers": 2}]
