"""The Redis store against the SessionStore contract, on a real local redis-server (marker `redis`)."""

from __future__ import annotations

import time

import pytest
from redis_server import redis_prefix, redis_url  # noqa: F401  (fixtures)
from store_contract import SessionStoreContract, view

from plugin import SessionSettings, StoreUnavailableError

pytestmark = pytest.mark.redis
redis = pytest.importorskip("redis")


class TestRedisSessionStore(SessionStoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, redis_url, redis_prefix):  # noqa: F811
        self.client = redis.Redis.from_url(redis_url)
        self.prefix = redis_prefix
        yield
        self.client.close()

    def make_store(self, settings, clock):
        from plugin.redis_store import RedisSessionStore

        return RedisSessionStore(self.client, settings, prefix=self.prefix, clock=clock)


def test_idle_session_keys_leave_redis_by_themselves(redis_url, redis_prefix):  # noqa: F811
    """Physical expiry: with the real clock, an idle session's keys are gone without any further access."""
    from plugin.redis_store import RedisSessionStore
    from plugin.session_store import id_digest

    client = redis.Redis.from_url(redis_url)
    store = RedisSessionStore(client, SessionSettings(ttl_seconds=0.3), prefix=redis_prefix)
    store.append(view("s", 1))
    s = id_digest("s")  # keys name a session by the digest of its id (which is a bearer token)
    assert client.exists(f"{redis_prefix}ev:{s}")
    time.sleep(0.6)
    assert not client.exists(f"{redis_prefix}ev:{s}", f"{redis_prefix}ids:{s}", f"{redis_prefix}meta:{s}")
    assert store.read("s") == [] and len(store) == 0


def test_two_clients_share_one_session(redis_url, redis_prefix):  # noqa: F811
    """What several workers see: appends through one connection pool are read through another."""
    from plugin.redis_store import RedisSessionStore

    a = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    b = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    e1, e2 = view("s", 1), view("s", 2)
    assert a.append(e1) and b.append(e2)
    assert not b.append(e1)
    assert a.read("s") == b.read("s") == [e1, e2]
    assert b.erase("s") and not a.exists("s")


def test_plugin_imports_without_touching_redis():
    import subprocess
    import sys

    code = "import sys, plugin, plugin.redis_store; assert 'redis' not in sys.modules, 'redis imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_erase_leaves_no_key_of_the_session_or_its_pages(redis_url, redis_prefix):  # noqa: F811
    """ "Erase means gone everywhere": after erasing every session, only the prefix's empty bookkeeping is left."""
    import numpy as np

    from plugin import make_event
    from plugin.redis_store import RedisSessionStore
    from plugin.session_store import PageContent

    client = redis.Redis.from_url(redis_url)
    store = RedisSessionStore(client, SessionSettings(dedupe_window_seconds=0), prefix=redis_prefix)
    for sid in ("a", "b"):
        for i in range(3):
            e = make_event(sid, "page_view", url=f"https://site.test/{i}", text=f"page {i} text", ts=float(i))
            store.append(e.slim(), PageContent(f"page {i}", np.ones(4, np.float32), terms=f"page {i} text"))
        store.append(make_event(sid, "suggestion_impression", article_id="x", ts=9.0))
    pages = [k for k in client.scan_iter(match=redis_prefix + "pc:*")]
    assert pages and all(client.hget(k, "w") for k in pages)  # the terms live in the page's own key
    assert store.erase("a") and store.erase("b")
    left = {k.decode()[len(redis_prefix) :] for k in client.scan_iter(match=redis_prefix + "*")}
    assert left <= {"seq"}, left


@pytest.mark.parametrize("url", ["redis://:pw2#x@cache:6379/0", "redis://:pw/2@cache:6379", "redis://:pw?2@c:1"])
def test_a_redis_url_that_does_not_parse_is_a_config_error_that_quotes_no_password(url):
    """docs/security.md, round 2: a password with '#', '/' or '?' unencoded ends the host early, and redis-py's
    "Port could not be cast to integer value as 'pw2'" put it in the start-up traceback."""
    from plugin import ConfigError
    from plugin.redis_store import RedisSessionStore

    with pytest.raises(ConfigError, match="percent-encode") as caught:
        RedisSessionStore.from_url(url)
    assert "pw" not in str(caught.value) and caught.value.__suppress_context__


def test_a_redis_that_stops_answering_fails_a_read_instead_of_holding_it() -> None:
    """redis-py waits forever for a reply by default: a Redis that accepts connections and then says nothing (paused,
    a dropped route) held every request that read a session, and on the event loop the whole worker."""
    import socket

    from plugin.redis_store import REDIS_TIMEOUT_SECONDS, RedisSessionStore

    with socket.socket() as silent:  # connections complete in the kernel's backlog; nothing is ever answered
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        default = RedisSessionStore.from_url(f"redis://127.0.0.1:{port}/0")
        kwargs = default.client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == REDIS_TIMEOUT_SECONDS
        store = RedisSessionStore.from_url(f"redis://127.0.0.1:{port}/0?socket_timeout=0.2")  # the url's wins
        start = time.monotonic()
        with pytest.raises(StoreUnavailableError) as caught:  # the HTTP service's 503 store_unavailable
            store.read("s")
        assert isinstance(caught.value.__cause__, redis.exceptions.TimeoutError)
        assert time.monotonic() - start < 2.0
