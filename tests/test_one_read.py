"""One page view, one look-up of its page in the knowledge base; one suggestion request, one read of the session.
Counting fakes wrap the knowledge base's `find` and the store's reads; the answers are checked beside the counts."""

from __future__ import annotations

from typing import Any

import pytest

from plugin import InMemorySessionStore, SessionRecommender


def _counting(monkeypatch: pytest.MonkeyPatch, obj: Any, name: str) -> list[tuple[Any, ...]]:
    """Record every call of obj.name (its arguments), still calling through."""
    calls: list[tuple[Any, ...]] = []
    real = getattr(obj, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, counted)
    return calls


def test_a_page_view_of_a_kb_page_looks_it_up_once(rec: SessionRecommender, monkeypatch):
    finds = _counting(monkeypatch, rec.kb, "find")
    event = rec.track("s", "page_view", url="https://kb.test/json")
    assert event is not None and event.article_id == "ser-json"  # linked to the article its url names
    assert finds == [("https://kb.test/json",)]
    assert rec.events("s")[0].article_id == "ser-json" and len(rec.pages) == 0  # read from the index, not embedded


def test_a_page_view_off_the_kb_looks_it_up_once_then_embeds_it(rec: SessionRecommender, monkeypatch):
    finds = _counting(monkeypatch, rec.kb, "find")
    event = rec.track("s", "page_view", url="https://blog.test/tcp", title="Notes", text="socket tcp network send")
    assert event is not None and event.article_id is None
    assert finds == [("https://blog.test/tcp",)]
    stored = rec.events("s")[0]
    assert stored.content_ref is not None and rec.pages.get(stored.content_ref) is not None  # embedded at track
    assert rec.suggest("s", k=1)[0].article.id == "net-socket"  # and it steers the suggestions


def test_events_naming_an_article_by_id_look_up_the_id_only(rec: SessionRecommender, monkeypatch):
    finds = _counting(monkeypatch, rec.kb, "find")
    rec.track("s", "article_open", article_id="net-url")
    assert finds == [("net-url",)]
    finds.clear()
    rec.track("s", "suggestion_impression", article_id="ser-csv", position=0)  # not an intent: nothing to resolve
    assert finds == []
    finds.clear()
    rec.track("s", "search", query="parse a url", url="https://blog.test/search")  # a search page is no article
    assert finds == [("https://blog.test/search",)]
    assert "net-url" not in [s.article.id for s in rec.suggest("s", k=3)]  # opened: excluded as seen


def test_a_page_without_consent_looks_its_page_up_once(rec: SessionRecommender, monkeypatch):
    finds = _counting(monkeypatch, rec.kb, "find")
    url = "https://blog.test/tcp"
    got = rec.suggest_for_page(k=3, url=url, title="Notes", text="socket tcp network send receive")
    assert finds.count((url,)) == 1  # off the KB: its text is embedded, the url not looked up again
    assert got[0].article.id == "net-socket"  # the page's text steers the answer
    assert len(rec.store) == 0 and len(rec.pages) == 0  # and nothing of it is kept
    finds.clear()
    got = rec.suggest_for_page(k=3, url="https://kb.test/pickle")
    assert finds.count(("https://kb.test/pickle",)) == 1  # later steps read the article by its id
    assert got and "ser-pickle" not in [s.article.id for s in got]


def test_get_suggestions_reads_the_session_once(articles, fake_encoder, monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from adapters.http import create_app
    from plugin import SuggestSettings

    store = InMemorySessionStore()
    rec = SessionRecommender.build(
        articles, encoder=fake_encoder, store=store, progress=False, settings=SuggestSettings(min_score=-1.0)
    )
    client = TestClient(create_app(rec))
    sid = client.post("/v1/sessions").json()["session_id"]
    for url in ("https://kb.test/json", "https://kb.test/pickle"):
        assert client.post(f"/v1/sessions/{sid}/events", json={"kind": "page_view", "url": url}).status_code == 200
    reads = _counting(monkeypatch, store, "read")
    contexts = _counting(monkeypatch, store, "context")
    finds = _counting(monkeypatch, rec.kb, "find")
    r = client.get(f"/v1/sessions/{sid}/suggestions", params={"k": 2})
    assert r.status_code == 200, r.text
    ids = [s["id"] for s in r.json()["suggestions"]]
    assert len(ids) == 2 and not {"ser-json", "ser-pickle"} & set(ids)  # seen pages excluded: from that one read
    assert len(contexts) == 1 and reads == []
    assert not [c for c in finds if c[0].startswith("https://")]  # stored events carry their article ids


def test_a_chat_request_reads_the_session_once(articles, fake_encoder, monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from adapters.http import create_app
    from plugin import SuggestSettings

    store = InMemorySessionStore()
    rec = SessionRecommender.build(
        articles, encoder=fake_encoder, store=store, progress=False, settings=SuggestSettings(min_score=-1.0)
    )
    # a responder that answers without reading the session (the extractive default searches with it: its read)
    client = TestClient(create_app(rec, responder=lambda message: "json.dump(obj, fh) writes it as JSON."))
    sid = client.post("/v1/sessions").json()["session_id"]
    assert client.post(
        f"/v1/sessions/{sid}/events", json={"kind": "page_view", "url": "https://kb.test/json"}
    ).is_success
    reads = _counting(monkeypatch, store, "read")
    contexts = _counting(monkeypatch, store, "context")
    r = client.post(f"/v1/sessions/{sid}/chat", json={"message": "how do I store objects on disk?", "k": 2})
    assert r.status_code == 200, r.text
    ids = [s["id"] for s in r.json()["suggestions"]]
    assert ids and "ser-json" not in ids  # the page read is excluded: the context came from that one read
    # the HTTP chat's policy has no cap and keeps shown articles: one bounded read, the same as a GET of suggestions
    # (a capped policy reads the whole session once instead: tests/test_chat.py)
    assert reads == [] and len(contexts) == 1
