"""A session store on Redis, so several stateless workers share one view of every session.

Same protocol and semantics as `InMemorySessionStore` (idle TTL, max events with drop_oldest/reject,
dedupe by event id and of quick reloads, LRU cap on live sessions); every mutation is one Lua script,
so concurrent workers never interleave half an append.

Layout, per key prefix `P` and session `S` (`id_digest` of its id, never the id itself):

    P ev:S      list of JSON events, oldest first
    P ids:S     set of the event ids in that list (dedupe)
    P meta:S    hash: last_seen, kind/key/ts of the last event (reload dedupe), cref (contents last refreshed)
    P seen      sorted set S -> last_seen (sweeps expired sessions, counts live ones)
    P lru       sorted set S -> access sequence number (evicts the least recently used past max_sessions)
    P seq       the access counter
    P ctx:S     list of the intent events of ev:S, same order (a suggestion reads its newest few)
    P vis:S     hash: seen key (Event.seen_keys) -> how many held events carry it (exclude_seen)
    P refs:S    hash: content hash -> how many held events name it
    P pc:H      hash: t (text head), v (vector, base64), w (BM25 terms): a page's content, shared by the sessions
                that read it
    P pco:H     sorted set: session -> last access, the sessions holding content H (gone with the last one)

A suggestion's read refreshes its pages' contents (their owner scores and expiry) at most every quarter TTL per
session (meta field `cref`), and contents expire a quarter TTL after a session would: most reads skip that work
(a long session's read decoded every context event and made three calls per page), and no live session loses a
page.

Expiry is enforced twice: logically against `clock()` on every access (so a test clock works and workers on
one host agree), and physically by PEXPIRE on the per-session keys (so an idle session's data leaves Redis
even if no worker ever touches it again). The two sorted sets are global to the prefix, so this store wants
a single Redis primary (optionally with replicas/Sentinel), not Redis Cluster.

No key, value or script argument holds a session id: the HTTP service's ids are bearer tokens, and Redis shows keys
and script arguments to whoever can run `KEYS`, `MONITOR` or `SLOWLOG`. Sessions are named by `id_digest` (hashed once
per call), and a stored event is written without its `session_id`, which a read gives back from the caller's id.
(Stores written before this layout named sessions by their id: those keys are never read again and expire with
their TTL, or are deleted by the sweep of the `seen` set, whose members they are.)

redis-py is imported lazily (only by `from_url`): `import plugin` works without it.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from .config import SessionSettings
from .errors import ConfigError, LimitExceededError, StoreUnavailableError
from .events import INTENT_KINDS, Event
from .session_store import PageContent, SessionContext, content_digest, id_digest

__all__ = ["RedisSessionStore", "RedisGuard", "REDIS_TIMEOUT_SECONDS"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Deletes one session's keys, its entries in the two indexes, and the page contents only it held. Key names
# are built inside the script from the prefix because the sweeps touch sessions other than the one being written.
# `sid` in every script is the session's `id_digest`, never its id (see the module docstring).
_DROP = """
local function cutoff(now, ttl) return '(' .. string.format('%.17g', now - ttl) end
-- page contents outlive their sessions by a quarter TTL: a reading session refreshes them only that often (_CONTEXT)
local function content_ms(ttl) return math.ceil(ttl * 1250) end
-- stored JSON objects as one JSON array: one bulk string for the client to parse, not one per item
local function json_array(items) return '[' .. table.concat(items, ',') .. ']' end
-- the session no longer holds content d: delete it when no live session does
local function release(prefix, sid, d, now, ttl)
  local owners = prefix .. 'pco:' .. d
  redis.call('ZREM', owners, sid)
  redis.call('ZREMRANGEBYSCORE', owners, '-inf', cutoff(now, ttl))
  if redis.call('ZCARD', owners) == 0 then redis.call('DEL', owners, prefix .. 'pc:' .. d) end
