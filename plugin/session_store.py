"""Where live sessions are kept: a small protocol and the embedded in-memory store.

Stores are anonymous and short-lived: a session is a bounded list of events keyed by an opaque id,
forgotten after `ttl_seconds` idle, and the least recently used sessions are evicted past `max_sessions`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .config import SessionSettings
from .errors import LimitExceededError
from .events import Event

__all__ = ["SessionStore", "InMemorySessionStore"]


@runtime_checkable
class SessionStore(Protocol):
    """append/read/erase over anonymous sessions. Implementations must be thread-safe."""

    def append(self, event: Event) -> bool:
        """Store the event; return False if it was a duplicate (same event_id) and was ignored."""
        ...

    def read(self, session_id: str) -> list[Event]:
        """The session's events, oldest first; [] for an unknown or expired session."""
        ...

    def erase(self, session_id: str) -> bool:
        """Forget the session; return whether it existed."""
        ...

    def exists(self, session_id: str) -> bool: ...

    def __len__(self) -> int: ...


@dataclass
class _Session:
    events: deque[Event]
    last_seen: float
    event_ids: set[str] = field(default_factory=set)


class InMemorySessionStore:
    """A thread-safe, TTL-expiring, LRU-capped dict of sessions (the embedded default)."""

    def __init__(self, settings: SessionSettings | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or SessionSettings()
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.RLock()

    def _live(self, session_id: str, now: float) -> _Session | None:
        sess = self._sessions.get(session_id)
        if sess is None:
            return None
        if now - sess.last_seen > self.settings.ttl_seconds:
            del self._sessions[session_id]
            return None
        return sess

    def _expire_oldest(self, now: float) -> None:
        # OrderedDict is in LRU order, so expired sessions sit at the front.
        while self._sessions:
            sid, sess = next(iter(self._sessions.items()))
            if now - sess.last_seen <= self.settings.ttl_seconds:
                break
            del self._sessions[sid]

    def append(self, event: Event) -> bool:
        now = self._clock()
        with self._lock:
            self._expire_oldest(now)
            sess = self._live(event.session_id, now)
            if sess is None:
                sess = _Session(events=deque(), last_seen=now)
                self._sessions[event.session_id] = sess
                while len(self._sessions) > self.settings.max_sessions:
                    self._sessions.popitem(last=False)
            if event.event_id in sess.event_ids:
                return False
            if _is_repeat(sess.events, event, self.settings.dedupe_window_seconds):
                return False
            if len(sess.events) >= self.settings.max_events:
                if self.settings.overflow == "reject":
                    raise LimitExceededError(
                        f"session holds the maximum of {self.settings.max_events} events; "
                        "start a new session or raise SessionSettings.max_events"
                    )
                dropped = sess.events.popleft()
                sess.event_ids.discard(dropped.event_id)
            sess.events.append(event)
            sess.event_ids.add(event.event_id)
            sess.last_seen = now
            self._sessions.move_to_end(event.session_id)
            return True

    def read(self, session_id: str) -> list[Event]:
        now = self._clock()
        with self._lock:
            sess = self._live(session_id, now)
            if sess is None:
                return []
            sess.last_seen = now
            self._sessions.move_to_end(session_id)
            return list(sess.events)

    def exists(self, session_id: str) -> bool:
        with self._lock:
            return self._live(session_id, self._clock()) is not None

    def erase(self, session_id: str) -> bool:
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def __len__(self) -> int:
        with self._lock:
            self._expire_oldest(self._clock())
            return len(self._sessions)


def _is_repeat(events: deque[Event], event: Event, window: float) -> bool:
    """A reload of the page just viewed is not a new signal."""
    if not events or window <= 0 or event.kind not in ("page_view", "article_open"):
        return False
    last = events[-1]
    return last.kind == event.kind and last.key == event.key and abs(event.ts - last.ts) <= window
