"""Redis stopped or silent under the production app: a clear, fast 503 `store_unavailable` with Retry-After on every
route that needs a session; the routes that need none keep answering; service comes back by itself with Redis.
(marker `redis`: each test starts its own redis-server, or a listener that never answers, and stops it.)"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Iterator

import pytest
from net_helpers import free_port, stop_processes
from redis_server import redis_binary, spawn_redis, wait_ready
from services import unavailable

from plugin import StoreUnavailableError
from plugin.redis_store import RedisGuard

pytestmark = pytest.mark.redis
redis = pytest.importorskip("redis")
pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

SECRET = "outage-test-secret-" + "x" * 24


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_guard_fails_fast_after_a_failure_and_lifts_on_the_first_answer():
    clock, calls = _Clock(), []
    guard = RedisGuard(2.0, clock=clock)
    down = [True]

    def call(x: int) -> int:
        calls.append(x)
        if down[0]:
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
        return x * 10

    with pytest.raises(StoreUnavailableError) as first:
        guard(call, 1)
    assert calls == [1] and guard.down and first.value.retry_after == 2
    assert isinstance(first.value.__cause__, redis.exceptions.ConnectionError)  # kept for the log, not the client
    clock.now += 1.5
    with pytest.raises(StoreUnavailableError) as fast:
        guard(call, 2)
    assert calls == [1] and fast.value.retry_after == 1  # no round trip while cooling down
    clock.now += 0.6
    with pytest.raises(StoreUnavailableError):
        guard(call, 3)  # the probe after the cooldown goes out, fails, and re-arms it
    assert calls == [1, 3]
    down[0] = False
    clock.now += 1.0
    with pytest.raises(StoreUnavailableError):
        guard(call, 4)  # still inside the re-armed cooldown
    clock.now += 1.1
    assert guard(call, 5) == 50 and not guard.down and guard(call, 6) == 60
    assert calls == [1, 3, 5, 6]


def test_the_guard_passes_other_errors_through_and_stays_up():
    guard = RedisGuard(1.0, clock=_Clock())

    def bad_command() -> None:
        raise redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    with pytest.raises(redis.exceptions.ResponseError):
        guard(bad_command)
    assert not guard.down
    with pytest.raises(KeyError):
        guard({}.__getitem__, "x")
    assert not guard.down and guard(lambda: 7) == 7


def test_a_timeout_is_unavailable_too(caplog):
    guard = RedisGuard(1.0, clock=_Clock())

    def slow() -> None:
        raise redis.exceptions.TimeoutError("Timeout reading from socket")

    with caplog.at_level("WARNING", logger="plugin.redis_store"), pytest.raises(StoreUnavailableError):
        guard(slow)
    with pytest.raises(StoreUnavailableError):
        guard(slow)
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["Redis unreachable"]  # once an outage


class _Redis:
    """A private redis-server that a test may stop and start again on the same port."""

    def __init__(self) -> None:
        binary = redis_binary()
        if binary is None:
            unavailable("no redis-server binary (apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="redis-outage-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None
        self.start()

    def start(self) -> None:
        self.proc = spawn_redis(self.binary, self.port, self.workdir)
        if not wait_ready(self.url):
            unavailable("redis-server did not start")

    def stop(self) -> None:
        stop_processes(self.proc, timeout=5)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def server() -> Iterator[_Redis]:
    r = _Redis()
    try:
        yield r
    finally:
        r.close()


def _app(tmp_path, monkeypatch, url: str) -> TestClient:
    """The production app as uvicorn's factory builds it (`app_from_env`), on this Redis."""
    from conftest import TOPIC_ARTICLES

    from adapters.http.hardened import app_from_env
    from plugin import HashingEncoder, SessionRecommender, SuggestSettings

    index_dir = tmp_path / "index"
    SessionRecommender.build(
        TOPIC_ARTICLES, encoder=HashingEncoder(256), progress=False, settings=SuggestSettings(min_score=-1.0)
    ).save(index_dir)
    for name, value in {
        "SESSION_SUGGEST_INDEX": str(index_dir),
        "SESSION_SUGGEST_SECRET": SECRET,
        "REDIS_URL": url,
        "SESSION_SUGGEST_GC_FREEZE": "0",
        "SESSION_SUGGEST_THREADS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    return TestClient(app_from_env(), raise_server_exceptions=False)


def _unavailable(r) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.json()["error"]["code"] == "store_unavailable"
    message = r.json()["error"]["message"]
    assert "session store" in message and "redis" not in message.lower() and "127.0.0.1" not in r.text  # what, not how
    assert int(r.headers["retry-after"]) >= 1


def test_redis_stopped_answers_503_fast_keeps_stateless_routes_and_recovers(tmp_path, monkeypatch, server):
    client = _app(tmp_path, monkeypatch, server.url)
    sid = client.post("/v1/sessions").json()["session_id"]
    view = {"kind": "page_view", "url": "https://kb.test/json"}
    assert client.post(f"/v1/sessions/{sid}/events", json=view).status_code == 200
    assert client.get(f"/v1/sessions/{sid}/suggestions").status_code == 200

    server.stop()
    start = time.monotonic()
    for r in (
        client.get(f"/v1/sessions/{sid}/suggestions"),
        client.post(f"/v1/sessions/{sid}/events", json=view),
        client.post(f"/v1/sessions/{sid}/events/batch", json={"events": [view], "suggest": 3}),
        client.post(f"/v1/sessions/{sid}/chat", json={"message": "how do I write json?"}),
        client.delete(f"/v1/sessions/{sid}"),
        client.get("/v1/health"),  # a probe: the worker cannot serve sessions, so it is not ready
    ):
        _unavailable(r)
    assert time.monotonic() - start < 5.0  # refused connections: no request waits for a timeout
    # what needs no session store still answers, rate-limited by this worker's own counters meanwhile
    new = client.post("/v1/sessions")
    assert new.status_code == 201 and new.json()["session_id"]
    page_only = client.post("/v1/suggestions", json={"url": "https://kb.test/json"})
    assert page_only.status_code == 200, page_only.text
    assert client.get("/static/widget.js").status_code == 200

    server.start()  # a fresh, empty Redis (persistence off): the session's events went with the old one
    deadline = time.monotonic() + 10
    while (r := client.get("/v1/health")).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.2)  # one probe a cooldown (1 s): back within about a second
    assert r.status_code == 200, r.text
    assert client.post(f"/v1/sessions/{sid}/events", json=view).status_code == 200
    assert client.get(f"/v1/sessions/{sid}/suggestions").status_code == 200
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    assert client.get(f"/v1/sessions/{sid}/suggestions").json()["error"]["code"] == "unknown_session"


