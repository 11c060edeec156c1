"""What each session's last suggestion resolved its context to, so that the next one resolves only the new events.

A suggestion reads the session's newest `max_context_events` intent events and turns each into a row: the KB
article it stands for (url look-ups), its vector (the index, the visitors' vector cache, or the page contents the
store holds), and for a stored page its text restored for BM25. With a full context that is ~20 rows of Python
look-ups on every request, most of what a long session cost over a 3-page one (bench/session_length.py). Between
two requests of one visitor the context changes by the events tracked in between, usually one: this memo keeps
the rows of the session's last suggestion by event, and the next suggestion copies those it still holds.

A row depends on the event (its kind, KB link and content hash, which are checked before a row is reused) and on
the KB (the owner drops every memo when articles change). Rows whose stored content had lapsed (embedded from
what the event kept) are not kept: the content may be stored again by another session.

Bounded like the other per-worker caches (`plugin.ttl_cache`): in sessions and in bytes, and lapsing the session
TTL after last use; erase drops the session's memo on the erasing worker at once.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .events import Event
from .lexical import TextKey
from .ttl_cache import TTLCache

__all__ = ["SessionRows", "Rows"]

_ROW_BYTES = 1000  # an Event object, its __dict__ and its strings (ids, url, title, hash), a row's tuple slots


@dataclass(frozen=True)
class Rows:
    """One suggestion's resolved context: `vectors` (L, D, read-only once memoised), the events as suggest() reads
    them (a stored page's text restored), their article ids (None off the KB), their BM25 names, and `held[i]`: row
    i may be reused."""

    vectors: np.ndarray
    signal: tuple[Event, ...]
    keys: tuple[str | None, ...]
    names: tuple[TextKey | None, ...]  # each row's name for BM25's cache (`SessionRecommender._text_key`)
    held: tuple[bool, ...]

    def index(self) -> dict[str, int]:
        return {e.event_id: i for i, (e, ok) in enumerate(zip(self.signal, self.held)) if ok}

    def weight(self) -> int:
        """What holding these rows keeps alive, in bytes, counted as if nothing else held it: the vectors, each
        restored text (the page-content cache may have dropped it since), and ~1 kB a row for the event and the
        strings around it (measured: a first bound that counted vectors only held ~3x its bytes in RSS)."""
        texts = sum(sys.getsizeof(e.text) for e in self.signal if e.text is not None)
        return self.vectors.nbytes + texts + _ROW_BYTES * len(self.signal)


def same_source(a: Event, b: Event) -> bool:
    """Whether two events resolve to the same row: what the resolution reads of them is equal (a visitor may choose
    event ids, and a store forgets an id once its event leaves the session). `b` may be a memo's row, whose text
    was restored: the resolution reads everything but the text."""
    return (
        a.ts == b.ts
        and a.kind == b.kind
        and a.content_ref == b.content_ref
        and a.article_id == b.article_id
        and a.url == b.url
        and a.query == b.query
    )


class SessionRows:
    """The last `Rows` of each recent session, by session id, with each memo's event index."""

    def __init__(
        self,
        max_sessions: int = 4096,
        *,
        max_bytes: int = 48 * 2**20,
        ttl_seconds: float | None = 1800.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # A full context of 20 384-d rows weighs ~75 kB with 16 restored 1.5 kB page texts (`Rows.weight`), ~115 kB
        # with 4,000-character ones: 48 MiB holds ~400-650 full sessions a worker, more short ones.
        self._data: TTLCache[str, tuple[Rows, dict[str, int]]] = TTLCache(
            max_sessions, max_weight=max_bytes, ttl_seconds=ttl_seconds, clock=clock
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, session_id: str) -> tuple[Rows, dict[str, int]] | None:
        with self._lock:
            return self._data.get(session_id)

    def put(self, session_id: str, rows: Rows) -> None:
        rows.vectors.flags.writeable = False  # shared with the suggestion that made it, and the next ones
        weight = rows.weight()
        with self._lock:
            self._data.put(session_id, (rows, rows.index()), weight)

    def forget(self, session_ids: Sequence[str]) -> None:
        with self._lock:
            self._data.forget(session_ids)

    def clear(self) -> None:
        """Every memo (the KB changed: a row's article, or whether a page is one, may have)."""
        with self._lock:
            self._data.clear()
