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

A memo is read back only by the recommender that wrote it, with the KB it had then (`owner`: a token the
recommender replaces when its articles change): a memo passed to several recommenders (`session_rows=`, which a
`ReloadingRecommender` hands to every version it loads) or a KB change during a suggestion cannot serve rows of
another KB. A session erased on this worker is not memoised again for `_ERASED_SECONDS`: a suggestion that read its
context before the erase may finish after it.

Beside the rows, the questions each session asked lately on this worker (`asked`): a question is no event, so
only this note lets an erase find the vectors and BM25 scores the caches hold for it.

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
from .session_store import id_digest
from .ttl_cache import TTLCache

__all__ = ["SessionRows", "Rows", "row_bytes"]

_ROW_BYTES = 1000  # an Event object, its __dict__ and its strings (ids, url, title, hash), a row's tuple slots
# what a visitor sizes (up to 2,048 characters of url, 500 of title and query, 4 bytes a character outside Latin-1):
# counted beyond this much a row (~13 kB a row at most, not the 1 kB above)
_ROW_STRINGS = 400
# a suggestion's context read to its memo write takes milliseconds; an erase here refuses memos of the session for
# this long (a request in flight that read the context before the erase)
_ERASED_SECONDS = 60.0
_QUESTIONS = 8  # a session's questions kept for erase (`SessionRows.asked`)
_ASKED_BYTES = 8 * 2**20  # all sessions' questions together, a worker


@dataclass(frozen=True)
class Rows:
    """One suggestion's resolved context: `vectors` (L, D, read-only once memoised), the events as suggest() reads
    them (a stored page's text restored), their article ids (None off the KB), their BM25 names, `held[i]`: row
    i may be reused, and `sizes[i]`: what row i's event keeps alive (`row_bytes`, copied with a reused row)."""

    vectors: np.ndarray
    signal: tuple[Event, ...]
    keys: tuple[str | None, ...]
    names: tuple[TextKey | None, ...]  # each row's name for BM25's cache (`SessionRecommender._text_key`)
    held: tuple[bool, ...]
    sizes: tuple[int, ...]

    def index(self) -> dict[str, int]:
        return {e.event_id: i for i, (e, ok) in enumerate(zip(self.signal, self.held)) if ok}

    def weight(self) -> int:
        """What holding these rows keeps alive, in bytes, counted as if nothing else held it: the vectors and each
        row's event (`row_bytes`; measured: a first bound that counted vectors only held ~3x its bytes in RSS)."""
        return self.vectors.nbytes + sum(self.sizes)


def row_bytes(event: Event) -> int:
    """What a memoised row's event keeps alive: its restored text (the page-content cache may have dropped it since),
    ~1 kB for the event and the strings around it, and what a visitor's url, title, query and article id take
    beyond the usual (up to ~13 kB a row in non-Latin-1 text, which a flat 1 kB left uncounted)."""
    size = sys.getsizeof
    text = size(event.text) if event.text is not None else 0
    # (getsizeof(None) is 16: absent fields are within the allowance)
    strings = size(event.url) + size(event.title) + size(event.query) + size(event.article_id)
    return text + _ROW_BYTES + max(0, strings - _ROW_STRINGS)


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
    """The last `Rows` of each recent session, by session id, with each memo's event index and its owner."""

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
        self._data: TTLCache[str, tuple[Rows, dict[str, int], object]] = TTLCache(
            max_sessions, max_weight=max_bytes, ttl_seconds=ttl_seconds, clock=clock
        )
        self.max_bytes = max_bytes
        # digests of the sessions erased here lately (`id_digest`: not the ids, which are bearer tokens), with the
        # time of the erase (a look-up keeps an entry in the cache, not the session marked)
        self._erased: TTLCache[str, float] = TTLCache(max_sessions, ttl_seconds=_ERASED_SECONDS, clock=clock)
        # the questions each session asked here lately (`suggest(query=…)`: a chat message, a `?query=`), newest
        # last, so that an erase finds their vectors and BM25 scores in this worker's caches, which keep them as long
        # (a question is no event: the store does not hold it). Not dropped on KB changes, as those caches are not.
        self._asked: TTLCache[str, tuple[str, ...]] = TTLCache(
            max_sessions, max_weight=_ASKED_BYTES, ttl_seconds=ttl_seconds, clock=clock
        )
        self._clock = clock
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, session_id: str, owner: object | None = None) -> tuple[Rows, dict[str, int]] | None:
        """The session's memo with its event index; with `owner`, only one that owner wrote."""
        with self._lock:
            held = self._data.get(session_id)
        if held is None or (owner is not None and held[2] is not owner):
            return None
        return held[0], held[1]

    def put(self, session_id: str, rows: Rows, owner: object | None = None) -> None:
        rows.vectors.flags.writeable = False  # shared with the suggestion that made it, and the next ones
        weight = rows.weight()
        with self._lock:
            if weight > self.max_bytes or self._erased_lately(session_id):
                # (an entry over the whole bound would be kept alone: the cache keeps its newest entry)
                self._data.discard(session_id)
                return
            self._data.put(session_id, (rows, rows.index(), owner), weight)

    def erased(self, session_id: str) -> bool:
        """Whether the session was erased here within the last `_ERASED_SECONDS`."""
        if not self._erased:  # (nearly always: no lock, no hash)
            return False
        with self._lock:
            return self._erased_lately(session_id)

    def _erased_lately(self, session_id: str) -> bool:
        if not self._erased:
            return False
        at = self._erased.get(id_digest(session_id))
        return at is not None and self._clock() - at <= _ERASED_SECONDS

    def asked(self, session_id: str, question: str) -> bool:
        """Note that the session asked this question here (its last `_QUESTIONS` are kept); False, noting nothing,
        when the session was erased here lately (the caller then drops what the question left in the caches)."""
        with self._lock:
            if self._erased_lately(session_id):
                return False
            held = tuple(q for q in self._asked.get(session_id) or () if q != question)
            kept = (*held, question)[-_QUESTIONS:]
            self._asked.put(session_id, kept, sum(sys.getsizeof(q) for q in kept))
            return True

    def questions(self, session_id: str) -> tuple[str, ...]:
        """The questions the session asked here lately (`asked`), oldest first."""
        with self._lock:
            return self._asked.get(session_id) or ()

    def forget(self, session_ids: Sequence[str]) -> None:
        """Drop these sessions' memos and questions (erased), and write none for them for a while."""
        with self._lock:
            self._data.forget(session_ids)
            self._asked.forget(session_ids)
            now = self._clock()
            for sid in session_ids:
                self._erased.put(id_digest(sid), now)

    def clear(self) -> None:
        """Every memo (the KB changed: a row's article, or whether a page is one, may have)."""
        with self._lock:
            self._data.clear()
