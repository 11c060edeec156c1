"""Revoked session ids: an erased session's id must stop working everywhere, at once, for as long as its
signature would still verify.

A signed id is checked by signature alone (no shared table of issued ids), so erasing a session's data is not
enough: the id would still verify and name a fresh, empty session that anyone holding the old id could read
and write. `SignedSessionIds.forget` therefore records the id here with an expiry equal to the rest of its
signed lifetime; after that the signature check refuses it anyway and the entry can go.

Entries are SHA-256 digests of the id, never the id: the list itself holds no credential.
`InMemoryRevocations` serves one process; `RedisRevocations` keeps the list in the session store's Redis, so
every worker refuses an id that any worker revoked.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from plugin.redis_store import RedisGuard
from plugin.session_store import id_digest

__all__ = ["Revocations", "InMemoryRevocations", "RedisRevocations", "id_digest"]


class Revocations(Protocol):
    def revoke(self, session_id: str, ttl_seconds: float) -> None:
        """Refuse this id for the next ttl_seconds."""
        ...

    def is_revoked(self, session_id: str) -> bool: ...


class InMemoryRevocations:
    """Revoked ids of this process, each dropped when its expiry passes."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[str, float] = {}
        self._expiries: list[tuple[float, str]] = []  # heap, to drop expired entries in order
        self._clock = clock
        self._lock = threading.Lock()

    def revoke(self, session_id: str, ttl_seconds: float) -> None:
        now = self._clock()
        key = id_digest(session_id)
        with self._lock:
            until = max(self._until.get(key, 0.0), now + max(ttl_seconds, 0.0))
            self._until[key] = until
            heapq.heappush(self._expiries, (until, key))
            while self._expiries and self._expiries[0][0] <= now:
                _, old = heapq.heappop(self._expiries)
                if self._until.get(old, float("inf")) <= now:
                    del self._until[old]

    def is_revoked(self, session_id: str) -> bool:
        until = self._until.get(id_digest(session_id))
        return until is not None and until > self._clock()

    def __len__(self) -> int:
        return len(self._until)


class RedisRevocations:
    """Revoked ids in Redis (`<prefix><digest>` with a matching expiry), shared by all workers."""

    def __init__(
        self, client: Any, *, prefix: str = "session-suggest:revoked:", guard: RedisGuard | None = None
    ) -> None:
        self._client = client
        self._prefix = prefix
        # Redis unreachable raises StoreUnavailableError (503): an id that cannot be checked is refused, never
        # taken as not erased
        self._guard = guard if guard is not None else RedisGuard()

    def revoke(self, session_id: str, ttl_seconds: float) -> None:
        key = self._prefix + id_digest(session_id)
        self._guard(self._client.set, key, b"1", px=max(1, int(ttl_seconds * 1000)))

    def is_revoked(self, session_id: str) -> bool:
        return bool(self._guard(self._client.exists, self._prefix + id_digest(session_id)))
