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
from collections.abc import Callable, Iterable, Sequence

from .events import Event
from .session_store import PageContent, SessionStore
from .ttl_cache import TTLCache

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
        # hash -> content, weighed in bytes (`_size`)
        self._data: TTLCache[str, PageContent] = TTLCache(
            max_items, max_weight=max_bytes, ttl_seconds=ttl_seconds, clock=clock
        )
        self._lock = threading.Lock()

    @property
    def max_items(self) -> int:
        return self._data.max_items

    @property
    def max_bytes(self) -> float | None:
        return self._data.max_weight

    @property
    def ttl_seconds(self) -> float | None:
        return self._data.ttl_seconds

    @property
    def bytes(self) -> float:
        """What the held entries weigh (`_size`)."""
        return self._data.weight

    def __len__(self) -> int:
        return len(self._data)

    def get(self, digest: str | None) -> PageContent | None:
        if digest is None:
            return None
        with self._lock:
            return self._data.get(digest)

    def put(self, digest: str, content: PageContent) -> None:
        size = _size(content)
        with self._lock:
            self._data.put(digest, content, size)

    def forget(self, digests: Iterable[str]) -> None:
        """Drop these pages (their session was erased)."""
        with self._lock:
            self._data.forget(digests)

    def for_events(
        self, store: SessionStore, session_id: str | None, events: Sequence[Event]
    ) -> dict[str, PageContent]:
        """The contents the events name (by `content_ref`), from here or else from the session's store. Those held
        here are read under one lock and at one clock reading (a long session names up to max_context_events)."""
        found: dict[str, PageContent] = {}
        missing: list[str] = []
        digests = list(dict.fromkeys(e.content_ref for e in events if e.content_ref is not None))
        with self._lock:
            held = self._data.get_many(digests)
        for digest, content in zip(digests, held):
            if content is None:
                missing.append(digest)
            else:
                found[digest] = content
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
