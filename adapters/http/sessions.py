"""Issuing and checking session ids: the only place that knows what a valid id looks like.

Ids are 32 random bytes (256 bits) from `secrets`, url-safe base64. A server accepts an id that it issued
and has not erased or let expire, or one its session store already holds (a shared store, several workers).
Swap this class for a signing one (HMAC over the random part) to validate ids without shared state.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from plugin import SessionStore, UnknownSessionError

__all__ = ["SessionIds", "SESSION_ID_PATTERN", "redact_session_ids"]

_TOKEN_BYTES = 32
SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{43}$"  # token_urlsafe(32) is 43 characters
_ID_RE = re.compile(SESSION_ID_PATTERN)
# The id in a request path, whatever its form (a signed id is longer than an unsigned one).
_SESSION_IN_PATH = re.compile(r"(/v1/sessions/)([^/?#\s\"]{8})[^/?#\s\"]*")


def redact_session_ids(text: str) -> str:
    """`text` (a request path, a log line) with every session id in a `/v1/sessions/<id>` path cut to 8 characters:
    an id is a bearer token, and logs are read by more people than should act as any visitor."""
    return _SESSION_IN_PATH.sub(r"\1\2…", text)


class SessionIds:
    """Issues unguessable session ids and remembers them for `ttl_seconds` (LRU-capped)."""

    def __init__(
        self,
        store: SessionStore,
        *,
        ttl_seconds: float,
        max_sessions: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._max = max_sessions
        self._clock = clock
        self._issued: OrderedDict[str, float] = OrderedDict()  # id -> last seen
        self._lock = threading.Lock()

    def issue(self) -> str:
        sid = secrets.token_urlsafe(_TOKEN_BYTES)
        with self._lock:
            self._issued[sid] = self._clock()
            while len(self._issued) > self._max:
                self._issued.popitem(last=False)
        return sid

    def check(self, session_id: str) -> str:
        """The id itself if it is live here; UnknownSessionError otherwise (malformed, never issued, expired, erased)."""
        if not _ID_RE.match(session_id):
            raise UnknownSessionError("no such session: session ids are 43-character tokens from POST /v1/sessions")
        now = self._clock()
        with self._lock:
            seen = self._issued.get(session_id)
            if seen is not None and now - seen <= self._ttl:
                self._issued[session_id] = now
                self._issued.move_to_end(session_id)
                return session_id
            if seen is not None:
                del self._issued[session_id]
        if self._store.exists(session_id):
            return session_id
        raise UnknownSessionError("unknown or expired session; create a new one with POST /v1/sessions")

    def forget(self, session_id: str) -> bool:
        with self._lock:
            return self._issued.pop(session_id, None) is not None