def test_a_silent_redis_costs_one_timeout_then_fails_fast(tmp_path, monkeypatch):
    """A Redis that accepts connections and never answers (paused, a dropped route): the first request waits for
    the client's timeout, the next ones are refused at once while the guard cools down."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0?socket_timeout=0.3&socket_connect_timeout=0.3"
        client = _app(tmp_path, monkeypatch, url)
        sid = client.post("/v1/sessions").json()["session_id"]  # counted by the fallback: waits one timeout
        start = time.monotonic()
        for _ in range(5):
            _unavailable(client.get(f"/v1/sessions/{sid}/suggestions"))
        assert time.monotonic() - start < 0.3 * 3  # five requests, not five (or ten) timeouts


def test_an_erase_refused_while_redis_is_down_is_finished_by_its_retry(tmp_path, monkeypatch, server):
    """The widget's erase during an outage is a 503 and stores nothing half-done: retried after Redis is back it
    removes the session from Redis and refuses the id from then on."""
    client = _app(tmp_path, monkeypatch, server.url)
    sid = client.post("/v1/sessions").json()["session_id"]
    page = {"kind": "page_view", "url": "https://site.test/p", "title": "P", "text": "zebra quokka text"}
    assert client.post(f"/v1/sessions/{sid}/events", json=page).status_code == 200
    direct = redis.Redis.from_url(server.url)
    direct.config_set("save", "")
    snapshot = {k: direct.dump(k) for k in direct.scan_iter()}  # what the restarted Redis is given back
    assert any(b"zebra quokka" in v for v in snapshot.values() if v)
    direct.close()
    server.stop()
    _unavailable(client.delete(f"/v1/sessions/{sid}"))
    server.start()
    direct = redis.Redis.from_url(server.url)
    for key, value in snapshot.items():
        direct.restore(key, 0, value, replace=True)
    deadline = time.monotonic() + 10
    while (r := client.delete(f"/v1/sessions/{sid}")).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert r.status_code == 204, r.text
    left = [direct.dump(k) or b"" for k in direct.scan_iter()]
    assert not [v for v in left if b"zebra quokka" in v]
    assert client.get(f"/v1/sessions/{sid}/suggestions").json()["error"]["code"] == "unknown_session"
    direct.close()


def test_reading_a_page_by_its_hash_is_guarded_like_every_store_call(server):
    # track asks the store for a page's content by hash before embedding it (`shared_content`): with Redis down
    # that call must fail as StoreUnavailableError (a 503), not as redis-py's ConnectionError (a 500)
    from plugin.redis_store import RedisSessionStore

    store = RedisSessionStore.from_url(server.url, prefix="outage-shared:")
    assert store.shared_content("0" * 64) is None
    server.stop()
    with pytest.raises(StoreUnavailableError):
        store.shared_content("0" * 64)
