"""Page contents by hash, in front of the session store: what a suggestion needs of a page outside the KB.

A session's events keep only a hash of their page's text (`Event.slim`); the text's head and its embedding live
once per hash in the session store (`SessionStore.append(event, content)`), and this process keeps the ones it
used recently. A suggestion then reads a bounded amount whatever the pages held, and a page tracked by another
worker costs one extra store read (not an embedding) the first time this worker meets it.

Erase: the worker that erases a session drops that session's pages from its cache at once; every worker's entries
also lapse `ttl_seconds` (the session TTL) after their last use, so a page only an erased session read is gone from
every worker's memory within one TTL, as it is from the store at once.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from .events import Event
from .session_store import PageContent, SessionStore

__all__ = ["PageContents"]


class PageContents:
    """Bounded LRU of `PageContent` by content hash; misses are read from the session store in one call.

    Bounded in entries (`max_items`) and in the bytes their texts, BM25 terms and vectors hold (`max_bytes`): an
    entry is ~5 kB for a 1.3 kB page and up to ~9.5 kB for a 4,000-character one (its terms are about as long as
    its text), so 4,096 entries alone could reach ~39 MB a worker; 24 MiB keeps them near the ~22 MB they were
    bounded by before the terms were stored."""

    def __init__(
        self,
        max_items: int = 4096,
        *,
        max_bytes: int = 24 * 2**20,
        ttl_seconds: float = 1800.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        # hash -> (content, last use, its bytes)
        self._data: OrderedDict[str, tuple[PageContent, float, int]] = OrderedDict()
        self.bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, digest: str | None) -> PageContent | None:
        if digest is None:
            return None
        now = self._clock()
        with self._lock:
            held = self._data.get(digest)
            if held is None:
                return None
            if now - held[1] > self.ttl_seconds:
                self._pop(digest)
                return None
            self._data[digest] = (held[0], now, held[2])
            self._data.move_to_end(digest)
            return held[0]

    def put(self, digest: str, content: PageContent) -> None:
        now = self._clock()
        size = _size(content)
        with self._lock:
            self._pop(digest)
            self._data[digest] = (content, now, size)
            self.bytes += size
            # least recently used first: evict past the bounds, and drop what has lapsed
            while self._data and (
                len(self._data) > self.max_items
                or self.bytes > self.max_bytes
                or now - next(iter(self._data.values()))[1] > self.ttl_seconds
            ):
                self.bytes -= self._data.popitem(last=False)[1][2]

    def forget(self, digests: Iterable[str]) -> None:
        """Drop these pages (their session was erased)."""
        with self._lock:
            for digest in digests:
                self._pop(digest)

    def _pop(self, digest: str) -> None:
        held = self._data.pop(digest, None)
        if held is not None:
            self.bytes -= held[2]

    def for_events(
        self, store: SessionStore, session_id: str | None, events: Sequence[Event]
    ) -> dict[str, PageContent]:
        """The contents the events name (by `content_ref`), from here or else from the session's store. Those held
        here are read under one lock and at one clock reading (a long session names up to max_context_events)."""
        found: dict[str, PageContent] = {}
        missing: list[str] = []
        now = self._clock()
        with self._lock:
            for digest in dict.fromkeys(e.content_ref for e in events if e.content_ref is not None):
                held = self._data.get(digest)
                if held is None or now - held[1] > self.ttl_seconds:
                    if held is not None:
                        self._pop(digest)
                    missing.append(digest)
                    continue
                self._data[digest] = (held[0], now, held[2])
                self._data.move_to_end(digest)
                found[digest] = held[0]
        if missing and session_id is not None:
            for digest, content in store.contents(session_id, missing).items():
                self.put(digest, content)
                found[digest] = content
        return found


def _size(content: PageContent) -> int:
    """What an entry holds, in bytes: its text and terms as Python stores them, its vector, and ~300 bytes of
    objects around them."""
    vector = content.vector.nbytes if content.vector is not None else 0
    return sys.getsizeof(content.text) + sys.getsizeof(content.terms or "") + vector + 300
