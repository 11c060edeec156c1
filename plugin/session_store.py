"""Where live sessions are kept: a small protocol and the embedded in-memory store.

Stores are anonymous and short-lived: a session is a bounded list of events keyed by an opaque id,
forgotten after `ttl_seconds` idle, and the least recently used sessions are evicted past `max_sessions`.
A page's text is not kept in its event: it is kept once per content hash beside the sessions that read it, so a
suggestion reads the newest few events and a set of seen keys — the same cost for a session of 3 pages or 200.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from .config import SessionSettings
from .errors import InvalidEventError, LimitExceededError
from .events import INTENT_KINDS, Event

__all__ = ["SessionStore", "SharedContents", "InMemorySessionStore", "PageContent", "SessionContext", "id_digest"]


@dataclass(frozen=True)
class PageContent:
    """What a page outside the knowledge base adds to a suggestion, kept once per content hash beside the
    sessions that read it (the event itself keeps only the hash, see `Event.slim`)."""

    text: str  # the head of the page's text: as much as the lexical half reads (lexical.QUERY_CHARS)
    vector: np.ndarray | None = None  # (D,) float32, the page's embedding; None: embed `text` again
    # the lexical half's query terms of the page (title and text head: `lexical.query_terms`), worked out once when
    # it was tracked; None: tokenise the text again when BM25's cache has lost the page
    terms: str | None = None


@dataclass(frozen=True)
class SessionContext:
    """What a suggestion reads of a session: a bounded amount, however long the session is."""

    events: tuple[Event, ...]  # the newest intent events (INTENT_KINDS), oldest first
    seen: frozenset[str]  # Event.seen_keys of every visit the session holds ('a:' article id, 'u:' url)

    @classmethod
    def from_events(cls, events: Sequence[Event], n: int) -> SessionContext:
        """What `SessionStore.context(session_id, n)` answers, from the session's events already read in full:
        a caller that needs the whole session (the chat policy counts impressions) suggests from that one read."""
        intent = [e for e in events if e.kind in INTENT_KINDS]
        return cls(tuple(intent[max(len(intent) - n, 0) :]), frozenset(k for e in events for k in e.seen_keys()))


@runtime_checkable
class SessionStore(Protocol):
    """append/read/erase over anonymous sessions. Implementations must be thread-safe.

    Page contents (`PageContent`) belong to the sessions that stored them: `contents` answers only for the
    session that put them, and erasing (or expiring) the last session holding one removes it."""

    def append(self, event: Event, content: PageContent | None = None) -> bool:
        """Store the event, and `content` under its `content_ref` (content goes with a slim event, see
        `Event.slim`); return False if it was a duplicate (same event_id, or a reload) and was ignored."""
        ...

    def read(self, session_id: str) -> list[Event]:
        """The session's events, oldest first; [] for an unknown or expired session."""
        ...

    def context(self, session_id: str, n: int) -> SessionContext:
        """The newest `n` intent events and the seen keys, in one read; touches the session like `read`."""
        ...

    def contents(self, session_id: str, digests: Sequence[str]) -> dict[str, PageContent]:
        """The page contents this session stored under these hashes (missing ones are left out)."""
        ...

    def erase(self, session_id: str) -> bool:
        """Forget the session and every page content only it held; return whether it existed."""
        ...

    def exists(self, session_id: str) -> bool: ...

    def __len__(self) -> int: ...


@runtime_checkable
class SharedContents(Protocol):
    """A store that also answers a page content by its hash alone, whichever session stored it: what `track` reads
    on a worker's miss instead of embedding the page again (another worker embedded it; MiniLM: ~30 ms of CPU).

    The hash is SHA-256 of the page's title and text (`Event.content_hash`), so only a caller that holds that text
    can name it, and what comes back (the text's head, its vector and terms) is worked out from that text alone: it
    tells the caller nothing it did not send, except that some session read the same page within the TTL — which a
    worker's own page cache already shows by answering faster. Erase is unchanged: a content goes when the last
    session holding it does."""

    def shared_content(self, digest: str) -> PageContent | None: ...


@dataclass
class _Session:
    events: deque[Event]
    last_seen: float
    event_ids: set[str] = field(default_factory=set)
    intent: deque[Event] = field(default_factory=deque)  # the intent events of `events`, same order
    seen: Counter[str] = field(default_factory=Counter)  # seen key -> how many held events carry it
    refs: Counter[str] = field(default_factory=Counter)  # content hash -> how many held events refer to it