end
local function drop(prefix, sid, now, ttl)
  local refs = prefix .. 'refs:' .. sid
  for _, d in ipairs(redis.call('HKEYS', refs)) do release(prefix, sid, d, now, ttl) end
  local n = redis.call('DEL', prefix .. 'ev:' .. sid, prefix .. 'ids:' .. sid, prefix .. 'meta:' .. sid,
                       prefix .. 'ctx:' .. sid, prefix .. 'vis:' .. sid, refs)
  redis.call('ZREM', prefix .. 'seen', sid)
  redis.call('ZREM', prefix .. 'lru', sid)
  return n
end
local function sweep(prefix, now, ttl, limit)
  local args = {'ZRANGEBYSCORE', prefix .. 'seen', '-inf', cutoff(now, ttl)}
  if limit > 0 then
    table.insert(args, 'LIMIT'); table.insert(args, 0); table.insert(args, limit)
  end
  local old = redis.call(unpack(args))
  for _, sid in ipairs(old) do drop(prefix, sid, now, ttl) end
end
local function touch(prefix, sid, now, ttl_ms)
  redis.call('HSET', prefix .. 'meta:' .. sid, 'last_seen', now)
  for _, k in ipairs({'ev:', 'ids:', 'meta:', 'ctx:', 'vis:', 'refs:'}) do
    redis.call('PEXPIRE', prefix .. k .. sid, ttl_ms)
  end
  redis.call('ZADD', prefix .. 'seen', now, sid)
  redis.call('ZADD', prefix .. 'lru', redis.call('INCR', prefix .. 'seq'), sid)
end
-- true if the session exists and has not been idle longer than ttl; drops it if it has
local function live(prefix, sid, now, ttl)
  local last = redis.call('HGET', prefix .. 'meta:' .. sid, 'last_seen')
  if not last then return false end
  if now - tonumber(last) > ttl then drop(prefix, sid, now, ttl); return false end
  return true
end
"""

# ARGV: prefix, sid, now, ttl, max_events, reject, max_sessions, event_id, payload, window, kind, key, ts,
#       intent ('1'/'0'), seen keys (JSON list), content hash ('' for none), content text, content vector (base64),
#       content terms ('' for none)
# Returns 1 stored, 0 duplicate, -1 full (reject).
_APPEND = (
    _DROP
    + """
local prefix, sid = ARGV[1], ARGV[2]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_events, reject, max_sessions = tonumber(ARGV[5]), ARGV[6] == '1', tonumber(ARGV[7])
local event_id, payload = ARGV[8], ARGV[9]
local window, kind, key, ts = tonumber(ARGV[10]), ARGV[11], ARGV[12], tonumber(ARGV[13])
local intent, digest = ARGV[14] == '1', ARGV[16]
local ev, ids, meta = prefix .. 'ev:' .. sid, prefix .. 'ids:' .. sid, prefix .. 'meta:' .. sid
local ctx, vis, refs = prefix .. 'ctx:' .. sid, prefix .. 'vis:' .. sid, prefix .. 'refs:' .. sid
local ttl_ms = math.ceil(ttl * 1000)

sweep(prefix, now, ttl, 100)
if not live(prefix, sid, now, ttl) then
  drop(prefix, sid, now, ttl)
  touch(prefix, sid, now, ttl_ms)
  local excess = redis.call('ZCARD', prefix .. 'lru') - max_sessions
  if excess > 0 then
    for _, other in ipairs(redis.call('ZRANGE', prefix .. 'lru', 0, excess - 1)) do drop(prefix, other, now, ttl) end
  end
end
if redis.call('SISMEMBER', ids, event_id) == 1 then return 0 end
if window > 0 and (kind == 'page_view' or kind == 'article_open') and redis.call('LLEN', ev) > 0 then
  local last = redis.call('HMGET', meta, 'kind', 'key', 'ts')
  if last[1] == kind and last[2] == key and math.abs(ts - tonumber(last[3])) <= window then return 0 end
