"""A session store on Redis, so several stateless workers share one view of every session.

Same protocol and semantics as `InMemorySessionStore` (idle TTL, max events with drop_oldest/reject,
dedupe by event id and of quick reloads, LRU cap on live sessions); every mutation is one Lua script,
so concurrent workers never interleave half an append.

Layout, per key prefix `P` and session id `S`:

    P ev:S      list of JSON events, oldest first
    P ids:S     set of the event ids in that list (dedupe)
    P meta:S    hash: last_seen, and kind/key/ts of the last event (reload dedupe)
    P seen      sorted set S -> last_seen (sweeps expired sessions, counts live ones)
    P lru       sorted set S -> access sequence number (evicts the least recently used past max_sessions)
    P seq       the access counter

Expiry is enforced twice: logically against `clock()` on every access (so a test clock works and workers on
one host agree), and physically by PEXPIRE on the per-session keys (so an idle session's data leaves Redis
even if no worker ever touches it again). The two sorted sets are global to the prefix, so this store wants
a single Redis primary (optionally with replicas/Sentinel), not Redis Cluster.

redis-py is imported lazily (only by `from_url`): `import plugin` works without it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .config import SessionSettings
from .errors import ConfigError, LimitExceededError
from .events import Event

__all__ = ["RedisSessionStore"]

# Deletes one session's keys and its entries in the two indexes. Key names are built inside the script
# from the prefix because the sweeps touch sessions other than the one being written.
_DROP = """
local function drop(prefix, sid)
  local n = redis.call('DEL', prefix .. 'ev:' .. sid, prefix .. 'ids:' .. sid, prefix .. 'meta:' .. sid)
  redis.call('ZREM', prefix .. 'seen', sid)
  redis.call('ZREM', prefix .. 'lru', sid)
  return n
end
local function sweep(prefix, now, ttl, limit)
  local args = {'ZRANGEBYSCORE', prefix .. 'seen', '-inf', '(' .. string.format('%.17g', now - ttl)}
  if limit > 0 then
    table.insert(args, 'LIMIT'); table.insert(args, 0); table.insert(args, limit)
  end
  local old = redis.call(unpack(args))
  for _, sid in ipairs(old) do drop(prefix, sid) end
end
local function touch(prefix, sid, now, ttl_ms)
  redis.call('HSET', prefix .. 'meta:' .. sid, 'last_seen', now)
  redis.call('PEXPIRE', prefix .. 'ev:' .. sid, ttl_ms)
  redis.call('PEXPIRE', prefix .. 'ids:' .. sid, ttl_ms)
  redis.call('PEXPIRE', prefix .. 'meta:' .. sid, ttl_ms)
  redis.call('ZADD', prefix .. 'seen', now, sid)
  redis.call('ZADD', prefix .. 'lru', redis.call('INCR', prefix .. 'seq'), sid)
end
-- true if the session exists and has not been idle longer than ttl; drops it if it has
local function live(prefix, sid, now, ttl)
  local last = redis.call('HGET', prefix .. 'meta:' .. sid, 'last_seen')
  if not last then return false end
  if now - tonumber(last) > ttl then drop(prefix, sid); return false end
  return true
end
"""

# ARGV: prefix, sid, now, ttl, max_events, reject, max_sessions, event_id, payload, window, kind, key, ts
# Returns 1 stored, 0 duplicate, -1 full (reject).
_APPEND = _DROP + """
local prefix, sid = ARGV[1], ARGV[2]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_events, reject, max_sessions = tonumber(ARGV[5]), ARGV[6] == '1', tonumber(ARGV[7])
local event_id, payload = ARGV[8], ARGV[9]
local window, kind, key, ts = tonumber(ARGV[10]), ARGV[11], ARGV[12], tonumber(ARGV[13])
local ev, ids, meta = prefix .. 'ev:' .. sid, prefix .. 'ids:' .. sid, prefix .. 'meta:' .. sid
local ttl_ms = math.ceil(ttl * 1000)

sweep(prefix, now, ttl, 100)
if not live(prefix, sid, now, ttl) then
  drop(prefix, sid)
  touch(prefix, sid, now, ttl_ms)
  local excess = redis.call('ZCARD', prefix .. 'lru') - max_sessions
  if excess > 0 then
    for _, pair in ipairs(redis.call('ZRANGE', prefix .. 'lru', 0, excess - 1)) do drop(prefix, pair) end
  end
