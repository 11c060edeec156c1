"""Request limits for the HTTP service: body size and per-session / per-client rate limits.

One ASGI middleware in front of the app. A violation is answered here, before any route runs, with the
service's JSON error shape — 413 `payload_too_large` or 429 `rate_limited` plus `Retry-After` — so a flood
or an oversize body never reaches the recommender and the session's earlier events stay as they were.

Rate limits count requests in fixed windows per key: `client:<address>` for every /v1 call and
`session:<digest of the id>` for calls on one session (a digest, so a Redis key holds no credential; the key is
deleted when the session is erased, so nothing keyed by the session outlives it). `InMemoryRateLimiter` counts per process (with N workers a client
gets up to N times the limit); `RedisRateLimiter` counts in Redis, so the limit holds across all workers.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from plugin import StoreUnavailableError
from plugin.redis_store import RedisGuard

from .revocation import id_digest

__all__ = [
    "LimitSettings",
    "RateLimiter",
    "InMemoryRateLimiter",
    "RedisRateLimiter",
    "LimitsMiddleware",
    "install_limits",
    "hit_all",
]


class LimitSettings(BaseModel):
    """What one client and one session may send. Defaults suit a widget: a page view or a question every
    few seconds per visitor, with room for bursts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_body_bytes: int = Field(64 * 1024, ge=256, description="Largest request body; larger is 413.")
    window_seconds: float = Field(60.0, gt=0, description="Length of one rate-limit window.")
    per_session: int = Field(120, ge=1, description="Requests on one session per window; more is 429.")
    per_client: int = Field(600, ge=1, description="Requests from one client address per window; more is 429.")
    trust_forwarded_for: bool = Field(
        False,
        description="Take the client address from X-Forwarded-For, counted from the right (see trusted_proxies). "
        "Only behind a proxy that appends to it: otherwise any client could pick its own key and dodge the "
        "per-client limit.",
    )
    trusted_proxies: int = Field(
        1,
        ge=1,
        description="How many proxies in front of the service append to X-Forwarded-For: the client address is "
        "that many entries from the right. Entries further left were sent by the client and are never used.",
    )
    exempt_paths: tuple[str, ...] = Field(("/v1/health",), description="Paths never rate-limited (probes).")


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window: float) -> float | None:
        """Count one request for key; None if within limit, else seconds until the window resets."""
        ...

    def forget(self, key: str) -> None:
        """Drop the key's counter (its session was erased)."""
        ...


def hit_all(limiter: RateLimiter, checks: Sequence[tuple[str, int]], window: float) -> tuple[int, float] | None:
    """Count one request for each (key, limit) in order, stopping at the first over its limit: None if all are
    within, else (its position, seconds until its window resets). One round trip with a limiter that has
    `hit_many` (Redis: a request's client and session counters in one script), else one `hit` per key."""
    many = getattr(limiter, "hit_many", None)
    if many is not None:
        return many(checks, window)
    for i, (key, limit) in enumerate(checks):
        wait = limiter.hit(key, limit, window)
        if wait is not None:
            return i, wait
    return None


class InMemoryRateLimiter:
    """Fixed-window counters in this process; thread-safe; forgets the least recently used keys past max_keys."""

    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key -> (window start, count)
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window: float) -> float | None:
        now = self._clock()
        with self._lock:
            start, count = self._windows.get(key, (now, 0))
            if now - start >= window:
                start, count = now, 0
            count += 1
            self._windows[key] = (start, count)
            self._windows.move_to_end(key)
            while len(self._windows) > self._max_keys:
                self._windows.popitem(last=False)
        return None if count <= limit else max(start + window - now, 0.001)

    def forget(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._windows


# KEYS: the counters in order; ARGV: window in ms, then each key's limit. Stops at the first key over its limit
# (later keys are not counted, as with one `hit` per key). Returns {position (0-based, -1: none), its ttl ms}.
_HIT_LUA = """
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
  if n > tonumber(ARGV[i + 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then redis.call('PEXPIRE', key, ARGV[1]); ttl = tonumber(ARGV[1]) end
    return {i - 1, ttl}
  end
end
return {-1, 0}
"""


class RedisRateLimiter:
    """Fixed-window counters in Redis (one INCR per request, atomic in a Lua script), shared by all workers.

    While Redis is unreachable (`guard` raises `StoreUnavailableError`, failing fast after the first failure) the
    requests are counted in this worker's `fallback` counters instead, so the routes that need no session store
    (health, new session ids, page-only suggestions, the widget's files) keep answering and stay limited — per
    worker, so with N workers a client gets up to N times the limit until Redis is back."""

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "session-suggest:rl:",
        guard: RedisGuard | None = None,
        fallback: RateLimiter | None = None,
    ) -> None:
        self._prefix = prefix
        self._client = client
        self._hit = client.register_script(_HIT_LUA)
        self._guard = guard if guard is not None else RedisGuard()
        self._fallback = fallback if fallback is not None else InMemoryRateLimiter()

    def forget(self, key: str) -> None:
        try:
            self._guard(self._client.delete, self._prefix + key)
        except StoreUnavailableError:
            pass  # the counter expires with its window; the fallback's goes now
        self._fallback.forget(key)

    def hit(self, key: str, limit: int, window: float) -> float | None:
        over = self.hit_many([(key, limit)], window)
        return None if over is None else over[1]

    def hit_many(self, checks: Sequence[tuple[str, int]], window: float) -> tuple[int, float] | None:
        """`hit_all` in one round trip (the profile of a GET suggestions counted the two hits as a third of it)."""
        try:
            pos, ttl_ms = self._guard(
                self._hit,
                keys=[self._prefix + key for key, _ in checks],
                args=[max(1, int(window * 1000)), *(limit for _, limit in checks)],
            )
        except StoreUnavailableError:
            return hit_all(self._fallback, checks, window)
        return None if int(pos) < 0 else (int(pos), max(int(ttl_ms), 1) / 1000.0)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> tuple[int, list, bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return status, hdrs, body


def _session_key(session_id: str) -> str:
    return "session:" + id_digest(session_id)


def _session_of(path: str) -> str | None:
    # /v1/sessions/{id}[/...]; POST /v1/sessions itself has no id
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] == "v1" and parts[2] == "sessions" and parts[3]:
        return parts[3]
    return None


