"""Scale-out: two uvicorn worker processes on 127.0.0.1 share sessions through Redis. A session created on one
worker is used on the other, events sent to both interleave into one consistent session, a retried event is
stored once, and an erase on one worker is seen by the other. (marker `redis`: needs a real redis-server)"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from net_helpers import uvicorn_processes
from redis_server import redis_url  # noqa: F401  (fixture)

pytestmark = [pytest.mark.redis, pytest.mark.slow]
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

REPO = Path(__file__).resolve().parents[1]
SECRET = "multiworker-test-secret-" + "x" * 24


@pytest.fixture(scope="module")
def workers(tmp_path_factory, redis_url):  # noqa: F811
    from conftest import TOPIC_ARTICLES

    from plugin import HashingEncoder, SessionRecommender, SuggestSettings

    index_dir = tmp_path_factory.mktemp("index")
    SessionRecommender.build(
        TOPIC_ARTICLES, encoder=HashingEncoder(256), progress=False, settings=SuggestSettings(min_score=-1.0)
    ).save(index_dir)
    prefix = f"test-mw-{uuid.uuid4().hex[:8]}:"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SESSION_SUGGEST_INDEX": str(index_dir),
        "SESSION_SUGGEST_SECRET": SECRET,
        "REDIS_URL": redis_url,
        "SESSION_SUGGEST_REDIS_PREFIX": prefix,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    try:
        with uvicorn_processes("adapters.http.hardened:app_from_env", 2, env=env, cwd=REPO) as urls:
            yield urls, prefix, redis_url
    finally:
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)


def test_one_session_stays_consistent_across_workers(workers):
    (a, b), prefix, url = workers
    with httpx.Client(timeout=10) as http:
        sid = http.post(a + "/v1/sessions").json()["session_id"]
        # created on A, used first on B: B accepts it by its signature, with no shared table of ids
        r = http.post(f"{b}/v1/sessions/{sid}/events", json={"kind": "article_open", "article_id": "ser-json"})
        assert r.status_code == 200 and r.json()["stored"], r.text

        def send(i: int, retry: bool = False) -> tuple[int, bool]:
            worker = (a, b)[(i + retry) % 2]  # a retry goes to the other worker
            body = {
                "kind": "page_view",
                "url": f"https://site.test/{i}",
                "title": f"Serialize page {i}",
                "event_id": f"evt-{i:06d}",
            }
            resp = http.post(f"{worker}/v1/sessions/{sid}/events", json=body)
            assert resp.status_code == 200, resp.text
            return i, resp.json()["stored"]

        with ThreadPoolExecutor(4) as pool:
            stored = dict(pool.map(send, range(40)))
            retried = dict(pool.map(lambda i: send(i, retry=True), range(40)))
        assert all(stored.values()) and not any(retried.values())

        sa = http.get(f"{a}/v1/sessions/{sid}/suggestions", params={"k": 3}).json()
        sb = http.get(f"{b}/v1/sessions/{sid}/suggestions", params={"k": 3}).json()
        assert sa == sb and sa["suggestions"]

        from plugin.redis_store import RedisSessionStore

        store = RedisSessionStore.from_url(url, prefix=prefix)
        events = store.read(sid)
        assert len(events) == 41 and len({e.event_id for e in events}) == 41
        assert events[0].article_id == "ser-json"

        assert http.delete(f"{b}/v1/sessions/{sid}").status_code == 204
        # erased on worker b, revoked in Redis: worker a refuses the id for reads and writes
        r = http.get(f"{a}/v1/sessions/{sid}/suggestions")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_session"
        r = http.post(f"{a}/v1/sessions/{sid}/events", json={"kind": "search", "query": "json"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_session"
