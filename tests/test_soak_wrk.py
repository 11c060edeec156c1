"""The short soak: the production configuration (hardened app via `python -m plugin serve`, Redis, 2 workers)
under 10 s of mixed wrk traffic (bench/wrk/mixed.lua), a fifth of the visitors' sessions full, must answer every
request with a 2xx. The full-length run
with its numbers is `python bench/wrk_load.py` (BENCHMARKS.md, "Production load (wrk)")."""

from __future__ import annotations

import asyncio
import shutil
import uuid

import pytest
from redis_server import redis_url  # noqa: F401  (fixture)
from services import unavailable

pytestmark = [pytest.mark.redis, pytest.mark.slow]
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def test_short_soak_under_wrk_answers_every_request(redis_url, tmp_path):  # noqa: F811
    if shutil.which("wrk") is None:
        unavailable("wrk is not installed (apt-get install wrk): the short soak drives the service with it")
    import redis

    from bench.soak import build_index
    from bench.wrk_load import Service, _fill_visitors, _seed_visitors, _wrk, wrk_rate_args

    build_index(tmp_path / "index", 200)
    prefix = f"soak-ci-{uuid.uuid4().hex[:8]}:"
    service = Service(tmp_path / "index", 2, redis_url, prefix)
    try:
        kb = [(f"a{i}", f"https://kb.test/{i}") for i in range(200)]
        visitors = asyncio.run(_seed_visitors(service.url, 100, [url for _, url in kb], 0))
        # a fifth of them at their bounds (max_events 200): every append there also forgets the oldest event
        asyncio.run(_fill_visitors(service.url, visitors[:20], kb, 210, 0))
        vfile, afile = tmp_path / "visitors.txt", tmp_path / "articles.txt"
        vfile.write_text("".join(f"{sid} {ip}\n" for sid, ip in visitors))
        afile.write_text("".join(f"a{i} https://kb.test/{i}\n" for i in range(200)))
        # closed loop (rate 0): every connection sends again as soon as its answer came back
        result = _wrk("mixed.lua", service.url, 4, 10, 1, [str(vfile), str(afile), *wrk_rate_args(0, 1)])
    finally:
        service.stop()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    assert result["requests"] >= 200, result  # it really ran: ~4 connections for 10 s
    assert result["errors"] == 0, result  # non-2xx answers and socket errors alike
