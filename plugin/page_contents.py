"""Page contents by hash, in front of the session store: what a suggestion needs of a page outside the KB.

A session's events keep only a hash of their page's text (`Event.slim`); the text's head and its embedding live
once per hash in the session store (`SessionStore.append(event, content)`), and this process keeps the ones it
used recently. A suggestion then reads a bounded amount whatever the pages held, and a page tracked by another
worker costs one extra store read (not an embedding) the first time this worker meets it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from .events import Event
from .session_store import PageContent, SessionStore

__all__ = ["PageContents"]


class PageContents:
    """Bounded LRU of `PageContent` by content hash; misses are read from the session store in one call."""

    def __init__(self, max_items: int = 10_000) -> None:
        self.max_items = max_items
        self._data: OrderedDict[str, PageContent] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, digest: str | None) -> PageContent | None:
        if digest is None:
            return None
        with self._lock:
            content = self._data.get(digest)
            if content is not None:
                self._data.move_to_end(digest)
            return content

    def put(self, digest: str, content: PageContent) -> None:
        with self._lock:
            self._data[digest] = content
            self._data.move_to_end(digest)
            while len(self._data) > self.max_items:
                self._data.popitem(last=False)

    def for_events(self, store: SessionStore, session_id: str | None, events: Sequence[Event]) -> dict[str, PageContent]:
        """The contents the events name (by `content_ref`), from here or else from the session's store."""
        found: dict[str, PageContent] = {}
        missing: list[str] = []
        for e in events:
            if e.content_ref is None or e.content_ref in found:
                continue
            content = self.get(e.content_ref)
            if content is not None:
                found[e.content_ref] = content
            else:
                missing.append(e.content_ref)
        if missing and session_id is not None:
            for digest, content in store.contents(session_id, list(dict.fromkeys(missing))).items():
                self.put(digest, content)
                found[digest] = content
        return found
