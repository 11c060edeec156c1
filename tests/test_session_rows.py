"""A suggestion copies the context rows its session's last suggestion resolved (plugin/session_rows.py): the answer
must be the one resolving every row afresh gives, whatever was tracked, erased or re-indexed in between."""

from __future__ import annotations

import pytest
from redis_server import redis_prefix, redis_url  # noqa: F401  (fixtures)
from test_session_context import _recommender  # (min_score off, an 8-event context)

from plugin import Article, SessionRecommender, SessionSettings


def _answer(rec: SessionRecommender, sid: str) -> list[tuple[str, float, str]]:
    return [(s.article.id, round(s.score, 6), s.reason) for s in rec.suggest(sid, k=4)]


def _afresh(rec: SessionRecommender, sid: str) -> list[tuple[str, float, str]]:
    rec.rows.clear()
    return _answer(rec, sid)


def _step(rec: SessionRecommender, sid: str, i: int) -> None:
    if i % 4 == 0:
        rec.track(sid, "page_view", url="https://kb.test/" + ("json", "pickle", "socket", "csv")[i % 3])
    elif i % 4 == 1:
        rec.track(sid, "search", query=f"serialize objects {i}")
    else:
        text = ("serialize pickle objects binary " if i % 3 else "socket tcp network ") * 50 + str(i)
        rec.track(sid, "page_view", url=f"https://blog.test/{i}", title=f"Notes {i}", text=text)
    rec.track(sid, "suggestion_impression", article_id="ser-csv", position=0)


@pytest.mark.parametrize("store", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_reading_page_by_page_gives_the_answer_of_rows_resolved_afresh(articles, fake_encoder, store, request) -> None:
    kwargs = {}
    if store == "redis":
        from plugin.redis_store import RedisSessionStore

        kwargs["store"] = RedisSessionStore.from_url(
            request.getfixturevalue("redis_url"), SessionSettings(), prefix=request.getfixturevalue("redis_prefix")
        )
    rec = _recommender(articles, fake_encoder, **kwargs)
    reused = 0
    for i in range(20):  # past the 8-event context: rows leave the window as new ones come
        _step(rec, "s", i)
        memo = rec.rows.get("s")
        if memo is not None:
            events = rec.context("s").events
            reused += sum(1 for e in events if e.event_id in memo[1])
        got = _answer(rec, "s")
        assert got == _afresh(rec, "s"), i
        assert got  # (a real answer each time)
    assert reused > 50  # the memo was used, not just rebuilt: most rows of each call came from the one before


def test_rows_are_copied_not_looked_up_again(articles, fake_encoder, monkeypatch) -> None:
    rec = _recommender(articles, fake_encoder)
    for i in range(12):
        _step(rec, "s", i)
    rec.suggest("s", k=3)
    looked_up: list[int] = []
    resolve = rec._resolve_rows
    monkeypatch.setattr(rec, "_resolve_rows", lambda signal, sid: looked_up.append(len(signal)) or resolve(signal, sid))
    rec.suggest("s", k=3)
    _step(rec, "s", 12)
    rec.suggest("s", k=3)
    assert looked_up == [1]  # nothing new: no look-up; one page more: that page alone


def test_erase_drops_the_sessions_rows(articles, fake_encoder) -> None:
    rec = _recommender(articles, fake_encoder)
    for sid in ("a", "b"):
        for i in range(5):
            _step(rec, sid, i)
        rec.suggest(sid, k=3)
    assert rec.rows.get("a") is not None
    rec.erase("a")
    assert rec.rows.get("a") is None and rec.rows.get("b") is not None


def test_a_page_that_joins_the_kb_is_read_as_its_article_after_reindexing(articles, fake_encoder) -> None:
    rec = _recommender(articles, fake_encoder)
    rec.track("s", "page_view", url="https://kb.test/json")
    rec.track("s", "page_view", url="https://blog.test/guide", title="Guide", text="socket tcp network " * 40)
    rec.suggest("s", k=3)
    assert rec.rows.get("s")[0].keys == ("ser-json", None)
    rec.upsert_articles([Article("guide", "Guide", url="https://blog.test/guide", text="socket tcp network " * 40)])
    assert len(rec.rows) == 0  # the KB changed: every memo is dropped
    assert rec.suggest("s", k=3) and rec.rows.get("s")[0].keys == ("ser-json", "guide")


def test_a_reused_event_id_is_resolved_again(articles, fake_encoder) -> None:
    # a visitor may choose event ids, and a store forgets an id once its event left the session: the memo must not
    # take a new event for the one that had its id
    rec = _recommender(articles, fake_encoder, session_settings=SessionSettings(max_events=3))
    rec.track("s", "page_view", url="https://kb.test/json", event_id="e1")
    rec.suggest("s", k=3)
    for u in ("pickle", "csv", "http"):  # "e1" leaves the session (3 events at most)
        rec.track("s", "page_view", url=f"https://kb.test/{u}")
    assert rec.track("s", "page_view", url="https://kb.test/socket", event_id="e1") is not None
    signal = rec._session_items(rec.context("s").events, "s")[1]
    assert [e.article_id for e in signal][-1] == "net-socket"
    assert _answer(rec, "s") == _afresh(rec, "s")


def test_memo_rows_cannot_be_written_through_an_answer(articles, fake_encoder) -> None:
    rec = _recommender(articles, fake_encoder)
    for i in range(4):
        _step(rec, "s", i)
    vecs = rec._session_items(rec.context("s").events, "s")[0]
    with pytest.raises(ValueError):
        vecs[0, 0] = 1.0


def test_the_memo_is_bounded_in_sessions_and_bytes(articles, fake_encoder) -> None:
    from plugin.session_rows import SessionRows

    rec = _recommender(articles, fake_encoder)
    rec.rows = SessionRows(max_sessions=5, max_bytes=10**9)
    for n in range(12):
        rec.track(f"v{n}", "page_view", url="https://kb.test/json")
        rec.suggest(f"v{n}", k=3)
    assert len(rec.rows) == 5 and rec.rows.get("v11") is not None and rec.rows.get("v0") is None
    one = rec.rows.get("v11")[0].weight()  # a one-row memo: its vector and ~1 kB for the event
    assert one == 4 * rec.index.dim + 1000
    rec.rows = SessionRows(max_sessions=100, max_bytes=3 * one)  # three one-row memos
    for n in range(6):
        rec.suggest(f"v{n}", k=3)
    assert len(rec.rows) == 3
    rec.track("long", "page_view", url="https://blog.test/a", title="A", text="socket tcp network " * 200)
    rec.suggest("long", k=3)  # a restored page text is counted too: this memo outweighs a one-row KB memo
    assert rec.rows.get("long")[0].weight() > one + 3000