class InMemorySessionStore:
    """A thread-safe, TTL-expiring, LRU-capped dict of sessions (the embedded default)."""

    def __init__(self, settings: SessionSettings | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or SessionSettings()
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        # content hash -> (content, ids of the sessions holding it): shared by sessions that read the same page
        self._contents: dict[str, tuple[PageContent, set[str]]] = {}
        self._lock = threading.RLock()

    def _drop(self, session_id: str) -> bool:
        sess = self._sessions.pop(session_id, None)
        if sess is None:
            return False
        for digest in sess.refs:
            self._release(session_id, digest)
        return True

    def _release(self, session_id: str, digest: str) -> None:
        held = self._contents.get(digest)
        if held is not None:
            held[1].discard(session_id)
            if not held[1]:
                del self._contents[digest]

    def _live(self, session_id: str, now: float) -> _Session | None:
        sess = self._sessions.get(session_id)
        if sess is None:
            return None
        if now - sess.last_seen > self.settings.ttl_seconds:
            self._drop(session_id)
            return None
        return sess

    def _expire_oldest(self, now: float) -> None:
        # OrderedDict is in LRU order, so expired sessions sit at the front.
        while self._sessions:
            sid, sess = next(iter(self._sessions.items()))
            if now - sess.last_seen <= self.settings.ttl_seconds:
                break
            self._drop(sid)

    def append(self, event: Event, content: PageContent | None = None) -> bool:
        digest = content_digest(event) if content is not None else None
        now = self._clock()
        with self._lock:
            self._expire_oldest(now)
            sess = self._live(event.session_id, now)
            if sess is None:
                sess = _Session(events=deque(), last_seen=now)
                self._sessions[event.session_id] = sess
                while len(self._sessions) > self.settings.max_sessions:
                    self._drop(next(iter(self._sessions)))
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
                self._forget_oldest(event.session_id, sess)
            sess.events.append(event)
            sess.event_ids.add(event.event_id)
            if event.kind in INTENT_KINDS:
                sess.intent.append(event)
            sess.seen.update(event.seen_keys())
            if content is not None and digest is not None:
                sess.refs[digest] += 1
                held = self._contents.setdefault(digest, (content, set()))
                held[1].add(event.session_id)
            sess.last_seen = now
            self._sessions.move_to_end(event.session_id)
            return True

    def _forget_oldest(self, session_id: str, sess: _Session) -> None:
        dropped = sess.events.popleft()
        sess.event_ids.discard(dropped.event_id)
        if sess.intent and sess.intent[0] is dropped:
            sess.intent.popleft()
        sess.seen.subtract(dropped.seen_keys())
        for key in dropped.seen_keys():
            if sess.seen[key] <= 0:
                del sess.seen[key]
        digest = dropped.content_ref
        if digest is not None and digest in sess.refs:
            sess.refs[digest] -= 1
            if sess.refs[digest] <= 0:
                del sess.refs[digest]
                self._release(session_id, digest)

    def _touched(self, session_id: str) -> _Session | None:
        now = self._clock()
        sess = self._live(session_id, now)
        if sess is not None:
            sess.last_seen = now
            self._sessions.move_to_end(session_id)
        return sess

    def read(self, session_id: str) -> list[Event]:
        with self._lock:
            sess = self._touched(session_id)
            return [] if sess is None else list(sess.events)

    def context(self, session_id: str, n: int) -> SessionContext:
        with self._lock:
            sess = self._touched(session_id)
            if sess is None:
                return SessionContext((), frozenset())
            start = max(len(sess.intent) - n, 0)
            return SessionContext(tuple(itertools.islice(sess.intent, start, None)), frozenset(sess.seen))

    def contents(self, session_id: str, digests: Sequence[str]) -> dict[str, PageContent]:
        with self._lock:
            sess = self._live(session_id, self._clock())
            if sess is None:
                return {}
            return {d: self._contents[d][0] for d in digests if d in sess.refs and d in self._contents}

    def shared_content(self, digest: str) -> PageContent | None:
        """The content stored under this hash by any live session (`SharedContents`)."""
        with self._lock:
            held = self._contents.get(digest)
            if held is None:
                return None
            now = self._clock()
            # a holder past its TTL is dropped by the next append's sweep; until then its content is not served
            if not any(self._live(sid, now) is not None for sid in list(held[1])):
                return None
            return held[0]

    def exists(self, session_id: str) -> bool:
        with self._lock:
            return self._live(session_id, self._clock()) is not None

    def erase(self, session_id: str) -> bool:
        with self._lock:
            return self._drop(session_id)

    def __len__(self) -> int:
        with self._lock:
            self._expire_oldest(self._clock())
            return len(self._sessions)


def id_digest(session_id: str) -> str:
    """What a shared store names a session by: 32 hex characters of SHA-256 of its id. A session id of the HTTP
    service is a bearer token, and whoever reads a Redis key, a Lua script's arguments (`MONITOR`, `SLOWLOG`) or a
    revocation entry should not be able to act as the visitor; the digest names the session without being the id.
    The Redis session store, rate-limit counters, revocations and LangGraph thread ids all use this one."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()[:32]


def content_digest(event: Event) -> str:
    """The hash a page content is stored under; InvalidEventError for content that comes without a slim event."""
    if event.content_ref is None:
        raise InvalidEventError(
            "page content is stored with the slim form of its event (Event.slim()), "
            "which names it by content_ref; this event carries its own text"
        )
    return event.content_ref


def _is_repeat(events: deque[Event], event: Event, window: float) -> bool:
    """A reload of the page just viewed is not a new signal."""
    if not events or window <= 0 or event.kind not in ("page_view", "article_open"):
        return False
    last = events[-1]
    return last.kind == event.kind and last.key == event.key and abs(event.ts - last.ts) <= window
