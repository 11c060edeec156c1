"""The HTTP API through the ASGI test client: every endpoint, every error path, the JSON error shape."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

import adapters.http as http_adapter  # noqa: E402
from adapters.http import ServerSettings, SessionIds, create_app  # noqa: E402
from adapters.http.app import ENV_INDEX, app_from_env  # noqa: E402
from adapters.http.demo_site import create_demo_app  # noqa: E402
from adapters.http.responder import Reply  # noqa: E402
from plugin import (  # noqa: E402
    Article,
    ConfigError,
    EventLog,
    HashingEncoder,
    InMemorySessionStore,
    RateLimitedError,
    SessionRecommender,
    SessionSettings,
    UnknownSessionError,
)


@pytest.fixture
def client(rec):
    return TestClient(create_app(rec))


@pytest.fixture
def sid(client):
    return client.post("/v1/sessions").json()["session_id"]


def _view(client, sid, url, **extra):
    r = client.post(f"/v1/sessions/{sid}/events", json={"kind": "page_view", "url": url, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def _error(r, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]["message"]


def test_public_api_is_pinned():
    assert sorted(http_adapter.__all__) == [
        "ExtractiveResponder",
        "Reply",
        "Responder",
        "ServerSettings",
        "SessionIds",
        "app_from_env",
        "as_responder",
        "create_app",
    ]


def test_health(client, rec):
    body = client.get("/v1/health").json()
    assert body == {
        "status": "ok",
        "articles": len(rec.kb),
        "encoder": rec.encoder.name,
        "sessions": 0,
        "index_version": None,
    }


def test_sessions_are_unguessable_and_distinct(client):
    r = client.post("/v1/sessions")
    assert r.status_code == 201
    ids = {client.post("/v1/sessions").json()["session_id"] for _ in range(50)}
    assert len(ids) == 50
    assert all(
        len(i) == 43 and set(i) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") for i in ids
    )
    assert r.json()["expires_in"] == SessionSettings().ttl_seconds


def test_page_views_link_kb_articles_and_dedupe_by_event_id(client, sid, rec):
    body = _view(client, sid, "https://kb.test/json", title="JSON", event_id="evt-00000001")
    assert body == {"stored": True, "event_id": "evt-00000001", "article_id": "ser-json"}
    again = _view(client, sid, "https://kb.test/json", title="JSON", event_id="evt-00000001")
    assert again["stored"] is False
    other = _view(client, sid, "https://example.org/blog", title="A page outside the KB", text="sockets and tcp")
    assert other["stored"] is True and other["article_id"] is None
    assert [e.kind for e in rec.events(sid)] == ["page_view", "page_view"]


@pytest.mark.parametrize(
    "event",
    [
        {"kind": "article_open", "article_id": "net-http"},
        {"kind": "search", "query": "tcp sockets"},
        {"kind": "suggestion_impression", "article_id": "net-ssl", "position": 0},
        {"kind": "suggestion_click", "article_id": "net-ssl", "position": 1},
        {"kind": "suggestion_click", "url": "https://kb.test/ssl", "position": 1},
    ],
)
def test_every_event_kind_is_stored(client, sid, rec, event):
    r = client.post(f"/v1/sessions/{sid}/events", json=event)
    assert r.status_code == 200 and r.json()["stored"] is True, r.text
    (stored,) = rec.events(sid)
    assert stored.kind == event["kind"]
    if event["kind"].startswith("suggestion_"):
        assert stored.article_id == "net-ssl" and stored.position == event["position"]


@pytest.mark.parametrize(
    ("event", "code", "needle"),
    [
        ({"kind": "click"}, "invalid_request", "kind"),
        ({"kind": "page_view", "url": "https://x.test", "colour": "red"}, "invalid_request", "colour"),
        ({"kind": "page_view", "title": "t" * 501}, "invalid_request", "title"),
        ({"kind": "page_view", "url": "https://x.test", "position": -1}, "invalid_request", "position"),
        ({"kind": "page_view", "url": "https://x.test", "position": "1"}, "invalid_request", "position"),
        ({"kind": "page_view", "url": 7}, "invalid_request", "url"),
        ({"kind": "page_view", "url": "https://x.test", "event_id": "a b"}, "invalid_request", "event_id"),
        # what an event needs is in the schema now (spec = server), so these are request validation errors
        ({"kind": "page_view"}, "invalid_request", "needs at least one of url, title, text, article_id"),
        ({"kind": "page_view", "title": "   "}, "invalid_request", "title"),
        ({"kind": "page_view", "title": "\x00"}, "invalid_request", "title"),
        ({"kind": "search", "query": ""}, "invalid_request", "query"),
        ({"kind": "search"}, "invalid_request", "query"),
        ({"kind": "suggestion_click", "position": 0}, "invalid_request", "needs at least one of article_id, url"),
        ({"kind": "page_view", "url": "https://x.test", "position": 1.5}, "invalid_request", "position"),
        ({"kind": "page_view", "url": "https://x.test", "position": True}, "invalid_request", "position"),
    ],
)
def test_invalid_events_are_422_with_a_clear_message(client, sid, event, code, needle):
    msg = _error(client.post(f"/v1/sessions/{sid}/events", json=event), 422, code)
    assert needle in msg


def test_malformed_json_is_422(client, sid):
    r = client.post(f"/v1/sessions/{sid}/events", content=b"{not json", headers={"Content-Type": "application/json"})
    _error(r, 422, "invalid_request")


@pytest.mark.parametrize(
    "event",
    [
        {"kind": "suggestion_click", "article_id": "no-such-article", "position": 0},
        {"kind": "suggestion_impression", "url": "https://kb.test/nowhere", "position": 0},
    ],
)
def test_feedback_on_unknown_article_is_409(client, sid, event):
    # the session in the path exists (404 would say it does not); the body names what the KB lacks
    _error(client.post(f"/v1/sessions/{sid}/events", json=event), 409, "unknown_article")


def test_suggestions_follow_the_session_and_skip_what_was_read(client, sid):
    _view(client, sid, "https://kb.test/json", title="JSON serialization guide")
    _view(client, sid, "https://kb.test/pickle", title="Pickle serialization of python objects")
    r = client.get(f"/v1/sessions/{sid}/suggestions", params={"k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["session_id"] == sid
    got = [s["id"] for s in body["suggestions"]]
    assert len(got) == 3 and all(g.startswith("ser-") for g in got)
    assert not {"ser-json", "ser-pickle"} & set(got)
    first = body["suggestions"][0]
    assert set(first) == {"id", "title", "url", "href", "snippet", "reason", "drivers", "score", "rank"}
    assert first["href"] == first["url"] and first["reason"].startswith("because you read")
    assert [s["rank"] for s in body["suggestions"]] == [0, 1, 2]


def test_suggestion_filters_and_default_k(client, sid):
    _view(client, sid, "https://kb.test/json", title="JSON")
    assert len(client.get(f"/v1/sessions/{sid}/suggestions").json()["suggestions"]) == 3
    de = client.get(f"/v1/sessions/{sid}/suggestions", params={"locale": "de"}).json()["suggestions"]
    assert [s["id"] for s in de] == ["ser-csv"]
    net = client.get(f"/v1/sessions/{sid}/suggestions", params=[("tags", "net"), ("k", "2")]).json()["suggestions"]
    assert len(net) == 2 and all(s["id"].startswith("net-") for s in net)
    q = client.get(f"/v1/sessions/{sid}/suggestions", params={"query": "tcp socket network", "k": 5}).json()
    assert any(s["id"].startswith("net-") for s in q["suggestions"])


def test_suggestions_error_paths(client, sid):
    msg = _error(client.get(f"/v1/sessions/{sid}/suggestions"), 409, "empty_session")
    assert "no page views" in msg
    _view(client, sid, "https://kb.test/json", title="JSON")
    _error(client.get(f"/v1/sessions/{sid}/suggestions", params={"k": 0}), 422, "invalid_request")
    _error(client.get(f"/v1/sessions/{sid}/suggestions", params={"k": "many"}), 422, "invalid_request")
    msg = _error(client.get(f"/v1/sessions/{sid}/suggestions", params={"k": 50}), 422, "invalid_request")
    assert "between 1 and 20" in msg
    _error(client.get(f"/v1/sessions/{sid}/suggestions", params={"query": "q" * 501}), 422, "invalid_request")
    _error(client.get(f"/v1/sessions/{sid}/suggestions", params={"locale": "x" * 21}), 422, "invalid_request")
    msg = _error(
        client.get(f"/v1/sessions/{sid}/suggestions", params=[("tags", str(i)) for i in range(11)]),
        422,
        "invalid_request",
    )
    assert msg.startswith("query.tags:")
    msg = _error(
        client.get(f"/v1/sessions/{sid}/suggestions", params={"k": "-1", "query": "q" * 501}), 422, "invalid_request"
    )
    assert "query.k" in msg and "query.query" in msg


@pytest.mark.parametrize("k", ["²", "³", "١", "３", "1²", "+3", " 3"])
def test_non_ascii_digit_k_is_422_not_500(client, sid, k):
    # str.isdigit() says yes to "²", and int("²") raises: that was a 500
    _view(client, sid, "https://kb.test/json", title="JSON")
    _error(client.get(f"/v1/sessions/{sid}/suggestions", params={"k": k}), 422, "invalid_request")


def test_chat_enforces_max_k_like_get(rec):
    c = TestClient(create_app(rec, settings=ServerSettings(max_k=3, default_k=2)))
    sid = c.post("/v1/sessions").json()["session_id"]
    _view(c, sid, "https://kb.test/json", title="JSON")
    msg = _error(c.post(f"/v1/sessions/{sid}/chat", json={"message": "tcp sockets", "k": 5}), 422, "invalid_request")
    assert "between 1 and 3" in msg
    assert "between 1 and 3" in _error(
        c.get(f"/v1/sessions/{sid}/suggestions", params={"k": 5}), 422, "invalid_request"
    )
    # and the OpenAPI document says so, for both
    spec = c.get("/openapi.json").json()
    assert spec["components"]["schemas"]["ChatIn"]["properties"]["k"]["anyOf"][0]["maximum"] == 3
    params = spec["paths"]["/v1/sessions/{session_id}/suggestions"]["get"]["parameters"]
    assert [p["schema"]["maximum"] for p in params if p["name"] == "k"] == [3]
    assert len(c.post(f"/v1/sessions/{sid}/chat", json={"message": "tcp sockets", "k": 3}).json()["suggestions"]) == 3


def test_empty_session_with_a_query_still_gets_suggestions(client, sid):
    r = client.get(f"/v1/sessions/{sid}/suggestions", params={"query": "tls certificate encryption"})
    assert r.status_code == 200 and r.json()["suggestions"][0]["id"] == "net-ssl"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/events", {"kind": "page_view", "url": "https://kb.test/json"}),
        ("GET", "/suggestions", None),
        ("POST", "/chat", {"message": "hello"}),
        ("DELETE", "", None),
    ],
)
@pytest.mark.parametrize(
    "bad", ["A" * 43, "short", "x" * 129, "../../etc", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!"]
)
def test_unknown_or_forged_session_ids_are_404_everywhere(client, method, path, body, bad):
    r = client.request(method, f"/v1/sessions/{bad}{path}", json=body)
    if bad == "../../etc":
        assert r.status_code == 404
        return
    _error(r, 404, "unknown_session")


def test_chat_answers_offline_and_injects_suggestions(client, sid):
    _view(client, sid, "https://kb.test/json", title="JSON serialization guide")
    r = client.post(f"/v1/sessions/{sid}/chat", json={"message": "how do I open a tcp socket connection", "k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["responder"] == "extractive (no LLM)"
    assert "no AI model" in body["reply"] and "socket" in body["reply"].lower()
    assert body["source"]["id"] == "net-socket"
    got = [s["id"] for s in body["suggestions"]]
    assert len(got) == 2 and "net-socket" not in got and "ser-json" not in got
    assert all("href" in s for s in body["suggestions"])


def test_chat_on_an_empty_session_uses_the_question(client, sid):
    body = client.post(f"/v1/sessions/{sid}/chat", json={"message": "tls certificates"}).json()
    assert body["suggestions"] and body["source"]["id"] == "net-ssl"


@pytest.mark.parametrize(
    "payload", [{"message": ""}, {"message": "x" * 2001}, {"text": "hi"}, {"message": "hi", "k": 0}]
)
def test_chat_rejects_bad_bodies(client, sid, payload):
    _error(client.post(f"/v1/sessions/{sid}/chat", json=payload), 422, "invalid_request")


def test_pluggable_responders(rec):
    seen = {}

    def plain(message):
        return f"echo: {message}"

    def session_aware(message, *, session_id):
        seen["sid"] = session_id
        return Reply("custom", "mine")

    class FakeChatModel:  # the shape of a LangChain runnable: .invoke returning an AIMessage-like object
        def invoke(self, message, config=None):
            seen["config"] = config
            return SimpleNamespace(content=[{"type": "text", "text": "from "}, {"type": "text", "text": "llm"}])

    class FakeAgent:
        def invoke(self, message, config=None):
            return {"messages": [SimpleNamespace(content="q"), SimpleNamespace(content="agent answer")]}

    cases = [
        (plain, "echo: hello", "plain"),
        (session_aware, "custom", "mine"),
        (FakeChatModel(), "from llm", "FakeChatModel"),
        (FakeAgent(), "agent answer", "FakeAgent"),
    ]
    sids = {}
    for responder, text, label in cases:
        c = TestClient(create_app(rec, responder=responder))
        sid = sids[label] = c.post("/v1/sessions").json()["session_id"]
        body = c.post(f"/v1/sessions/{sid}/chat", json={"message": "hello"}).json()
        assert (body["reply"], body["responder"], body["source"]) == (text, label, None)
    # each responder that asks for it is told the session it answers in, and only that
    assert seen["sid"] == sids["mine"]
    from adapters.langchain import session_id_from
    from adapters.session_ref import SessionRef

    # a runnable gets a SessionRef: tools read the id through session_id_from, anything else sees a digest
    assert seen["config"] == {"configurable": {"session_id": SessionRef(sids["FakeChatModel"])}}
    assert session_id_from(seen["config"]) == sids["FakeChatModel"]
    assert sids["FakeChatModel"] not in str(seen["config"])


def test_a_failing_responder_is_503_json(rec):
    def broken(message):
        raise RuntimeError("LLM down")

    c = TestClient(create_app(rec, responder=broken))
    sid = c.post("/v1/sessions").json()["session_id"]
    _error(c.post(f"/v1/sessions/{sid}/chat", json={"message": "hi"}), 503, "responder_unavailable")


def test_erase_forgets_the_session_and_its_log(rec, tmp_path):
    log = tmp_path / "events.jsonl"
    client = TestClient(create_app(rec, settings=ServerSettings(event_log=log)))
    sid = client.post("/v1/sessions").json()["session_id"]
    keep = client.post("/v1/sessions").json()["session_id"]
    _view(client, sid, "https://kb.test/json", title="JSON")
    _view(client, keep, "https://kb.test/http", title="HTTP")
    pseudonym = rec.event_log.pseudonym
    assert {e.session_id for e in EventLog(log)} == {pseudonym(sid), pseudonym(keep)}
    r = client.delete(f"/v1/sessions/{sid}")
    assert r.status_code == 204 and r.content == b""
    assert {e.session_id for e in EventLog(log)} == {pseudonym(keep)}
    assert rec.events(sid) == []
    _error(client.get(f"/v1/sessions/{sid}/suggestions"), 404, "unknown_session")
    _error(client.delete(f"/v1/sessions/{sid}"), 404, "unknown_session")


@pytest.mark.parametrize("hardened", [False, True], ids=["create_app", "hardened"])
def test_an_event_that_lands_while_its_session_is_erased_is_erased_too(rec, tmp_path, monkeypatch, hardened):
    """An event request whose id check passed before the erase revoked the id (another worker, a beacon in flight)
    wrote its event after the store was erased, and its log line after the log was rewritten (it waits for the
    log's lock): the event stayed in the store for the TTL (and without signed ids the id worked again) and in
    the learning loop's log for good."""
    import adapters.http.app as app_module

    log = tmp_path / "events.jsonl"
    settings = ServerSettings(event_log=log)
    if hardened:
        from adapters.http.hardened import create_hardened_app
        from adapters.http.limits import InMemoryRateLimiter, LimitSettings

        app = create_hardened_app(
            rec, secrets="s" * 40, settings=settings, limits=LimitSettings(), limiter=InMemoryRateLimiter()
        )
    else:
        app = create_app(rec, settings=settings)
    client = TestClient(app)
    sid = client.post("/v1/sessions").json()["session_id"]
    _view(client, sid, "https://kb.test/json", title="JSON")
    forget = app_module.forget_session

    def racing_write_then_forget(responder, session_id):
        # the other request's store append and log append, both after this erase's store erase and log rewrite
        rec.track(session_id, "page_view", url="https://kb.test/pickle", title="Pickle")
        forget(responder, session_id)

    monkeypatch.setattr(app_module, "forget_session", racing_write_then_forget)
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    assert rec.events(sid) == [] and not rec.store.exists(sid)
    assert list(EventLog(log)) == []
    _error(client.get(f"/v1/sessions/{sid}/suggestions"), 404, "unknown_session")


@pytest.mark.parametrize("batch", [False, True], ids=["event", "batch"])
def test_an_event_that_lands_after_its_session_was_erased_on_this_worker_is_erased(rec, tmp_path, batch):
    """The same race, the other way round: the event's id check passed, then the whole DELETE ran (this worker's
    thread pool), then the event was stored: nothing erases it after that, and the erased id worked again."""
    log = tmp_path / "events.jsonl"
    app = create_app(rec, settings=ServerSettings(event_log=log))
    client = TestClient(app)
    sid = client.post("/v1/sessions").json()["session_id"]
    _view(client, sid, "https://kb.test/json", title="JSON")
    track = rec.track

    def erased_first(session_id, *args, **kwargs):
        rec.erase(session_id)  # DELETE, start to end, between this request's id check and its write
        app.state.session_ids.forget(session_id)
        return track(session_id, *args, **kwargs)

    rec.track = erased_first
    view = {"kind": "page_view", "url": "https://kb.test/pickle", "title": "Pickle"}
    if batch:
        r = client.post(f"/v1/sessions/{sid}/events/batch", json={"events": [view], "suggest": 3})
    else:
        r = client.post(f"/v1/sessions/{sid}/events", json=view)
    del rec.track
    _error(r, 404, "unknown_session")
    assert rec.events(sid) == [] and not rec.store.exists(sid)
    assert list(EventLog(log)) == []
    _error(client.get(f"/v1/sessions/{sid}/suggestions"), 404, "unknown_session")


def test_a_fresh_session_can_be_erased(client, sid):
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204


def test_event_log_gets_impressions_and_clicks_without_page_text(rec, tmp_path):
    log = tmp_path / "events.jsonl"
    client = TestClient(create_app(rec, settings=ServerSettings(event_log=log)))
    sid = client.post("/v1/sessions").json()["session_id"]
    _view(client, sid, "https://kb.test/json", title="JSON", text="private page text")
    for kind in ("suggestion_impression", "suggestion_click"):
        client.post(f"/v1/sessions/{sid}/events", json={"kind": kind, "article_id": "ser-pickle", "position": 0})
    kinds = [e.kind for e in EventLog(log)]
    assert kinds == ["page_view", "suggestion_impression", "suggestion_click"]
    assert "private page text" not in log.read_text()


def test_full_session_is_409_limit_exceeded(articles, fake_encoder):
    tight = SessionRecommender.build(
        articles,
        encoder=fake_encoder,
        progress=False,
        session_settings=SessionSettings(max_events=1, overflow="reject"),
    )
    c = TestClient(create_app(tight))
    sid = c.post("/v1/sessions").json()["session_id"]
    _view(c, sid, "https://kb.test/json")
    msg = _error(c.post(f"/v1/sessions/{sid}/events", json={"kind": "search", "query": "more"}), 409, "limit_exceeded")
    assert "maximum of 1 events" in msg


class _RateLimitedStore(InMemorySessionStore):
    def append(self, event, content=None):
        raise RateLimitedError("too many events for this session; slow down", retry_after=2.5)


class _BrokenStore(InMemorySessionStore):
    def read(self, session_id):
        raise RuntimeError("disk on fire: secret internals")

    def context(self, session_id, n):
        raise RuntimeError("disk on fire: secret internals")


def test_rate_limited_is_429_with_retry_after(articles, fake_encoder):
    r_ = SessionRecommender.build(articles, encoder=fake_encoder, progress=False, store=_RateLimitedStore())
    c = TestClient(create_app(r_))
    sid = c.post("/v1/sessions").json()["session_id"]
    r = c.post(f"/v1/sessions/{sid}/events", json={"kind": "search", "query": "x"})
    _error(r, 429, "rate_limited")
    assert r.headers["retry-after"] == "3"


def test_unexpected_errors_are_500_json_without_internals(articles, fake_encoder):
    r_ = SessionRecommender.build(articles, encoder=fake_encoder, progress=False, store=_BrokenStore())
    c = TestClient(create_app(r_), raise_server_exceptions=False)
    sid = c.post("/v1/sessions").json()["session_id"]
    r = c.get(f"/v1/sessions/{sid}/suggestions")
    msg = _error(r, 500, "internal")
    assert "fire" not in msg


def test_unknown_routes_and_methods_are_json(client):
    msg = _error(client.get("/v2/nothing"), 404, "not_found")
    assert "/v1" in msg
    _error(client.put("/v1/sessions"), 405, "method_not_allowed")


def test_openapi_documents_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert set(paths) == {
        "/v1/health",
        "/v1/sessions",
        "/v1/sessions/{session_id}",
        "/v1/sessions/{session_id}/events",
        "/v1/sessions/{session_id}/suggestions",
        "/v1/sessions/{session_id}/chat",
        "/v1/sessions/{session_id}/events/batch",
    }
    assert "404" in paths["/v1/sessions/{session_id}/suggestions"]["get"]["responses"]
    assert "ErrorOut" in spec["components"]["schemas"]
    schemas = spec["components"]["schemas"]
    assert all(schemas[n]["additionalProperties"] is False for n in ("PageEventIn", "SearchEventIn", "FeedbackEventIn"))
    for status in ("400", "404", "409", "413", "422", "429"):
        assert status in paths["/v1/sessions/{session_id}/chat"]["post"]["responses"]


def test_widget_assets_and_cors(client):
    js = client.get("/static/widget.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert js.headers["cache-control"] == "public, max-age=3600"
    assert "innerHTML" not in js.text.replace("never innerHTML", "")  # server data is only ever textContent
    assert client.get("/static/widget.css").headers["content-type"].startswith("text/css")
    pre = client.options(
        "/v1/sessions", headers={"Origin": "https://site.test", "Access-Control-Request-Method": "POST"}
    )
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "*"


class _SharedStore:
    """A store shared by two workers (like Redis): not this process's InMemorySessionStore."""

    def __init__(self):
        self._inner = InMemorySessionStore()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __len__(self):
        return len(self._inner)


def _worker(articles, store):
    """One worker's recommender: its own encoder cache, the shared store."""
    enc = HashingEncoder(64)
    built = SessionRecommender.build(articles, encoder=enc, progress=False)
    return SessionRecommender(built.kb, built.encoder.inner, built.index, store=store)


def _note_encodes_on_the_loop(monkeypatch, recs) -> list[bool]:
    """Wrap each recommender's text encoder: the returned list gets, per encode, whether it ran on an event loop."""
    import asyncio

    on_loop: list[bool] = []
    for rec in recs:
        inner = rec.encoder.inner.encode

        def encode(texts, inner=inner):
            try:
                asyncio.get_running_loop()
                on_loop.append(True)
            except RuntimeError:
                on_loop.append(False)
            return inner(texts)

        monkeypatch.setattr(rec.encoder.inner, "encode", encode)
    return on_loop


def test_suggestions_embed_pages_tracked_by_another_worker_off_the_event_loop(articles, monkeypatch):

    import adapters.http.app as app_module

    store = _SharedStore()
    a, b = _worker(articles, store), _worker(articles, store)
    ids = SessionIds(store, ttl_seconds=1800, max_sessions=100)
    on_loop = _note_encodes_on_the_loop(monkeypatch, [b])
    hops = []
    real_hop = app_module.run_in_threadpool

    async def counting_hop(fn, *args, **kwargs):
        hops.append(fn)
        return await real_hop(fn, *args, **kwargs)

    monkeypatch.setattr(app_module, "run_in_threadpool", counting_hop)
    worker_a = TestClient(create_app(a, session_ids=ids))
    worker_b = TestClient(create_app(b, session_ids=ids))
    sid = worker_a.post("/v1/sessions").json()["session_id"]
    _view(worker_a, sid, "https://kb.test/json", title="JSON")
    _view(worker_a, sid, "https://blog.example/tcp", title="Our tcp notes", text="socket tcp connect send receive")
    assert on_loop == []  # worker A embedded the page; B has not seen it
    assert len(hops) == 1  # worker A's page off the KB went to the thread pool to be embedded, the KB page did not
    hops.clear()

    r = worker_b.get(f"/v1/sessions/{sid}/suggestions")
    assert r.status_code == 200, r.text
    assert on_loop == [] and hops == []  # the page's vector is read from the shared store, not embedded again
    _view(worker_a, sid, "https://blog.example/udp", title="Our udp notes")  # no text: nothing stored beside it
    hops.clear()  # (worker A's hop to embed it)
    r = worker_b.get(f"/v1/sessions/{sid}/suggestions")
    assert r.status_code == 200, r.text
    assert on_loop == [False] and len(hops) == 1  # embedded in the thread pool, not on the loop
    worker_b.get(f"/v1/sessions/{sid}/suggestions")
    assert on_loop == [False] and len(hops) == 1  # now cached: the fast path, no thread hop


def test_suggestions_stay_on_the_loop_for_an_in_process_store(client, sid, monkeypatch):
    import adapters.http.app as app_module

    async def no_hop(*args, **kwargs):
        raise AssertionError("the GET fast path must not hop to a thread")

    _view(client, sid, "https://blog.example/tcp", title="Our tcp notes", text="socket tcp connect send receive")
    monkeypatch.setattr(app_module, "run_in_threadpool", no_hop)  # (the view's text was embedded in a thread)
    assert client.get(f"/v1/sessions/{sid}/suggestions").status_code == 200


def test_events_that_embed_nothing_stay_on_the_loop(client, sid, monkeypatch):
    # KB pages, impressions and clicks are look-ups and one store write: the thread hop cost more than that under
    # load (BENCHMARKS.md, production load, round 9); a page off the KB or a search is embedded, in the thread pool
    import adapters.http.app as app_module

    hops: list[object] = []
    real_hop = app_module.run_in_threadpool

    async def counting_hop(fn, *args, **kwargs):
        hops.append(fn)
        return await real_hop(fn, *args, **kwargs)

    monkeypatch.setattr(app_module, "run_in_threadpool", counting_hop)
    assert _view(client, sid, "https://kb.test/json")["article_id"] == "ser-json"
    impressions = [{"kind": "suggestion_impression", "article_id": "ser-json", "position": i} for i in range(2)]
    r = client.post(f"/v1/sessions/{sid}/events/batch", json={"events": impressions})
    assert r.status_code == 200 and [x["stored"] for x in r.json()["results"]] == [True, True], r.text
    click = {"kind": "suggestion_click", "article_id": "ser-json", "position": 0}
    assert client.post(f"/v1/sessions/{sid}/events", json=click).status_code == 200
    view = {"kind": "page_view", "url": "https://kb.test/pickle"}
    r = client.post(f"/v1/sessions/{sid}/events/batch", json={"events": [view], "suggest": 2})
    assert r.status_code == 200 and len(r.json()["suggestions"]) == 2, r.text
    assert hops == []
    _view(client, sid, "https://blog.example/tcp", title="Our tcp notes", text="socket tcp connect send receive")
    assert len(hops) == 1
    search = {"kind": "search", "query": "tcp sockets"}
    r = client.post(f"/v1/sessions/{sid}/events/batch", json={"events": [search], "suggest": 2})
    assert r.status_code == 200 and r.json()["suggestions"], r.text
    assert len(hops) == 2  # the batch with a search was stored in the thread pool; its suggestion ran here
    # what was stored either way: the same events, in order
    kinds = [e.kind for e in client.app.state.recommender.events(sid)]
    assert kinds == [
        "page_view",
        *["suggestion_impression"] * 2,
        "suggestion_click",
        "page_view",
        "page_view",
        "search",
    ]


def test_a_batch_stores_and_suggests_by_the_same_rules_as_single_events_and_get(articles, monkeypatch):
    # one path for every batch: its events are stored in the thread pool only when one embeds text, then the
    # suggestion runs in the thread pool only when it would run the encoder (GET suggestions' rule); the encoder
    # never runs on the event loop
    import functools

    import adapters.http.app as app_module

    store = _SharedStore()
    a, b = _worker(articles, store), _worker(articles, store)
    ids = SessionIds(store, ttl_seconds=1800, max_sessions=100)
    on_loop = _note_encodes_on_the_loop(monkeypatch, [a, b])
    hops: list[str] = []
    real_hop = app_module.run_in_threadpool

    async def counting_hop(fn, *args, **kwargs):
        hops.append(fn.func.__name__ if isinstance(fn, functools.partial) else fn.__name__)
        return await real_hop(fn, *args, **kwargs)

    monkeypatch.setattr(app_module, "run_in_threadpool", counting_hop)
    worker_a = TestClient(create_app(a, session_ids=ids))
    worker_b = TestClient(create_app(b, session_ids=ids))
    sid = worker_a.post("/v1/sessions").json()["session_id"]

    def batch(client, events, suggest=2):
        r = client.post(f"/v1/sessions/{sid}/events/batch", json={"events": events, "suggest": suggest})
        assert r.status_code == 200, r.text
        return r.json()

    tcp = {"kind": "page_view", "url": "https://blog.example/tcp", "title": "Tcp", "text": "socket tcp send receive"}
    got = batch(worker_a, [tcp])
    assert got["results"][0]["stored"] and got["suggestions"]
    assert hops == ["store"] and on_loop == [False]  # embedded in the thread pool; suggested here from its vector
    hops.clear()
    got = batch(worker_a, [{"kind": "page_view", "url": "https://kb.test/json"}])
    assert got["suggestions"] and hops == []  # a KB page: stored and suggested on the loop
    # a page without text is embedded from its url's words when a suggestion reads it, and worker B has not seen it
    batch(worker_a, [{"kind": "page_view", "url": "https://blog.example/udp"}], suggest=None)
    hops.clear()
    on_loop.clear()
    got = batch(worker_b, [{"kind": "suggestion_impression", "article_id": "ser-json", "position": 0}])
    assert got["suggestions"] and hops == ["suggest"] and on_loop == [False]
    hops.clear()
    got = batch(worker_b, [{"kind": "suggestion_impression", "article_id": "ser-json", "position": 1}])
    assert got["suggestions"] and hops == []  # now in worker B's cache: on the loop, like a GET
    assert True not in on_loop
    kinds = [e.kind for e in b.events(sid)]
    assert kinds == ["page_view"] * 3 + ["suggestion_impression"] * 2


def test_every_endpoint_renders_suggestions_alike(rec):
    from adapters.http.hardened import create_hardened_app

    settings = ServerSettings(article_url_template="/kb/{id}")
    c = TestClient(create_hardened_app(rec, secrets="s" * 32, settings=settings))
    sid = c.post("/v1/sessions").json()["session_id"]
    _view(c, sid, "https://kb.test/json")
    got = c.get(f"/v1/sessions/{sid}/suggestions").json()["suggestions"]
    chat = c.post(f"/v1/sessions/{sid}/chat", json={"message": "serialize objects json pickle"}).json()["suggestions"]
    page = c.post("/v1/suggestions", json={"article_id": "ser-json"}).json()["suggestions"]
    for s in (*got, *chat, *page):
        assert set(s) == {"id", "title", "url", "href", "snippet", "reason", "drivers", "score", "rank"}
        assert s["href"] == f"/kb/{s['id']}"


def test_every_factory_pins_compute_to_one_thread(rec, tmp_path, monkeypatch):
    import faiss
    import torch

    from adapters.http import hardened

    rec.save(tmp_path / "ix")
    monkeypatch.setenv(ENV_INDEX, str(tmp_path / "ix"))
    monkeypatch.setenv("SESSION_SUGGEST_SECRET", "s" * 32)
    monkeypatch.delenv("REDIS_URL", raising=False)
    for factory in (app_from_env, hardened.app_from_env):
        calls = []
        monkeypatch.setattr(faiss, "omp_set_num_threads", lambda n, calls=calls: calls.append(("faiss", n)))
        monkeypatch.setattr(torch, "set_num_threads", lambda n, calls=calls: calls.append(("torch", n)))
        assert TestClient(factory()).get("/v1/health").status_code == 200
        # the factory pins, and so does the recommender's load: every call asks for one thread
        assert set(calls) == {("faiss", 1), ("torch", 1)}, factory.__module__


def test_article_url_template_sets_href(rec):
    c = TestClient(create_app(rec, settings=ServerSettings(article_url_template="/kb/{id}")))
    sid = c.post("/v1/sessions").json()["session_id"]
    _view(c, sid, "https://kb.test/json")
    s = c.get(f"/v1/sessions/{sid}/suggestions").json()["suggestions"][0]
    assert s["href"] == f"/kb/{s['id']}" and s["url"].startswith("https://kb.test/")


@pytest.mark.parametrize("template", ["/kb/{slug}", "/kb/{0}", "/kb/{", "javascript:{id}", "/kb/fixed"])
def test_an_article_url_template_that_makes_no_link_is_refused_at_startup(template):
    """Before, `{slug}` or a stray brace failed every response carrying a suggestion (500), and `javascript:{id}`
    silently emptied every href: a bad setting is a clear error when the app is configured, naming {id}."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="{id}"):
        ServerSettings(article_url_template=template)
    assert ServerSettings(article_url_template="https://docs.test/{id}.html").article_url_template
    assert ServerSettings(article_url_template="").article_url_template == ""  # empty: use the KB urls


def test_demo_site_pages_escape_kb_text(articles, fake_encoder):
    evil = Article(
        "evil.mod", "<script>alert(1)</script> title", "https://kb.test/evil", "<img src=x onerror=alert(1)>"
    )
    r_ = SessionRecommender.build([*articles, evil], encoder=fake_encoder, progress=False)
    c = TestClient(create_demo_app(r_))
    index = c.get("/")
    assert index.status_code == 200 and 'href="/docs/evil.mod"' in index.text
    assert '<meta name="session-suggest:page-view" content="off">' in index.text
    assert "<script>alert" not in index.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in index.text
    page = c.get("/docs/evil.mod").text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert '<meta name="session-suggest:article-id" content="evil.mod">' in page
    assert 'src="/static/widget.js"' in page
    _error(c.get("/docs/nope"), 404, "unknown_article")
    sid = c.post("/v1/sessions").json()["session_id"]
    c.post(
        f"/v1/sessions/{sid}/events",
        json={"kind": "page_view", "url": "http://127.0.0.1/docs/ser-json", "article_id": "ser-json"},
    )
    s = c.get(f"/v1/sessions/{sid}/suggestions").json()["suggestions"]
    assert all(x["href"] == f"/docs/{x['id']}" for x in s) and "ser-json" not in {x["id"] for x in s}


def test_app_from_env(rec, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_INDEX, raising=False)
    with pytest.raises(ConfigError, match=ENV_INDEX):
        app_from_env()
    rec.save(tmp_path / "ix")
    monkeypatch.setenv(ENV_INDEX, str(tmp_path / "ix"))
    c = TestClient(app_from_env())
    assert c.get("/v1/health").json()["articles"] == len(rec.kb)


class TestSessionIds:
    def test_expiry_forget_and_shared_store(self):
        now = [0.0]
        store = InMemorySessionStore()
        ids = SessionIds(store, ttl_seconds=10, max_sessions=2, clock=lambda: now[0])
        a = ids.issue()
        assert ids.check(a) == a
        now[0] = 9.0
        assert ids.check(a) == a  # use refreshes it
        now[0] = 25.0
        with pytest.raises(UnknownSessionError, match="POST /v1/sessions"):
            ids.check(a)
        b = ids.issue()
        assert ids.forget(b) and not ids.forget(b)
        with pytest.raises(UnknownSessionError):
            ids.check(b)

    def test_store_sessions_are_accepted_and_lru_cap(self):
        from plugin import make_event

        store = InMemorySessionStore()
        ids = SessionIds(store, ttl_seconds=100, max_sessions=2)
        other_worker = "B" * 43
        store.append(make_event(other_worker, "search", query="x"))
        assert ids.check(other_worker) == other_worker
        first, _, _ = ids.issue(), ids.issue(), ids.issue()
        with pytest.raises(UnknownSessionError):
            ids.check(first)

    @pytest.mark.parametrize("bad", ["", "x" * 43 + "=", "a/b" + "c" * 40, "é" * 43])
    def test_malformed(self, bad):
        ids = SessionIds(InMemorySessionStore(), ttl_seconds=10, max_sessions=10)
        with pytest.raises(UnknownSessionError):
            ids.check(bad)


def test_settings_are_strict():
    with pytest.raises(ValueError):
        ServerSettings(default_k=0)
    with pytest.raises(ValueError):
        ServerSettings(colour="red")  # type: ignore[call-arg]
    assert json.loads(ServerSettings().model_dump_json())["cors_origins"] == ["*"]


def test_extractive_answer_leans_towards_what_was_read(rec, monkeypatch):
    from adapters.http import ExtractiveResponder

    # two close hits for the question; which one answers depends on what the visitor read
    monkeypatch.setattr(rec.index, "search", lambda q, k: [[("net-http", 0.50), ("ser-pickle", 0.45)]])
    responder = ExtractiveResponder(rec, session_weight=0.5)
    assert responder("how?", session_id="nobody").source.id == "net-http"  # no reading: the best match
    rec.track("reader", "article_open", article_id="ser-json")
    assert responder("how?", session_id="reader").source.id == "ser-pickle"  # close to json, which was read
    assert ExtractiveResponder(rec, session_weight=0.0)("how?", session_id="reader").source.id == "net-http"
    assert [a.id for a, _ in rec.search("how?", 2, session_id="reader", session_weight=0.5)] == [
        "ser-pickle",
        "net-http",
    ]


def test_extractive_answer_never_quotes_a_hub_page(fake_encoder):
    from adapters.http import ExtractiveResponder

    arts = [
        Article(
            "toc", "Pickle and json contents", "https://kb.test/toc", "pickle json objects bytes", meta={"hub": True}
        ),
        Article("pickle", "Pickle", "https://kb.test/pickle", "Pickle turns python objects into bytes and back."),
    ]
    r = SessionRecommender.build(arts, encoder=fake_encoder, progress=False)
    reply = ExtractiveResponder(r)("pickle json objects bytes", session_id="s")
    assert reply.source is not None and reply.source.id == "pickle"  # the TOC matches the question best


def test_extractive_answer_quotes_prose_once():
    from adapters.http.responder import _best_sentences

    text = (
        "Pickle turns objects into bytes and back again. | | dump(obj, file) -> None | |\n\n"
        "MODULE REFERENCE https://docs.python.org/3/library/pickle.html\n\n"
        "Pickle turns objects into bytes and back again. Unrelated words about something else here."
    )
    out = _best_sentences("how do I turn objects into bytes", text, 3, 600)
    assert out.count("Pickle turns objects into bytes") == 1
    assert "|" not in out and "MODULE REFERENCE" not in out


def test_a_real_langchain_chat_model_plugs_in(rec):
    fake = pytest.importorskip("langchain_core.language_models.fake_chat_models")
    model = fake.FakeListChatModel(responses=["Use pickle.dump to write the object."])
    c = TestClient(create_app(rec, responder=model))
    sid = c.post("/v1/sessions").json()["session_id"]
    _view(c, sid, "https://kb.test/json", title="JSON serialization guide")
    body = c.post(f"/v1/sessions/{sid}/chat", json={"message": "how do I save an object?"}).json()
    assert body["reply"] == "Use pickle.dump to write the object."
    assert body["responder"] == "FakeListChatModel" and body["suggestions"]


def test_chat_messages_stay_out_of_the_saved_kb_cache(client, sid, rec):
    before = len(rec.encoder.cache)
    r = client.post(f"/v1/sessions/{sid}/chat", json={"message": "a private question about tcp sockets"})
    assert r.status_code == 200 and r.json()["source"]["id"] == "net-socket"
    assert len(rec.encoder.cache) == before  # the KB cache is saved with the index; visitors' text is not


@pytest.mark.parametrize(
    "send",
    [
        lambda c, sid: c.post(f"/v1/sessions/{sid}/events", json={"kind": "k" * 3000}),
        lambda c, sid: c.post(
            f"/v1/sessions/{sid}/events", json={"kind": "suggestion_click", "url": "https://x.test/" + "u" * 2000}
        ),
        lambda c, sid: c.post(f"/v1/sessions/{sid}/events", json={"kind": "suggestion_click", "article_id": "a" * 200}),
        lambda c, sid: c.get("/v1/" + "p" * 3000),
        lambda c, sid: c.get(f"/v1/sessions/{'s' * 3000}/suggestions"),
    ],
)
def test_no_error_message_echoes_the_whole_input(client, sid, send):
    r = send(client, sid)
    assert 400 <= r.status_code < 500
    assert len(r.json()["error"]["message"]) < 300, r.text[:400]


def test_a_kb_record_with_a_lone_surrogate_breaks_no_answer(articles, tmp_path):
    """JSON's "\\ud800" escape decodes to a lone surrogate, which no UTF-8 encoder writes: one such KB record (or
    a visitor's title from a Python caller) made every response citing it a 500 and every log line fail. Ingest
    and event validation replace it with U+FFFD, so suggestions, chat and the log carry on."""
    from plugin import EventLog, SuggestSettings, load_articles

    kb = tmp_path / "kb.jsonl"
    kb.write_text(
        '{"id": "sur\\udc00", "title": "JSON \\ud800 guide", "url": "https://kb.test/sur",'
        ' "text": "json serialize objects dumps loads \\udfff", "tags": ["t\\ud800"]}\n',
        encoding="utf-8",
    )
    rec = SessionRecommender.build(
        [*articles, *load_articles(kb)],
        encoder=HashingEncoder(256),
        progress=False,
        settings=SuggestSettings(min_score=-1.0, mmr_lambda=1.0),
    )
    log = tmp_path / "events.jsonl"
    client = TestClient(create_app(rec, settings=ServerSettings(event_log=log)), raise_server_exceptions=False)
    sid = client.post("/v1/sessions").json()["session_id"]
    _view(client, sid, "https://kb.test/json")
    got = client.get(f"/v1/sessions/{sid}/suggestions", params={"k": 20, "query": "json guide dumps loads"})
    assert got.status_code == 200, got.text
    assert "JSON \ufffd guide" in [s["title"] for s in got.json()["suggestions"]]
    chat = client.post(f"/v1/sessions/{sid}/chat", json={"message": "json serialize dumps loads"})
    assert chat.status_code == 200 and chat.json()["reply"], chat.text
    batch = client.post(f"/v1/sessions/{sid}/events/batch", json={"events": [], "suggest": 20})
    assert batch.status_code == 200, batch.text
    assert (
        client.post(f"/v1/sessions/{sid}/events", json={"kind": "article_open", "url": "https://kb.test/sur"}).json()[
            "article_id"
        ]
        == "sur\ufffd"
    )
    rec.track(sid, "page_view", url="https://elsewhere.test/x", title="Python caller \udc00 title", text="x \ud800")
    assert [e.title for e in EventLog(log) if e.url == "https://elsewhere.test/x"] == ["Python caller \ufffd title"]


@pytest.mark.parametrize("shape", ["str", "reply", "invoke", "agent"])
def test_a_responder_reply_with_a_lone_surrogate_still_reaches_the_visitor(rec, shape):
    """A model's text can hold a lone surrogate (a provider's JSON "\\ud83d" of an emoji cut in two): no UTF-8
    encoder writes it, so the reply the visitor waited for became a 500 after the responder had answered."""
    text = "Use json.dumps \ud83d then loads"

    class Model:
        def invoke(self, message, config=None):
            return SimpleNamespace(content=text)

    class Agent:
        def get_input_jsonschema(self):
            return {"properties": {"messages": {}}}

        def invoke(self, state, config=None):
            return {"messages": [SimpleNamespace(type="ai", content=text)]}

    responder = {
        "str": lambda message: text,
        "reply": lambda message: Reply(text, "fn"),
        "invoke": Model(),
        "agent": Agent(),
    }[shape]
    client = TestClient(create_app(rec, responder=responder), raise_server_exceptions=False)
    sid = client.post("/v1/sessions").json()["session_id"]
    _view(client, sid, "https://kb.test/json")
    chat = client.post(f"/v1/sessions/{sid}/chat", json={"message": "json"})
    assert chat.status_code == 200, chat.text
    assert chat.json()["reply"] == "Use json.dumps \ufffd then loads"
