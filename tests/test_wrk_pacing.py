"""The load generator's pacing (bench/wrk/common.lua): wrk sends on a fixed schedule at the asked rate whatever the
service's latency, and counts the sends it could not make on time because every connection was busy. Driven
against a stub HTTP server whose latency the test sets, so the only thing under test is the generator. The old
fixed per-connection delay offered connections / (delay + latency) requests a second: calibrated at one latency,
it fell short at a higher one (BENCHMARKS.md, production load, round 9).

The rates are kept far below what wrk and the stub can do on a loaded two-core box, and the bounds are wide; the
assertions are about the generator's arithmetic (rate independent of latency; capacity = connections / latency),
not about anyone's speed."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import unavailable

from bench.wrk_load import (
    CpuWindow,
    _fill_events,
    _wrk,
    site_pages,
    wrk_rate_args,
    zipf_cum_weights,
)

pytestmark = [pytest.mark.slow]


class _StubServer:
    """HTTP/1.1 keep-alive server on a free loopback port that answers every request with 200 after `latency_s`."""

    def __init__(self) -> None:
        self.latency_s = 0.0
        self.requests = 0
        self.bodies: list[bytes] = []  # of the requests that had one, in arrival order
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    if length:
                        self.bodies.append(await reader.readexactly(length))
                    self.requests += 1
                    await asyncio.sleep(self.latency_s)
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        server = self.loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        ready.set()
        self.loop.run_forever()
        server.close()
        pending = asyncio.all_tasks(self.loop)  # wrk's connections, still open: end their handlers quietly
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def stub() -> Iterator[_StubServer]:
    server = _StubServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def visitors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wrk") / "visitors.txt"
    path.write_text("".join(f"s{i} 10.0.0.{i}\n" for i in range(20)))
    return path


def _paced(stub: _StubServer, visitors: Path, latency_s: float, rate: float, connections: int) -> dict:
    if shutil.which("wrk") is None:
        unavailable("wrk is not installed (apt-get install wrk): the pacing is wrk's Lua")
    stub.latency_s = latency_s
    return _wrk("suggest.lua", stub.url, connections, 4, 1, [str(visitors), *wrk_rate_args(rate, 1)])


@pytest.mark.parametrize("latency_ms", [1, 15])
def test_the_offered_rate_does_not_depend_on_the_latency(stub, visitors, latency_ms):
    # 4 connections at 15 ms can carry ~260 req/s: 120 leaves every send room to go out on time. A fixed delay
    # calibrated at 1 ms (4 / 120 s - 1 ms = 32.3 ms) would offer 4 / 47.3 ms = 85 req/s at 15 ms.
    r = _paced(stub, visitors, latency_ms / 1000, 120, 4)
    assert r["errors"] == 0, r
    assert 0.9 * 120 <= r["rps"] <= 1.1 * 120, r
    assert r["paced"] >= r["requests"] - 4, r  # every request after each connection's first went through the pacer
    assert r["late"] <= 0.1 * r["paced"], r


def test_a_rate_beyond_the_connections_is_capped_and_counted_late(stub, visitors):
    # 2 connections at 20 ms each carry at most 100 req/s: asked for 300, the schedule falls behind and says so
    r = _paced(stub, visitors, 0.020, 300, 2)
    assert r["errors"] == 0, r
    assert r["rps"] <= 100, r
    assert r["late"] >= 0.5 * r["paced"], r
    assert r["lag_max_ms"] > 100, r  # four seconds at a third of the schedule leave it far behind by the end


def test_rate_zero_is_a_closed_loop(stub, visitors):
    # no schedule: each connection sends again as soon as its answer came back, ~1 / latency per connection
    r = _paced(stub, visitors, 0.010, 0, 2)
    assert r["errors"] == 0, r
    assert r["late"] == 0, r
    assert r["rps"] > 60, r  # 2 connections at >= 10 ms: at most 200 req/s, well above any paced rate above


def test_rate_arguments():
    assert wrk_rate_args(300, 2) == ["300", "2"]
    assert wrk_rate_args(0, 1) == ["0", "1"]
    with pytest.raises(ValueError, match=">= 0"):
        wrk_rate_args(-1, 1)


def test_cpu_window_counts_this_process():
    window = CpuWindow({"me": os.getpid()})
    start = time.process_time()
    while time.process_time() - start < 0.3:  # 0.3 CPU seconds of this process
        pass
    cpu = window.stop({"elsewhere": 0.0})
    used = cpu["cores"]["me"] * cpu["seconds"]
    assert 0.25 <= used <= 0.3 + 0.1 * cpu["seconds"] + 0.05, cpu  # clock ticks are 10 ms
    assert cpu["cores"]["elsewhere"] == 0.0
    assert cpu["box_busy_cores"] >= cpu["cores"]["me"] - 0.05, cpu


def _site_views(bodies: list[bytes]) -> list[dict]:
    """The page views of site pages (off the KB) in mixed.lua's request bodies, single and batched."""
    out = []
    for raw in bodies:
        body = json.loads(raw)
        for e in body.get("events", [body]):
            if e.get("kind") == "page_view" and e.get("url", "").startswith("https://site.test/"):
                out.append(e)
    return out