end
if redis.call('LLEN', ev) >= max_events then
  if reject then return -1 end
  -- forget the oldest event everywhere it is counted (the same rules as Event.seen_keys, INTENT_KINDS)
  local old = cjson.decode(redis.call('LPOP', ev))
  redis.call('SREM', ids, old['event_id'])
  local k = old['kind']
  if k ~= 'suggestion_impression' then redis.call('LPOP', ctx) end  -- every other kind is in INTENT_KINDS
  if k == 'page_view' or k == 'article_open' or k == 'suggestion_click' then
    local keys = {}
    if old['article_id'] then table.insert(keys, 'a:' .. old['article_id']) end
    if old['url'] then table.insert(keys, 'u:' .. old['url']) end
    for _, sk in ipairs(keys) do
      if redis.call('HINCRBY', vis, sk, -1) <= 0 then redis.call('HDEL', vis, sk) end
    end
  end
  local d = old['content_ref']
  if d and redis.call('HEXISTS', refs, d) == 1 and redis.call('HINCRBY', refs, d, -1) <= 0 then
    redis.call('HDEL', refs, d)
    release(prefix, sid, d, now, ttl)
  end
end
redis.call('RPUSH', ev, payload)
redis.call('SADD', ids, event_id)
if intent then redis.call('RPUSH', ctx, payload) end
for _, sk in ipairs(cjson.decode(ARGV[15])) do redis.call('HINCRBY', vis, sk, 1) end
if digest ~= '' then
  local pc, owners = prefix .. 'pc:' .. digest, prefix .. 'pco:' .. digest
  redis.call('HINCRBY', refs, digest, 1)
  redis.call('HSET', pc, 't', ARGV[17], 'v', ARGV[18], 'w', ARGV[19])
  redis.call('ZADD', owners, now, sid)
  redis.call('PEXPIRE', pc, content_ms(ttl))
  redis.call('PEXPIRE', owners, content_ms(ttl))
end
redis.call('HSET', meta, 'kind', kind, 'key', key, 'ts', ARGV[13])
touch(prefix, sid, now, ttl_ms)
return 1
"""
)

# ARGV: prefix, sid, now, ttl, mode ('read' touches and returns events, 'exists' only checks)
_READ = (
    _DROP
    + """
local prefix, sid, now, ttl, mode = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
if not live(prefix, sid, now, ttl) then return false end
if mode == 'exists' then return 1 end
touch(prefix, sid, now, math.ceil(ttl * 1000))
return json_array(redis.call('LRANGE', prefix .. 'ev:' .. sid, 0, -1))
"""
)

# ARGV: prefix, sid, now, ttl, n. The newest n intent events and the seen keys: what a suggestion reads.
# The page contents those events name stay alive while the session reads them. Both come back as one JSON array
# each (the events are stored as JSON objects): two bulk strings for redis-py to parse instead of one per event
# and per key, which was most of a long session's read on the client (20 events and ~100 keys).
_CONTEXT = (
    _DROP
    + """
