"""A request's client and session counters are counted together (one Redis round trip) with the same rules
as one `hit` per key: in order, stopping at the first counter over its limit."""

from __future__ import annotations

import pytest
from redis_server import redis_prefix, redis_url  # noqa: F401  (fixtures)

pytest.importorskip("fastapi")
from adapters.http.limits import InMemoryRateLimiter, hit_all  # noqa: E402


class _OneAtATime:
    """A limiter with only `hit` (the protocol's minimum): hit_all falls back to one call per key."""

    def __init__(self) -> None:
        self.inner = InMemoryRateLimiter()

    def hit(self, key, limit, window):
        return self.inner.hit(key, limit, window)

    def forget(self, key):
        self.inner.forget(key)


def _limiters(redis_url, redis_prefix):  # noqa: F811
    redis = pytest.importorskip("redis")
    from adapters.http.limits import RedisRateLimiter

    return [
        InMemoryRateLimiter(),
        _OneAtATime(),
        RedisRateLimiter(redis.Redis.from_url(redis_url), prefix=redis_prefix + "rl:"),
    ]


@pytest.mark.redis
def test_counts_in_order_and_stops_at_the_first_over_its_limit(redis_url, redis_prefix):  # noqa: F811
    for limiter in _limiters(redis_url, redis_prefix):
        checks = [("client:1", 2), ("session:s", 3)]
        assert hit_all(limiter, checks, 60) is None
        assert hit_all(limiter, checks, 60) is None
        over = hit_all(limiter, checks, 60)  # the client's third: over, and the session is not counted
        assert over is not None and over[0] == 0 and 0 < over[1] <= 60
        assert hit_all(limiter, [("session:s", 3)], 60) is None  # the session's third
        over = hit_all(limiter, [("client:2", 5), ("session:s", 3)], 60)
        assert over is not None and over[0] == 1, type(limiter).__name__