def _mixed_bodies(stub: _StubServer, tmp_path: Path, visitors: Path, *site_args: str) -> list[bytes]:
    if shutil.which("wrk") is None:
        unavailable("wrk is not installed (apt-get install wrk): the mix is wrk's Lua")
    articles = tmp_path / "articles.txt"
    articles.write_text("".join(f"a{i} https://kb.test/a{i}\n" for i in range(5)))
    stub.latency_s = 0.001
    stub.bodies.clear()
    r = _wrk("mixed.lua", stub.url, 2, 2, 1, [str(visitors), str(articles), *wrk_rate_args(0, 1), *site_args])
    assert r["errors"] == 0, r
    return list(stub.bodies)


def test_mixed_site_pages_come_from_the_fixed_pages_by_popularity(stub, visitors, tmp_path):
    pages = site_pages(3)
    site = tmp_path / "site.txt"
    site.write_text("".join(f"{u}\t{t}\t{x}\n" for u, t, x in pages))
    views = _site_views(_mixed_bodies(stub, tmp_path, visitors, str(site), "1"))
    assert len(views) >= 60, len(views)  # ~17.5 % of a closed-loop mix at 1 ms: hundreds
    assert {(v["url"], v["title"], v["text"]) for v in views} <= set(pages)  # exactly the file's pages
    counts = [sum(v["url"] == u for v in views) for u, _, _ in pages]
    # s = 1 over 3 ranks: 55 %, 27 %, 18 %
    assert counts[0] > counts[2] and counts[0] > 0.4 * len(views), counts


def test_mixed_site_pages_are_new_texts_without_the_file(stub, visitors, tmp_path):
    views = _site_views(_mixed_bodies(stub, tmp_path, visitors))
    assert len(views) >= 60, len(views)
    assert len({v["text"] for v in views}) > 0.9 * len(views)  # the worst case: (almost) every one a new text


def test_site_pages_are_fixed_and_the_fill_draws_from_them():
    pages = site_pages(50, seed=3)
    assert pages == site_pages(50, seed=3) and pages != site_pages(50, seed=4)
    assert len({u for u, _, _ in pages}) == 50 and all(1000 <= len(x) <= 2200 for _, _, x in pages)  # ~1.5 kB
    cum = zipf_cum_weights(50, 0.8)
    assert cum[0] == 1.0 and abs(cum[-1] - sum(r**-0.8 for r in range(1, 51))) < 1e-9
    kb = [("a1", "https://kb.test/a1")]
    events = _fill_events(random.Random(0), kb, 2000, (pages, cum))
    site = [e for e in events if e.get("url", "").startswith("https://site.test/")]
    assert site and {(e["url"], e["title"], e["text"]) for e in site} <= set(pages)
    first = sum(e["url"] == pages[0][0] for e in site)
    last = sum(e["url"] == pages[-1][0] for e in site)
    assert first > 3 * max(last, 1)  # rank 1 weighs 50^0.8 ≈ 23 times rank 50
    with pytest.raises(ValueError, match="n >= 1"):
        zipf_cum_weights(0, 0.8)
