"""The SessionStore contract: one mixin, run against every implementation (see test_store_*.py).

A subclass provides `make_store(settings, clock)`; `clock` is a `FakeClock` the tests advance to cross
the TTL without sleeping, so implementations must take their notion of "now" from it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from plugin import Event, InvalidEventError, LimitExceededError, SessionSettings, SessionStore, make_event
from plugin.session_store import PageContent, SessionContext, SharedContents


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def view(sid: str, n: int, ts: float | None = None, **kw) -> Event:
    return make_event(
        sid,
        "page_view",
        url=f"https://site.test/p{n}",
        title=f"Page {n}",
        ts=float(n) * 100 if ts is None else ts,
        **kw,
    )


class SessionStoreContract:
    """Behaviour every SessionStore must share. Override `make_store`."""

    def make_store(self, settings: SessionSettings, clock: Callable[[], float]) -> SessionStore:
        raise NotImplementedError

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    def store_with(self, clock: FakeClock, **settings) -> SessionStore:
        return self.make_store(SessionSettings(**settings), clock)

    # ------------------------------------------------------------ basics

    def test_unknown_session_is_empty(self, clock):
        store = self.store_with(clock)
        assert store.read("nobody") == []
        assert not store.exists("nobody")
        assert len(store) == 0
        assert store.erase("nobody") is False

    def test_append_then_read_round_trips_every_field_in_order(self, clock):
        store = self.store_with(clock)
        events = [
            make_event(
                "s1",
                "page_view",
                url="https://site.test/ü",
                title="Grüße — ünïcode ✓",
                text="body text",
                ts=1.5,
                meta={"lang": "de", "n": 3},
            ),
            make_event("s1", "search", query="how to json", ts=2.25),
            make_event("s1", "suggestion_click", article_id="a-1", position=2, ts=3.0),
        ]
        assert all(store.append(e) for e in events)
        assert store.read("s1") == events
        assert store.exists("s1")
        assert len(store) == 1

    def test_sessions_are_isolated(self, clock):
        store = self.store_with(clock)
        store.append(view("alice", 1))
        store.append(view("bob", 2))
        assert [e.url for e in store.read("alice")] == ["https://site.test/p1"]
        assert [e.url for e in store.read("bob")] == ["https://site.test/p2"]
        assert len(store) == 2

    @pytest.mark.parametrize("sid", ["a:b", "ids:a", "{tag}", "ev:seen", "sëssion ☃", "x" * 300])
    def test_odd_session_ids_do_not_collide(self, clock, sid):
        store = self.store_with(clock)
        store.append(view("a", 1))
        store.append(view(sid, 2))
        assert [e.session_id for e in store.read(sid)] == [sid]
        assert [e.session_id for e in store.read("a")] == ["a"]

    # ------------------------------------------------------------ dedupe

    def test_duplicate_event_id_is_ignored(self, clock):
        store = self.store_with(clock)
        e = view("s", 1)
        assert store.append(e) is True
        assert store.append(e) is False
        assert store.append(view("s", 2, event_id=e.event_id)) is False
        assert store.read("s") == [e]

    def test_reload_within_window_is_ignored(self, clock):
        store = self.store_with(clock, dedupe_window_seconds=2.0)
        assert store.append(make_event("s", "page_view", url="https://site.test/a", ts=10.0))
        assert not store.append(make_event("s", "page_view", url="https://site.test/a", ts=11.5))
        assert store.append(make_event("s", "page_view", url="https://site.test/a", ts=20.0))
        # searches and other pages are never reloads
        assert store.append(make_event("s", "search", query="q", ts=20.1))
        assert store.append(make_event("s", "search", query="q", ts=20.2))
        assert len(store.read("s")) == 4

    def test_zero_window_disables_reload_dedupe(self, clock):
        store = self.store_with(clock, dedupe_window_seconds=0)
        assert store.append(make_event("s", "page_view", url="https://site.test/a", ts=10.0))
        assert store.append(make_event("s", "page_view", url="https://site.test/a", ts=10.0))

    # ------------------------------------------------------------ limits

    def test_full_session_drops_oldest(self, clock):
        store = self.store_with(clock, max_events=3, overflow="drop_oldest")
        events = [view("s", i) for i in range(5)]
        assert all(store.append(e) for e in events)
        assert store.read("s") == events[-3:]
        # a dropped event's id is forgotten with it
        assert store.append(events[0]) is True
        assert store.read("s") == [*events[-2:], events[0]]

    def test_full_session_rejects_and_keeps_earlier_events(self, clock):
        store = self.store_with(clock, max_events=3, overflow="reject")
        events = [view("s", i) for i in range(3)]
        for e in events:
            store.append(e)
        with pytest.raises(LimitExceededError, match="maximum of 3 events"):
            store.append(view("s", 9))
        assert store.read("s") == events
        assert store.append(view("other", 1))  # only that session is full

    def test_least_recently_used_session_is_evicted(self, clock):
        store = self.store_with(clock, max_sessions=3)
        for i, sid in enumerate("abc"):
            store.append(view(sid, i))
            clock.advance(1)
        store.read("a")  # a is now more recent than b
        clock.advance(1)
        store.append(view("d", 9))
        assert not store.exists("b")
        assert all(store.exists(s) for s in "acd")
        assert len(store) == 3

    # ------------------------------------------------------------ expiry and erase

    def test_idle_session_expires_after_ttl(self, clock):
        store = self.store_with(clock, ttl_seconds=60)
        store.append(view("s", 1))
        clock.advance(59)
        assert store.exists("s")
        clock.advance(2)
        assert not store.exists("s")
        assert store.read("s") == []
        assert len(store) == 0

    def test_activity_keeps_a_session_alive(self, clock):
        store = self.store_with(clock, ttl_seconds=60)
        store.append(view("s", 1))
        for i in range(2, 6):
            clock.advance(45)
            store.append(view("s", i))
        clock.advance(45)
        assert len(store.read("s")) == 5  # reading is activity too
        clock.advance(45)
        assert store.exists("s")

    def test_expired_session_starts_fresh(self, clock):
        store = self.store_with(clock, ttl_seconds=60)
        e = view("s", 1)
        store.append(e)
        clock.advance(61)
        assert store.append(e) is True  # its id was forgotten with the session
        assert store.read("s") == [e]

    def test_expired_sessions_are_not_counted(self, clock):
        store = self.store_with(clock, ttl_seconds=60)
        store.append(view("old", 1))
        clock.advance(50)
        store.append(view("new", 2))
        clock.advance(20)
        assert len(store) == 1

    def test_default_ttl_is_thirty_minutes(self, clock):
        store = self.store_with(clock)
        store.append(view("s", 1))
        clock.advance(29 * 60)
        assert store.exists("s")
        clock.advance(31 * 60 + 1)
        assert not store.exists("s")

    def test_erase_forgets_only_that_session(self, clock):
        store = self.store_with(clock)
        e = view("s", 1)
        store.append(e)
        store.append(view("keep", 1))
        assert store.erase("s") is True
        assert store.erase("s") is False
        assert store.read("s") == [] and not store.exists("s")
        assert len(store.read("keep")) == 1
        assert store.append(e) is True  # a new session under that id starts empty
        assert store.read("s") == [e]

    # ------------------------------------------------------------ concurrency

    def test_concurrent_appends_lose_and_duplicate_nothing(self, clock):
        store = self.store_with(clock, max_events=10_000, dedupe_window_seconds=0)
        n_threads, per_thread = 4, 150
        shared = [view("shared", i) for i in range(n_threads * per_thread)]
        barrier = threading.Barrier(n_threads)
        results: list[list[bool]] = [[] for _ in range(n_threads)]

        def work(t: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                results[t].append(store.append(shared[t * per_thread + i]))
                results[t].append(store.append(shared[t * per_thread + i]))  # a retried delivery
                store.append(view(f"own-{t}", i))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        got = store.read("shared")
        assert sorted(e.event_id for e in got) == sorted(e.event_id for e in shared)
        assert sum(sum(r) for r in results) == len(shared)
        assert all(len(store.read(f"own-{t}")) == per_thread for t in range(n_threads))

    # ------------------------------------------------------------ what a suggestion reads

    def test_context_is_the_newest_intent_events_and_every_seen_visit(self, clock):
        store = self.store_with(clock, dedupe_window_seconds=0)
        events = [view("s", i) for i in range(6)]
        events.insert(2, make_event("s", "suggestion_impression", article_id="shown", ts=250.0))
        events.insert(4, make_event("s", "search", query="how", ts=350.0))
        for e in events:
            store.append(e)
        ctx = store.context("s", 3)
        assert list(ctx.events) == [e for e in events if e.kind != "suggestion_impression"][-3:]
        assert ctx.seen == {f"u:https://site.test/p{i}" for i in range(6)}
        assert store.context("s", 100).events == tuple(e for e in events if e.kind != "suggestion_impression")
        assert store.context("nobody", 3) == SessionContext((), frozenset())

    def test_context_forgets_what_the_session_dropped(self, clock):
        store = self.store_with(clock, max_events=3, dedupe_window_seconds=0)
        events = [view("s", i) for i in range(3)] + [make_event("s", "suggestion_click", article_id="a-9", ts=999.0)]
        for e in events:
            store.append(e)
        ctx = store.context("s", 10)
        assert list(ctx.events) == events[1:]
        assert ctx.seen == {"u:https://site.test/p1", "u:https://site.test/p2", "a:a-9"}

    def test_context_is_what_the_full_read_gives(self, clock):
        # the chat path reads the whole session once and derives its context from that read
        store = self.store_with(clock, max_events=6, dedupe_window_seconds=0)
        events = [view("s", i) for i in range(4)]
        events.insert(1, make_event("s", "suggestion_impression", article_id="shown", ts=150.0))
        events.insert(3, make_event("s", "search", query="how", ts=250.0))
        events.append(make_event("s", "suggestion_click", article_id="a-9", ts=999.0))
        for e in events:
            store.append(e)
        assert len(store.read("s")) == 6  # the first view was dropped: its url is no longer seen
        for n in (1, 3, 100):
            assert SessionContext.from_events(store.read("s"), n) == store.context("s", n)
        assert "u:https://site.test/p0" not in SessionContext.from_events(store.read("s"), 3).seen

    def test_context_gives_back_any_text_exactly(self, clock):
        # urls, titles and queries carry quotes, backslashes, slashes, control characters and non-ASCII: the
        # context read must give each back as it was appended (the Redis store sends them as JSON arrays)
        store = self.store_with(clock, dedupe_window_seconds=0)
        odd = 'https://site.test/a"b\\c/d?q=é漢字🙂&x=\u0041'
        events = [
            make_event("s", "page_view", url=odd, title='t "quoted" \\ back/slash\ttab é', ts=1.0),
            make_event("s", "search", query='how do I "escape" ünïcödé? \\n', ts=2.0),
            make_event("s", "article_open", article_id='id "with" \\ odd/chars 漢', ts=3.0),
        ]
        for e in events:
            store.append(e)
        ctx = store.context("s", 10)
        assert list(ctx.events) == events
        assert ctx.seen == SessionContext.from_events(store.read("s"), 10).seen
        assert len(ctx.seen) == 2 and any(odd in k for k in ctx.seen)

    def test_context_of_a_session_with_searches_only_has_no_seen_keys(self, clock):
        store = self.store_with(clock, dedupe_window_seconds=0)
        store.append(make_event("s", "search", query="only a question", ts=1.0))
        ctx = store.context("s", 10)
        assert len(ctx.events) == 1 and ctx.seen == frozenset()

    def test_context_keeps_a_session_alive(self, clock):
        store = self.store_with(clock, ttl_seconds=60)
        store.append(view("s", 1))
        clock.advance(45)
        assert len(store.context("s", 5).events) == 1
        clock.advance(45)
        assert store.exists("s")

    # ------------------------------------------------------------ page contents

    def page(self, sid: str, n: int, text: str) -> tuple[Event, PageContent]:
        e = make_event(sid, "page_view", url=f"https://site.test/p{n}", title=f"Page {n}", text=text, ts=float(n))
        return e.slim(), PageContent(text[:50], np.arange(4, dtype=np.float32) + n)

    def test_contents_round_trip_for_the_session_that_stored_them(self, clock):
        store = self.store_with(clock)
        slim, content = self.page("s", 1, "a long page about backups")
        assert slim.text is None and slim.content_ref == slim.content_hash()
        assert store.append(slim, content)
        got = store.contents("s", [slim.content_ref, "0" * 64])
        assert list(got) == [slim.content_ref]
        assert got[slim.content_ref].text == content.text
        np.testing.assert_array_equal(got[slim.content_ref].vector, content.vector)
        assert store.contents("other", [slim.content_ref]) == {}  # not reachable through another session

    def test_contents_keep_their_terms_exactly(self, clock):
        """BM25's terms (`PageContent.terms`) come back as stored: absent, empty (a page of stop words) or words."""
        store = self.store_with(clock)
        stored = {}
        for n, terms in enumerate([None, "", "backups pg_dump wal é-accent"]):
            slim, content = self.page("s", n, f"page {n}")
            store.append(slim, PageContent(content.text, content.vector, terms))
            stored[slim.content_ref] = terms
        got = store.contents("s", list(stored))
        assert {d: c.terms for d, c in got.items()} == stored

    def test_contents_give_back_any_text_exactly(self, clock):
        # the Redis store sends contents as one JSON array: quotes, backslashes, slashes, control characters and
        # non-ASCII in a page's text and terms come back as they went in
        store = self.store_with(clock)
        odd = 'a "quoted" \\ back/slash\ttab\nnew line \x01 é漢字🙂 \u2028 end'
        slim, content = self.page("s", 1, odd)
        store.append(slim, PageContent(odd, content.vector, 'é漢字 back slash \\ "x"'))
        got = store.contents("s", [slim.content_ref])[slim.content_ref]
        assert got.text == odd and got.terms == 'é漢字 back slash \\ "x"'
        np.testing.assert_array_equal(got.vector, content.vector)
        assert store.contents("s", ["0" * 64]) == {} and store.contents("nobody", [slim.content_ref]) == {}

    def test_content_needs_a_slim_event(self, clock):
        store = self.store_with(clock)
        full = make_event("s", "page_view", url="https://site.test/p", text="body", ts=1.0)
        with pytest.raises(InvalidEventError, match="slim"):
            store.append(full, PageContent("body"))
        assert store.read("s") == []

    def test_erase_removes_contents_only_that_session_held(self, clock):
        store = self.store_with(clock)
        shared_a, content = self.page("a", 1, "the same page")
        shared_b, _ = self.page("b", 1, "the same page")
        own, own_content = self.page("a", 2, "a page only a read")
        store.append(shared_a, content)
        store.append(own, own_content)
        store.append(shared_b, content)
        assert store.erase("a")
        assert store.contents("a", [shared_a.content_ref, own.content_ref]) == {}
        assert list(store.contents("b", [shared_b.content_ref])) == [shared_b.content_ref]
        store.append(replace(own, session_id="b", event_id="x"))
        # "b" now names the hash too, but never stored it: the erased session's own content is gone
        assert store.contents("b", [own.content_ref]) == {}
        assert store.erase("b")
        assert store.contents("b", [shared_b.content_ref]) == {}

    def test_shared_content_answers_by_hash_while_a_live_session_holds_it(self, clock):
        # what a worker reads instead of embedding a page another worker embedded (`SharedContents`)
        store = self.store_with(clock, ttl_seconds=60)
        assert isinstance(store, SharedContents)
        a, content = self.page("a", 1, "the same page")
        b, _ = self.page("b", 1, "the same page")
        assert store.shared_content(a.content_ref) is None  # nobody read it yet
        store.append(a, PageContent(content.text, content.vector, "same page"))
        got = store.shared_content(a.content_ref)
        assert got is not None and got.text == content.text and got.terms == "same page"
        np.testing.assert_array_equal(got.vector, content.vector)
        assert store.shared_content("0" * 64) is None
        store.append(b, content)
        assert store.erase("a") and store.shared_content(a.content_ref) is not None  # "b" holds it too
        assert store.erase("b") and store.shared_content(a.content_ref) is None  # erase means gone
        store.append(a, content)
        clock.advance(61)  # its only holder expired
        assert store.shared_content(a.content_ref) is None

    def test_dropped_event_releases_its_content(self, clock):
        store = self.store_with(clock, max_events=2, dedupe_window_seconds=0)
        first, content = self.page("s", 1, "first page")
        store.append(first, content)
        store.append(view("s", 2))
        assert store.contents("s", [first.content_ref])
        store.append(view("s", 3))  # drops the first page
        assert store.contents("s", [first.content_ref]) == {}

    def test_a_reading_session_keeps_a_shared_page_after_the_other_reader_expires(self, clock):
        store = self.store_with(clock, ttl_seconds=60)
        a, content = self.page("a", 1, "the same page")
        b, _ = self.page("b", 1, "the same page")
        store.append(a, content)
        store.append(b, content)
        for _ in range(12):  # b reads every 10 s for two minutes; a, idle, expires at 60 s
            clock.advance(10)
            assert len(store.context("b", 5).events) == 1
            store.append(view("c", int(clock()), ts=clock()))  # another visitor's append sweeps expired sessions
        assert not store.exists("a")
        assert list(store.contents("b", [b.content_ref])) == [b.content_ref]

    def test_expired_session_contents_are_gone(self, clock):
        store = self.store_with(clock, ttl_seconds=60)
        slim, content = self.page("s", 1, "a page")
        store.append(slim, content)
        clock.advance(61)
        assert store.contents("s", [slim.content_ref]) == {}
        store.append(view("s", 5))  # a new session under that id starts without it
        assert store.contents("s", [slim.content_ref]) == {}
