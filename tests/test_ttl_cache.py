"""The one expiring LRU behind the per-worker caches (page vectors, page contents, BM25 scores and tokens)."""

from __future__ import annotations

import pytest

from plugin import ConfigError, SessionRecommender, SessionSettings, SuggestSettings
from plugin.lexical import LexicalIndex
from plugin.ttl_cache import TTLCache


def test_entries_lapse_after_their_last_use_and_a_use_keeps_them():
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(10, ttl_seconds=60, clock=lambda: now[0])
    cache.put("a", 1)
    now[0] = 50
    cache.put("b", 2)
    assert cache.get("a") == 1  # a use at 50 keeps it to 110
    now[0] = 105
    assert cache.get("b") == 2 and len(cache) == 2
    now[0] = 111
    assert cache.get("a") is None and len(cache) == 1  # lapsed, and dropped, not only hidden
    now[0] = 166
    cache.put("c", 3)  # a put drops what has lapsed too
    assert list(cache) == ["c"]


def test_get_many_is_get_of_each_at_one_clock_reading():
    def filled(now: list[float]) -> TTLCache[str, int]:
        cache: TTLCache[str, int] = TTLCache(10, ttl_seconds=60, clock=lambda: now[0])
        for t, key in ((0, "a"), (20, "b"), (40, "c"), (45, "a")):
            now[0] = t
            cache.put(key, ord(key))
        now[0] = 81  # b (last used at 20) has lapsed; c and a have not
        return cache

    one_by_one, at_once = filled([0.0]), filled([0.0])
    keys = ["c", "b", "x", "a", "c"]
    assert at_once.get_many(keys) == [one_by_one.get(k) for k in keys] == [99, None, None, 97, 99]
    assert list(at_once) == list(one_by_one) == ["a", "c"]  # the lapsed one dropped, the used ones moved to the end
    plain: TTLCache[str, int] = TTLCache(2)  # no ttl: plain LRU reads
    plain.put("a", 1)
    plain.put("b", 2)
    assert plain.get_many(["a", "z"]) == [1, None] and list(plain) == ["b", "a"]


def test_bounded_in_entries_and_weight_least_recently_used_first():
    cache: TTLCache[str, str] = TTLCache(3, max_weight=10)
    for key, weight in (("a", 4), ("b", 4), ("c", 1)):
        cache.put(key, key, weight)
    assert cache.get("a") == "a"  # now b is the least recently used
    cache.put("d", "d", 2)  # 11 > 10: b goes, not a
    assert list(cache) == ["c", "a", "d"] and cache.weight == 7
    cache.put("e", "e")  # 4 entries > 3: c goes
    assert list(cache) == ["a", "d", "e"]
    cache.put("a", "a2", 1)  # replacing counts the new weight once
    assert cache.weight == 3 and cache.get("a") == "a2" and list(cache) == ["d", "e", "a"]
    cache.put("big", "big", 50)  # over the weight bound alone: the newest entry is kept, every other goes
    assert list(cache) == ["big"] and cache.weight == 50
    cache.forget(["big", "absent"])
    assert len(cache) == 0 and cache.weight == 0


def test_without_a_ttl_the_clock_is_never_read():
    def clock() -> float:
        raise AssertionError("read the clock")

    cache: TTLCache[str, int] = TTLCache(2, clock=clock)
    cache.put("a", 1)
    assert cache.get("a") == 1 and cache.get("b") is None and cache.now() == 0.0
    assert list(cache.items()) == [("a", 1)]


@pytest.mark.parametrize("bad", [{"max_items": 0}, {"ttl_seconds": 0}, {"ttl_seconds": -1.0}])
def test_bounds_that_keep_nothing_are_refused(bad):
    kwargs = {"max_items": 5, **bad}
    with pytest.raises(ConfigError):
        TTLCache(kwargs.pop("max_items"), **kwargs)


def test_bm25_caches_of_a_read_text_lapse_after_the_session_ttl_on_every_worker():
    """Security review, round 1, left BM25's result caches "half fixed": the worker that erases a session drops the
    scores of its pages, every other worker kept them until the LRU evicted them. They now lapse like the page
    vectors and contents; the scores a text gets are the same whether cached or not."""
    docs = {"a": "backup and restore with pg_dump", "b": "indexes speed up queries", "c": "vacuum reclaims space"}
    now = [0.0]
    for full_scan_max in (100, 2):  # the full scan's score cache and, above it, the token cache
        lex = LexicalIndex(
            lambda: (list(docs), list(docs.values())), full_scan_max=full_scan_max, ttl_seconds=60, clock=lambda: now[0]
        )
        cache = lex._scores if full_scan_max == 100 else lex._tokens
        now[0] = 0.0
        first = lex.search(["an erased visitor read about backup"], [1.0], keys=[("p", "erased")]).get(list(docs))
        lex.search(["another visitor's page on indexes"], [1.0])
        assert ("p", "erased") in set(cache) and len(cache) == 2
        now[0] = 50
        lex.search(["another visitor's page on indexes"], [1.0])  # used again: kept
        now[0] = 61
        lex.search(["a third page"], [1.0])
        assert ("p", "erased") not in set(cache) and len(cache) == 2
        again = lex.search(["an erased visitor read about backup"], [1.0], keys=[("p", "erased")]).get(list(docs))
        assert again.tolist() == first.tolist()


def test_the_recommender_gives_its_bm25_caches_the_session_ttl(articles, fake_encoder):
    rec = SessionRecommender.build(
        articles,
        encoder=fake_encoder,
        progress=False,
        settings=SuggestSettings(min_score=-1.0),
        session_settings=SessionSettings(ttl_seconds=90),
    )
    assert rec.lexical._scores.ttl_seconds == rec.lexical._tokens.ttl_seconds == 90
    assert rec.page_encoder.cache.ttl_seconds == rec.pages.ttl_seconds == 90
    rec.track("s", "page_view", url="https://site.test/p", title="Backup", text="pg_dump backup restore")
    assert rec.suggest("s", k=2)
    assert len(rec.lexical._scores) == 1
