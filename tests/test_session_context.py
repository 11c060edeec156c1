"""A suggestion reads a bounded part of the session (its newest intent events and seen keys) and page texts by
hash: the answer must be the one the whole session with its texts gave, on both stores."""

from __future__ import annotations

import json

import pytest
from redis_server import redis_prefix, redis_url  # noqa: F401  (fixtures)

from plugin import Event, InvalidEventError, SessionRecommender, SessionSettings, SuggestSettings, make_event
from plugin.page_contents import PageContents
from plugin.request import SuggestRequest


def _reading(rec: SessionRecommender, sid: str) -> list:
    """A long session: KB pages, pages off the KB with long texts, searches, impressions; returns the full events."""
    full = []
    for i in range(30):
        if i % 5 == 0:
            e = rec.track(sid, "page_view", url="https://kb.test/" + ("json", "pickle", "socket")[i % 3])
        elif i % 7 == 0:
            e = rec.track(sid, "search", query=f"serialize objects {i}")
        else:
            e = rec.track(
                sid,
                "page_view",
                url=f"https://blog.test/{i}",
                title=f"Notes {i}",
                text=("serialize pickle objects binary " if i % 2 else "socket tcp network ") * 400 + str(i),
            )
        rec.track(sid, "suggestion_impression", article_id="ser-csv", position=0)
        full.append(e)
    return [e for e in full if e is not None]


def _whole_session_answer(rec: SessionRecommender, full: list) -> list[tuple[str, float]]:
    """What suggest() gave when it read every event with its text (the path before the bounded context)."""
    vecs, signal, keys = rec._session_items(full)
    return [
        (s.article.id, round(s.score, 5))
        for s in rec._suggest_from(vecs, signal, keys, full, SuggestRequest.resolve(rec.settings, 3))
    ]


def _recommender(articles, fake_encoder, **kwargs) -> SessionRecommender:
    return SessionRecommender.build(
        articles,
        encoder=fake_encoder,
        progress=False,
        settings=SuggestSettings(min_score=None, max_context_events=8),
        **kwargs,
    )


def test_bounded_context_gives_the_whole_sessions_answer(articles, fake_encoder):
    rec = _recommender(articles, fake_encoder)
    full = _reading(rec, "s")
    assert all(e.text is None for e in rec.events("s"))  # no page text is kept in the events
    got = [(s.article.id, round(s.score, 5)) for s in rec.suggest("s", k=3)]
    assert got == _whole_session_answer(rec, full)
    assert "ser-json" not in [a for a, _ in got]  # read at the start of the session: still excluded as seen


def test_pages_come_back_from_the_store_when_this_process_forgot_them(articles, fake_encoder):
    rec = _recommender(articles, fake_encoder, page_contents=PageContents(max_items=1), page_cache_size=1)
    full = _reading(rec, "s")
    calls = []
    encode = rec.encoder.inner.encode
    rec.encoder.inner.encode = lambda texts: calls.append(list(texts)) or encode(texts)
    got = [(s.article.id, round(s.score, 5)) for s in rec.suggest("s", k=3)]
    assert not any(len(t) > 1000 for batch in calls for t in batch)  # long pages were not embedded again
    assert got == _whole_session_answer(rec, full)


@pytest.mark.redis
def test_redis_store_gives_the_same_answer(articles, fake_encoder, redis_url, redis_prefix):  # noqa: F811
    from plugin.redis_store import RedisSessionStore

    store = RedisSessionStore.from_url(redis_url, SessionSettings(), prefix=redis_prefix)
    writer = _recommender(articles, fake_encoder, store=store)
    full = _reading(writer, "s")
    reader = _recommender(articles, fake_encoder, store=store)  # another worker: nothing cached
    got = [(s.article.id, round(s.score, 5)) for s in reader.suggest("s", k=3)]
    assert got == _whole_session_answer(writer, full)
    assert len(reader.pages) > 0
    assert writer.erase("s") and reader.store.contents("s", [e.content_hash() for e in full]) == {}


def test_a_worker_that_did_not_track_a_search_reads_its_vector_back(articles, fake_encoder):
    """A search's vector is stored by hash like a page's: another worker suggests without embedding the query again
    (nor hopping to a thread for it), with the answer the whole session gives; erasing the session removes it."""
    from plugin import InMemorySessionStore
    from plugin.encoder import content_key

    store = InMemorySessionStore()
    writer = _recommender(articles, fake_encoder, store=store)
    full = _reading(writer, "s")
    reader = _recommender(articles, fake_encoder, store=store)  # another worker: nothing cached
    ctx = reader.context("s")
    searches = [e for e in ctx.events if e.kind == "search"]
    assert searches and all(e.content_ref == e.content_hash() and e.text is None for e in searches)
    assert not reader.needs_encoding(ctx.events)
    calls = []
    encode = reader.encoder.inner.encode
    reader.encoder.inner.encode = lambda texts: calls.append(list(texts)) or encode(texts)
    got = [(s.article.id, round(s.score, 5)) for s in reader.suggest("s", k=3, context=ctx)]
    reader.encoder.inner.encode = encode
    assert calls == []
    assert got == _whole_session_answer(writer, full)
    # read back into this worker's vector cache, where the next request finds them without the store
    assert all(reader.page_encoder.cache.get(content_key(reader.encoder.name, e.query)) is not None for e in searches)
    assert writer.erase("s") and store.contents("s", [e.content_ref for e in searches]) == {}