local prefix, sid, now, ttl, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if not live(prefix, sid, now, ttl) then return false end
local meta = prefix .. 'meta:' .. sid
touch(prefix, sid, now, math.ceil(ttl * 1000))
local events = redis.call('LRANGE', prefix .. 'ctx:' .. sid, -n, -1)
-- Keep the contents these events name alive as long as the session: at most every quarter TTL, not on every read
-- (decoding each event and three calls per page was most of a long session's read). Contents expire a quarter TTL
-- after their last refresh or append, and an owner's score is never older than ttl / 4 while the session reads.
local refreshed = tonumber(redis.call('HGET', meta, 'cref') or '')
if not refreshed or now - refreshed > ttl / 4 then
  local keep_ms = content_ms(ttl)
  for _, raw in ipairs(events) do
    local d = cjson.decode(raw)['content_ref']
    if d then
      redis.call('ZADD', prefix .. 'pco:' .. d, 'XX', now, sid)
      redis.call('PEXPIRE', prefix .. 'pco:' .. d, keep_ms)
      redis.call('PEXPIRE', prefix .. 'pc:' .. d, keep_ms)
    end
  end
  redis.call('HSET', meta, 'cref', ARGV[3])
end
local keys = redis.call('HKEYS', prefix .. 'vis:' .. sid)
-- cjson writes an empty table as {}; the seen keys are strings, so encoding them is exact
return {json_array(events), #keys > 0 and cjson.encode(keys) or '[]'}
"""
)

# ARGV: prefix, sid, now, ttl, hash... One JSON array [hash, text, vector, terms, ...] of the contents this session
# holds: one bulk string for the client, not four per page (redis-py's reader parsed each of a long session's
# pages' four strings on its own, most of the client's cost of reading them).
_CONTENTS = (
    _DROP
    + """
local prefix, sid, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if not live(prefix, sid, now, ttl) then return '[]' end
local out = {}
for i = 5, #ARGV do
  local d = ARGV[i]
  if redis.call('HEXISTS', prefix .. 'refs:' .. sid, d) == 1 then
    local got = redis.call('HMGET', prefix .. 'pc:' .. d, 't', 'v', 'w')
    if got[1] then
      -- '-': no terms (terms are words joined by spaces, never '-'; '' is a page of stop words only)
      table.insert(out, d); table.insert(out, got[1]); table.insert(out, got[2] or ''); table.insert(out, got[3] or '-')
    end
  end
end
-- cjson writes an empty table as {}; every item is a string, so encoding them is exact
return #out > 0 and cjson.encode(out) or '[]'
"""
)

# ARGV: prefix, hash, now, ttl. A page's content by its hash alone, while a session read it within the TTL (its
# owner's score, `pco:H`): [text, vector, terms] as one JSON array, or nil. No session is touched or named.
_SHARED = (
    _DROP
    + """
local prefix, d, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('ZCOUNT', prefix .. 'pco:' .. d, cutoff(now, ttl), '+inf') == 0 then return false end
local got = redis.call('HMGET', prefix .. 'pc:' .. d, 't', 'v', 'w')
if not got[1] then return false end
return cjson.encode({got[1], got[2] or '', got[3] or '-'})
"""
)

# ARGV: prefix, sid, now, ttl
_ERASE = (
    _DROP
    + """
return drop(ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
"""
)

# ARGV: prefix, now, ttl. Sweeps a bounded batch (health checks call this often) and counts the rest exactly.
_COUNT = (
    _DROP
    + """
local prefix, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
sweep(prefix, now, ttl, 1000)
local expired = redis.call('ZCOUNT', prefix .. 'seen', '-inf', cutoff(now, ttl))
return redis.call('ZCARD', prefix .. 'lru') - expired
"""
)


# how long `RedisSessionStore.from_url`'s client waits to connect and for each reply, in seconds
REDIS_TIMEOUT_SECONDS = 2.0


def _unreachable(exc: BaseException) -> bool:
    """Whether redis-py raised this because the server cannot be reached or did not answer in time (refused,
    reset, timed out, still loading its data, or refusing our credentials) rather than for a bad command."""
    errors = sys.modules.get("redis.exceptions")  # loaded whenever redis-py raised anything: no import here
    return errors is not None and isinstance(exc, (errors.ConnectionError, errors.TimeoutError))


class RedisGuard:
    """Turns redis-py's connection failures and timeouts into `StoreUnavailableError`, and fails fast after one.

    After a failure, every call fails at once for `cooldown` seconds without touching the network: with Redis
    stopped each call would otherwise pay a refused connect, and with Redis silent each the client's whole timeout
    (2 s), so a worker's requests would queue behind them — on an event loop, every route of the worker. The first
    call after the cooldown goes through (one call at a time: the others keep failing fast while it waits), and
    the first answer lifts the guard. One guard is shared by everything a worker sends to the same Redis (the
    session store, the rate limiter, the revocation list), so one outage is found once."""

    def __init__(self, cooldown: float = 1.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not cooldown > 0:
            raise ConfigError(f"cooldown must be > 0 seconds, got {cooldown!r}")
        self.cooldown = float(cooldown)
        self._clock = clock
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = 0.0

    @property
    def down(self) -> bool:
        """Whether the last call found Redis unreachable (and none has reached it since)."""
        return self._down

    def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._down:
            with self._lock:
                now = self._clock()
                if self._down and now < self._retry_at:
                    raise self._unavailable(self._retry_at - now)
                self._retry_at = now + self.cooldown  # this call probes; the others fail fast while it waits
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            if not _unreachable(exc):
                raise
            with self._lock:
                if not self._down:
                    # the type and redis-py's text ("Error 111 connecting to host:port. Connection refused."): no
                    # credential is in either (a url's password is never part of a connection error's message)
                    logger.warning(
                        "Redis unreachable (%s: %s); calls fail fast for %g s at a time until it answers",
                        type(exc).__name__,
                        str(exc)[:200],
                        self.cooldown,
                    )
                self._down = True
                self._retry_at = self._clock() + self.cooldown
            raise self._unavailable(self.cooldown) from exc
        if self._down:
            with self._lock:
                if self._down:
                    self._down = False
                    logger.warning("Redis answers again")
        return result

    @staticmethod
    def _unavailable(wait: float) -> StoreUnavailableError:
        seconds = max(1, math.ceil(wait))
        return StoreUnavailableError(
            f"the session store is not answering; retry in {seconds} s",
            retry_after=seconds,
        )


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
        guard: RedisGuard | None = None,
    ) -> None:
        if not prefix:
            raise ConfigError("prefix must be non-empty: it namespaces this store's keys in Redis")
        self.settings = settings or SessionSettings()
        self.client = client
        self.prefix = prefix
        self._clock = clock
        # every call goes through it: Redis unreachable is a StoreUnavailableError, failed fast after the first
        self.guard = guard if guard is not None else RedisGuard()
        self._append = client.register_script(_APPEND)
        self._read = client.register_script(_READ)
        self._context = client.register_script(_CONTEXT)
        self._contents = client.register_script(_CONTENTS)
        self._shared = client.register_script(_SHARED)
        self._erase = client.register_script(_ERASE)
        self._count = client.register_script(_COUNT)

    @classmethod
    def from_url(cls, url: str, settings: SessionSettings | None = None, **kwargs: Any) -> RedisSessionStore:
        """Connect with redis-py, e.g. `redis://127.0.0.1:6379/0`. Connecting and each reply wait at most
        `REDIS_TIMEOUT_SECONDS` (the url's `?socket_timeout=…&socket_connect_timeout=…` win): redis-py waits forever
        by default, and a Redis that stops answering (paused, a dropped route) would hold every request that reads
        a session — on the event loop, the whole worker — instead of failing it."""
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on the environment
            raise ConfigError("RedisSessionStore needs redis-py: pip install 'session-suggest[redis]'") from None
        try:
            client = redis.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
            )
        except ValueError:
            # redis-py's message quotes part of the url: a password holding '#', '/' or '?' unencoded ends the host
            # there, and "Port could not be cast to integer value as 'hunt'" put its first letters in the log.
            raise ConfigError(
                "the Redis url is not valid (redis://[[user]:password@]host[:port][/db], rediss://… or unix://…); "
                "percent-encode '#', '/', '?', '@' and ':' in the password"
            ) from None
        return cls(client, settings, **kwargs)

    def _now(self) -> str:
        return repr(float(self._clock()))

    def append(self, event: Event, content: PageContent | None = None) -> bool:
        s = self.settings
        digest = content_digest(event) if content is not None else ""
        record = event.to_dict()
        del record["session_id"]  # the caller's id is given back on read (`_event`): Redis never holds it
        payload = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        text, vector, terms = "", "", "-"  # '-': no terms (never a word: see _CONTENTS)
        if content is not None:
            text = content.text
            if content.terms is not None:
                terms = content.terms
            if content.vector is not None:
                # base64, so a client with decode_responses=True reads it back as the same text
                vector = base64.b64encode(np.asarray(content.vector, dtype="<f4").tobytes()).decode("ascii")
        result = self.guard(
            self._append,
            args=[
                self.prefix,
                id_digest(event.session_id),
                self._now(),
                self._ttl(),
                s.max_events,
                "1" if s.overflow == "reject" else "0",
                s.max_sessions,
                event.event_id,
                payload,
                repr(float(s.dedupe_window_seconds)),
                event.kind,
                event.key,
                repr(float(event.ts)),
                "1" if event.kind in INTENT_KINDS else "0",
                json.dumps(list(event.seen_keys()), ensure_ascii=False),
                digest,
                text,
                vector,
                terms,
            ],
        )
        if int(result) < 0:
            raise LimitExceededError(
                f"session holds the maximum of {s.max_events} events; "
                "start a new session or raise SessionSettings.max_events"
            )
        return int(result) == 1

    def _ttl(self) -> str:
        return repr(float(self.settings.ttl_seconds))

    def read(self, session_id: str) -> list[Event]:
        raw = self.guard(self._read, args=[self.prefix, id_digest(session_id), self._now(), self._ttl(), "read"])
        if not raw:
            return []
        return [_event(d, session_id) for d in json.loads(raw)]

    def context(self, session_id: str, n: int) -> SessionContext:
        raw = self.guard(self._context, args=[self.prefix, id_digest(session_id), self._now(), self._ttl(), int(n)])
        if not raw:
            return SessionContext((), frozenset())
        events, seen = raw
        return SessionContext(tuple(_event(d, session_id) for d in json.loads(events)), frozenset(json.loads(seen)))

    def contents(self, session_id: str, digests: Sequence[str]) -> dict[str, PageContent]:
        if not digests:
            return {}
        args = [self.prefix, id_digest(session_id), self._now(), self._ttl(), *digests]
        flat = json.loads(self.guard(self._contents, args=args))
        out: dict[str, PageContent] = {}
        for i in range(0, len(flat), 4):
            vec, terms = flat[i + 2], flat[i + 3]
            vector = np.frombuffer(base64.b64decode(vec), dtype="<f4").astype(np.float32) if vec else None
            out[flat[i]] = PageContent(flat[i + 1], vector, None if terms == "-" else terms)
        return out

    def shared_content(self, digest: str) -> PageContent | None:
        """The content stored under this hash by any session that held it within the TTL (`SharedContents`), in
        one round trip: what a worker reads instead of embedding a page another worker embedded."""
        raw = self.guard(self._shared, args=[self.prefix, digest, self._now(), self._ttl()])
        if not raw:
            return None
        text, vec, terms = json.loads(raw)
        vector = np.frombuffer(base64.b64decode(vec), dtype="<f4").astype(np.float32) if vec else None
        return PageContent(text, vector, None if terms == "-" else terms)

    def exists(self, session_id: str) -> bool:
        return bool(
            self.guard(self._read, args=[self.prefix, id_digest(session_id), self._now(), self._ttl(), "exists"])
        )

    def erase(self, session_id: str) -> bool:
        return int(self.guard(self._erase, args=[self.prefix, id_digest(session_id), self._now(), self._ttl()])) > 0

    def __len__(self) -> int:
        return int(self.guard(self._count, args=[self.prefix, self._now(), self._ttl()]))

    def ping(self) -> bool:
        """Whether the server answers (for health checks)."""
        return bool(self.guard(self.client.ping))


def _event(record: dict[str, Any], session_id: str) -> Event:
    """A stored event record with the session id it was stored without (see `append`)."""
    record["session_id"] = session_id
    return Event.from_dict(record)
