"""One bounded, expiring LRU for the per-worker caches of what visitors read: page vectors (`EmbeddingCache`), page
contents (`PageContents`) and BM25's scores and tokens of read texts (`LexicalIndex`).

Each of these holds traces of a session (a vector of its page, the scores of its words) on every worker that
served it, and only the worker that erases a session can drop them at once. So an entry also lapses `ttl_seconds`
after its last use (the session TTL): a page only an erased session read is gone from every worker's memory within
one TTL, as the session is from the store. Entries are also bounded in number (`max_items`) and, where their sizes
differ (page texts, one score per article), in total weight (`max_weight`: bytes, floats).

Not thread-safe: each owner holds its own lock around it (a suggestion reads several entries under one lock and
one clock reading).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Generic, TypeVar

from .errors import ConfigError

__all__ = ["TTLCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """Least recently used entries, each dropped `ttl_seconds` after its last `get` or `put` (None: never), past
    `max_items` entries, or (oldest first, the newest always kept) past `max_weight` in the weights given to `put`.

    A lapsed entry is a miss: the least recently used lapse first, so each call drops the lapsed ones from the
    front of the order and stops at the first fresh one. With no ttl the clock is never read."""

    def __init__(
        self,
        max_items: int,
        *,
        max_weight: float | None = None,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_items < 1:
            raise ConfigError(f"max_items must be at least 1, got {max_items}")
        if ttl_seconds is not None and not ttl_seconds > 0:
            raise ConfigError(f"ttl_seconds must be positive or None (no expiry), got {ttl_seconds}")
        self.max_items = max_items
        self.max_weight = max_weight
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._data: OrderedDict[K, list] = OrderedDict()  # key -> [value, last use, weight], least recent first
        self.weight: float = 0

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def now(self) -> float:
        """The clock reading to pass to several calls at once (0.0 without a ttl: the clock is not read)."""
        return self._clock() if self.ttl_seconds is not None else 0.0

    def get(self, key: K, now: float | None = None) -> V | None:
        """The value, marked as just used; None when absent or lapsed."""
        ttl = self.ttl_seconds
        if ttl is None:
            entry = self._data.get(key)
            if entry is None:
                return None
            self._data.move_to_end(key)
            return entry[0]
        t = self._clock() if now is None else now
        self._drop_lapsed(t)
        return self._use(key, t, ttl)

    def get_many(self, keys: Iterable[K], now: float | None = None) -> list[V | None]:
        """`get` of each key at one clock reading, in order: what has lapsed is dropped once, not before each key
        (a long session's suggestion reads ~20 entries of one cache)."""
        ttl = self.ttl_seconds
        if ttl is None:
            return [self.get(key) for key in keys]
        t = self._clock() if now is None else now
        self._drop_lapsed(t)  # the front is fresh from here on: each entry left was used within ttl of t
        return [self._use(key, t, ttl) for key in keys]

    def _use(self, key: K, t: float, ttl: float) -> V | None:
        """The entry's value marked as used at t, after the lapsed front was dropped; None when absent."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if t - entry[1] > ttl:  # only with a clock that went back: the front was fresh
            self.discard(key)
            return None
        entry[1] = t
        self._data.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, weight: float = 0, now: float | None = None) -> None:
        """Keep the value as the most recently used (replacing any under the key), then drop what has lapsed and
        what is past the bounds."""
        t = (self._clock() if now is None else now) if self.ttl_seconds is not None else 0.0
        self.discard(key)
        self._data[key] = [value, t, weight]
        self.weight += weight
        self._drop_lapsed(t)
        data = self._data
        while len(data) > self.max_items or (
            self.max_weight is not None and self.weight > self.max_weight and len(data) > 1
        ):
            self.weight -= data.popitem(last=False)[1][2]

    def discard(self, key: K) -> None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self.weight -= entry[2]

    def forget(self, keys: Iterable[K]) -> None:
        """Drop these entries (their session was erased)."""
        for key in keys:
            self.discard(key)

    def clear(self) -> None:
        self._data.clear()
        self.weight = 0

    def items(self) -> Iterator[tuple[K, V]]:
        """(key, value) pairs, least recently used first; lapsed ones included (for saving a cache with no ttl)."""
        return ((k, e[0]) for k, e in self._data.items())

    def _drop_lapsed(self, now: float) -> None:
        ttl = self.ttl_seconds
        if ttl is None:
            return
        data = self._data
        while data:
            entry = next(iter(data.values()))
            if now - entry[1] <= ttl:
                return
            self.weight -= data.popitem(last=False)[1][2]