class LimitsMiddleware:
    """ASGI middleware enforcing `LimitSettings` with a `RateLimiter` (in-memory by default)."""

    def __init__(self, app: Any, settings: LimitSettings | None = None, limiter: RateLimiter | None = None) -> None:
        self.app = app
        self.settings = settings or LimitSettings()
        self.limiter = limiter if limiter is not None else InMemoryRateLimiter()

    def _client(self, scope: dict[str, Any]) -> str:
        if self.settings.trust_forwarded_for:
            # Each proxy appends the address it received from, so only the right-most entries are trustworthy.
            hops = [
                h.strip()
                for name, value in scope.get("headers", ())
                if name == b"x-forwarded-for"
                for h in value.decode("latin-1").split(",")
            ]
            n = self.settings.trusted_proxies
            if len(hops) >= n and hops[-n]:
                return hops[-n]
        client = scope.get("client")
        return client[0] if client else "unknown"

    def _rate_limited(self, scope: dict[str, Any]) -> tuple[int, list, bytes] | None:
        cfg = self.settings
        path = scope.get("path", "")
        if not path.startswith("/v1/") or path in cfg.exempt_paths:
            return None
        checks = [(f"client:{self._client(scope)}", cfg.per_client, "this client")]
        sid = _session_of(path)
        if sid is not None:
            checks.append((_session_key(sid), cfg.per_session, "this session"))
        over = hit_all(self.limiter, [(key, limit) for key, limit, _ in checks], cfg.window_seconds)
        if over is None:
            return None
        _, limit, who = checks[over[0]]
        wait = over[1]
        return _error(
            429,
            "rate_limited",
            f"too many requests for {who}: at most {limit} per {cfg.window_seconds:g} s; retry in {math.ceil(wait)} s",
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.settings.max_body_bytes
        too_big = _error(
            413, "payload_too_large", f"request body over {limit} bytes; send less (text is cut at 20,000 characters)"
        )
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    await _send(send, _error(400, "bad_request", "invalid Content-Length header"))
                    return
                if declared > limit:
                    await _send(send, too_big)
                    return
        refused = self._rate_limited(scope)
        if refused is not None:
            await _send(send, refused)
            return
        # Read the body here (it is small) so a chunked upload without Content-Length is capped too.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send(send, too_big)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        sid = _session_of(scope.get("path", ""))
        if scope.get("method") != "DELETE" or sid is None or scope["path"].count("/") != 3:
            await self.app(scope, replay, send)
            return
        status = 0

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, replay, watch)
        if status == 204:  # erased: its rate-limit counter goes too
            self.limiter.forget(_session_key(sid))


async def _send(send: Callable, response: tuple[int, list, bytes]) -> None:
    status, headers, body = response
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install_limits(app: Any, settings: LimitSettings | None = None, limiter: RateLimiter | None = None) -> None:
    """Put LimitsMiddleware on a Starlette/FastAPI app, inside the CORS middleware so that refusals carry CORS
    headers and the browser widget can read them."""
    from starlette.middleware import Middleware

    # add_middleware() would make it the outermost layer, outside CORS; appending keeps user order.
    app.user_middleware.append(Middleware(LimitsMiddleware, settings=settings, limiter=limiter))
