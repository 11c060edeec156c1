"""Several uvicorn workers that share the load: each accepts on its own `SO_REUSEPORT` socket.

uvicorn's own `--workers N` hands every worker the same listening socket. Whichever worker wakes first accepts
every connection waiting, so a burst of keep-alive connections (a load balancer's pool, wrk's 16) can land on one
worker while the other idles: measured with `bench/wrk_load.py`'s service, 16 connections opened at once went all to
one of two workers (`/v1/health`, per-worker CPU seconds 3.90 / 0.01), and a 15-minute mixed run was served by one
worker alone. With one socket per worker in a `SO_REUSEPORT` group the kernel spreads new connections over the
workers by a hash of their addresses, and a worker that dies takes its socket with it (its share goes to the
others until it is replaced). The price: connections already queued at a worker's socket when it crashes are reset
(with one shared socket another worker would have accepted them); a worker stopped by SIGTERM finishes its
requests first.

The supervision is the small part uvicorn does not offer for per-worker sockets: start N worker processes, replace
one that dies after it started serving, stop everything if one dies before (a broken app or index fails the same
way on every restart), and stop them all on SIGINT/SIGTERM. Off Linux (`reuse_port_available`), for one worker,
or with `shared_socket=True`, this is plain `uvicorn.run`.

Before the workers bind, the parent binds the address once *without* `SO_REUSEPORT`: that fails if anything holds
the port — including another copy of this server, whose reuse-port sockets would otherwise silently share its
traffic (Linux only groups sockets of the same user, but two deployments of one user would mix).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

__all__ = ["serve", "reuse_port_available"]

logger = logging.getLogger(__name__)

_BACKLOG = 2048  # uvicorn's default listen backlog


def reuse_port_available() -> bool:
    """Linux only: there SO_REUSEPORT spreads connections over the group; on macOS and the BSDs the option exists
    but one socket receives them all (FreeBSD balances with SO_REUSEPORT_LB, not used here)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _family(host: str, port: int) -> socket.AddressFamily:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]


def _check_free(host: str, port: int) -> None:
    """Raise OSError (EADDRINUSE) if anything is bound to host:port, reuse-port sockets included."""
    with socket.socket(_family(host, port), socket.SOCK_STREAM) as probe:
        probe.bind((host, port))


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host, port), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(_BACKLOG)
    return sock


def _worker(app: str, host: str, port: int, options: dict[str, Any], started: Any) -> None:  # pragma: no cover
    import uvicorn  # (runs in the worker process)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            # marked in the same step of the event loop that finished the start-up: no request is answered before
            # the parent knows this worker serves (a watcher thread polling `started` left a window in which a
            # worker that had answered and then died counted as one that never started, and stopped the service)
            if self.started:
                started.set()

    sock = _listen(host, port)
    Server(uvicorn.Config(app, host=host, port=port, **options)).run(sockets=[sock])


class _Worker:
    def __init__(self, process: BaseProcess, started: Any) -> None:
        self.process, self.started = process, started


class _Supervisor:
    """N worker processes, each replaced when it dies after it started serving; all stopped when `stop` is set,
    or when a worker dies before it started (a broken app or index fails the same way on every restart)."""

    def __init__(self, start: Callable[[], _Worker], workers: int, grace: float = 10.0) -> None:
        self.start = start
        self.workers = workers
        self.grace = grace
        self.stop = threading.Event()
        self.failed = False

    def run(self) -> None:
        procs = [self.start() for _ in range(self.workers)]
        try:
            while not self.stop.wait(0.5):
                for i, w in enumerate(procs):
                    p = w.process
                    if p.is_alive():
                        continue
                    if not w.started.is_set():
                        logger.error(
                            "worker %s exited (status %s) before it started serving; stopping", p.pid, p.exitcode
                        )
                        self.failed = True
                        self.stop.set()
                        break
                    logger.warning("worker %s died (status %s); starting another", p.pid, p.exitcode)
                    procs[i] = self.start()
        finally:
            for w in procs:
                if w.process.is_alive():
                    w.process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
            deadline = time.monotonic() + self.grace
            for w in procs:
                w.process.join(max(0.0, deadline - time.monotonic()))
                if w.process.is_alive():
                    w.process.kill()
                    w.process.join()


def serve(app: str, *, host: str, port: int, workers: int, shared_socket: bool = False, **options: Any) -> int:
    """Serve the ASGI app import string `app` with `workers` processes; `options` are uvicorn.Config's
    (factory, log_level, ...). `shared_socket`: uvicorn's own workers on one socket (the comparison, or a
    platform where reuse-port misbehaves). Returns the exit status: 0 on a clean stop, 1 if a worker could not
    start."""
    import uvicorn

    if workers <= 1 or shared_socket or not reuse_port_available():
        uvicorn.run(app, host=host, port=port, workers=workers, **options)
        return 0
    _check_free(host, port)
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter per worker: no forked threads or sockets

    def start() -> _Worker:
        started = ctx.Event()
        p = ctx.Process(target=_worker, args=(app, host, port, options, started), daemon=False)
        p.start()
        return _Worker(p, started)

    sup = _Supervisor(start, workers)
    previous = {sig: signal.signal(sig, lambda *_: sup.stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sup.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if sup.failed else 0
