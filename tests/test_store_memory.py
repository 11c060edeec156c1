"""The in-memory store against the SessionStore contract."""

from __future__ import annotations

from store_contract import SessionStoreContract

from plugin import InMemorySessionStore


class TestInMemorySessionStore(SessionStoreContract):
    def make_store(self, settings, clock):
        return InMemorySessionStore(settings, clock=clock)