end
if redis.call('SISMEMBER', ids, event_id) == 1 then return 0 end
if window > 0 and (kind == 'page_view' or kind == 'article_open') and redis.call('LLEN', ev) > 0 then
  local last = redis.call('HMGET', meta, 'kind', 'key', 'ts')
  if last[1] == kind and last[2] == key and math.abs(ts - tonumber(last[3])) <= window then return 0 end
end
if redis.call('LLEN', ev) >= max_events then
  if reject then return -1 end
  local oldest = redis.call('LPOP', ev)
  redis.call('SREM', ids, cjson.decode(oldest)['event_id'])
end
redis.call('RPUSH', ev, payload)
redis.call('SADD', ids, event_id)
redis.call('HSET', meta, 'kind', kind, 'key', key, 'ts', ARGV[13])
touch(prefix, sid, now, ttl_ms)
return 1
"""

# ARGV: prefix, sid, now, ttl, mode ('read' touches and returns events, 'exists' only checks)
_READ = _DROP + """
local prefix, sid, now, ttl, mode = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
if not live(prefix, sid, now, ttl) then return false end
if mode == 'exists' then return 1 end
touch(prefix, sid, now, math.ceil(ttl * 1000))
return redis.call('LRANGE', prefix .. 'ev:' .. sid, 0, -1)
"""

_ERASE = _DROP + """
return drop(ARGV[1], ARGV[2])
"""

# ARGV: prefix, now, ttl. Sweeps a bounded batch (health checks call this often) and counts the rest exactly.
_COUNT = _DROP + """
local prefix, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
sweep(prefix, now, ttl, 1000)
local expired = redis.call('ZCOUNT', prefix .. 'seen', '-inf', '(' .. string.format('%.17g', now - ttl))
return redis.call('ZCARD', prefix .. 'lru') - expired
"""


class RedisSessionStore:
    """SessionStore on a Redis server (redis-py client); thread- and process-safe.

    `client` is a `redis.Redis` (any decode_responses setting); `prefix` namespaces every key so several
    sites or test runs can share one server; `clock` gives wall-clock seconds and must agree across workers.
    """

    def __init__(
        self,
        client: Any,
        settings: SessionSettings | None = None,
        *,
        prefix: str = "session-suggest:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not prefix:
            raise ConfigError("prefix must be non-empty: it namespaces this store's keys in Redis")
        self.settings = settings or SessionSettings()
        self.client = client
        self.prefix = prefix
        self._clock = clock
        self._append = client.register_script(_APPEND)
        self._read = client.register_script(_READ)
        self._erase = client.register_script(_ERASE)
        self._count = client.register_script(_COUNT)

    @classmethod
    def from_url(cls, url: str, settings: SessionSettings | None = None, **kwargs: Any) -> RedisSessionStore:
        """Connect with redis-py, e.g. `redis://127.0.0.1:6379/0`."""
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on the environment
            raise ConfigError("RedisSessionStore needs redis-py: pip install 'session-suggest[redis]'") from None
        return cls(redis.Redis.from_url(url), settings, **kwargs)

    def _now(self) -> str:
        return repr(float(self._clock()))

    def append(self, event: Event) -> bool:
        s = self.settings
        payload = json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":"))
        result = self._append(
            args=[
                self.prefix, event.session_id, self._now(), repr(float(s.ttl_seconds)), s.max_events,
                "1" if s.overflow == "reject" else "0", s.max_sessions, event.event_id, payload,
                repr(float(s.dedupe_window_seconds)), event.kind, event.key, repr(float(event.ts)),
            ]
        )
        if int(result) < 0:
            raise LimitExceededError(
                f"session holds the maximum of {s.max_events} events; "
                "start a new session or raise SessionSettings.max_events"
            )
        return int(result) == 1

    def read(self, session_id: str) -> list[Event]:
        raw = self._read(args=[self.prefix, session_id, self._now(), repr(float(self.settings.ttl_seconds)), "read"])
        if not raw:
            return []
        return [Event.from_dict(json.loads(item)) for item in raw]

    def exists(self, session_id: str) -> bool:
        ttl = repr(float(self.settings.ttl_seconds))
        return bool(self._read(args=[self.prefix, session_id, self._now(), ttl, "exists"]))

    def erase(self, session_id: str) -> bool:
        return int(self._erase(args=[self.prefix, session_id])) > 0

    def __len__(self) -> int:
        return int(self._count(args=[self.prefix, self._now(), repr(float(self.settings.ttl_seconds))]))

    def ping(self) -> bool:
        """Whether the server answers (for health checks)."""
        return bool(self.client.ping())