def test_erase_drops_the_sessions_pages_from_this_workers_cache(articles, fake_encoder):
    rec = _recommender(articles, fake_encoder)
    full = _reading(rec, "gone")
    rec.track("kept", "page_view", url="https://blog.test/k", title="Kept", text="socket tcp kept page")
    refs = {e.content_hash() for e in full if e.text}
    assert refs and all(rec.pages.get(d) is not None for d in refs)
    assert rec.erase("gone")
    assert all(rec.pages.get(d) is None for d in refs)
    assert rec.store.contents("gone", sorted(refs)) == {}
    assert rec.suggest("kept", k=1)  # other sessions' pages are untouched


def test_worker_cache_entries_lapse_after_the_session_ttl():
    import numpy as np

    from plugin.session_store import PageContent

    now = [0.0]
    pages = PageContents(max_items=10, ttl_seconds=60, clock=lambda: now[0])
    pages.put("a", PageContent("text a", np.ones(2, np.float32)))
    now[0] = 50
    assert pages.get("a") is not None  # a use keeps it
    now[0] = 105
    assert pages.get("a") is not None
    now[0] = 170
    assert pages.get("a") is None and len(pages) == 0


def test_worker_cache_is_bounded_in_bytes_as_well_as_entries():
    import numpy as np

    from plugin.page_contents import _size
    from plugin.session_store import PageContent

    def page(n: int) -> PageContent:  # text, terms about as long, a 384-d vector: ~3.9 kB
        return PageContent("x" * 1000 + str(n), np.ones(384, np.float32), "y" * 1000)

    one = _size(page(0))
    assert one > 1000 + 1000 + 384 * 4
    pages = PageContents(max_items=100, max_bytes=int(2.5 * one))
    for n in range(3):
        pages.put(str(n), page(n))
    assert len(pages) == 2 and pages.get("0") is None and pages.get("2") is not None  # least recently used went
    assert pages.bytes == 2 * one
    pages.put("2", page(2))  # the same page again is counted once
    assert pages.bytes == 2 * one and len(pages) == 2
    pages.forget(["1", "2"])
    assert pages.bytes == 0 and len(pages) == 0


def test_restoring_a_stored_pages_text_is_dataclasses_replace():
    from dataclasses import replace

    from plugin.events import make_event
    from plugin.recommender import _with_text

    e = make_event("s", "page_view", url="https://blog.test/1", title="Notes", text="body", ts=1.0).slim()
    restored = _with_text(e, "body")
    assert restored == replace(e, text="body") and restored.content() == "Notes\nbody"
    assert e.text is None  # the stored event is not touched


def test_reasons_name_the_pages_as_before_but_only_those_asked_for(articles, fake_encoder):
    from plugin.events import make_event, short_title
    from plugin.recommender import _Labels

    rec = _recommender(articles, fake_encoder)
    art = next(iter(rec.kb))
    signal = [
        make_event("s", "article_open", article_id=art.id, ts=0.0),
        make_event("s", "search", query="how to serialize", ts=1.0),
        make_event("s", "page_view", url="https://blog.test/x", title="Notes — a blog", ts=2.0),
    ]
    labels = _Labels(rec.kb, signal, [art.id, None, None])
    assert len(labels) == 3 and labels._made == {}
    assert [labels[i] for i in range(3)] == [short_title(art.title), "your search “how to serialize”", "Notes"]


def test_an_event_read_back_from_its_record_is_the_constructed_event():
    """`Event.from_dict` fills a stored record in directly (the context read decodes 20 a suggestion): the same
    event the constructor makes, a fresh `meta` for a record without one, and the constructor's error for a record that is not one."""
    full = make_event("s", "page_view", url="https://site.test/p", title="T", text="body", meta={"src": "w"}, ts=1.0)
    for e in (
        full,
        full.slim(),
        make_event("s", "search", query="q", ts=2.0),
        make_event("s", "article_open", article_id="a", ts=3.0),
    ):
        record = json.loads(json.dumps(e.to_dict()))
        back = Event.from_dict(record)
        assert back == Event(**record) == e and type(back) is Event
    back = Event.from_dict({"session_id": "s", "kind": "search", "ts": 1.0, "event_id": "x", "query": "q"})
    back.meta["k"] = 1
    assert Event.from_dict({"session_id": "s", "kind": "search", "ts": 1.0, "event_id": "y"}).meta == {}
    with pytest.raises(InvalidEventError, match="not an event record"):
        Event.from_dict({"session_id": "s", "kind": "search", "ts": 1.0, "event_id": "x", "colour": "red"})
    with pytest.raises(InvalidEventError, match="not an event record"):
        Event.from_dict({"session_id": "s", "kind": "search", "ts": 1.0})
