"""The hardened HTTP service: limits answer with clear 4xx JSON and leave the server and earlier events intact;
session ids are signed and guessed, forged or foreign ids are rejected; consent=false keeps nothing."""

from __future__ import annotations

import base64
import logging
import secrets

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from adapters.http import ServerSettings  # noqa: E402
from adapters.http.hardened import RedactSessionIds, create_hardened_app  # noqa: E402
from adapters.http.limits import InMemoryRateLimiter, LimitSettings  # noqa: E402
from adapters.http.signing import SignedSessionIds, secrets_from_env  # noqa: E402
from plugin import (  # noqa: E402
    ConfigError,
    EventLog,
    InMemorySessionStore,
    SessionRecommender,
    SessionSettings,
    SuggestSettings,
    UnknownSessionError,
)

SECRET = "s" * 40
OTHER_SECRET = "o" * 40


def _app(rec, *, secret=SECRET, limits=None, settings=None, responder=None):
    return create_hardened_app(
        rec,
        secrets=secret,
        limits=limits or LimitSettings(),
        settings=settings,
        limiter=InMemoryRateLimiter(),
        responder=responder,
    )


@pytest.fixture
def client(rec):
    return TestClient(_app(rec))


def _sid(client) -> str:
    r = client.post("/v1/sessions")
    assert r.status_code == 201, r.text
    return r.json()["session_id"]


def _error(r, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]["message"]


def _view(client, sid, url, **extra):
    return client.post(f"/v1/sessions/{sid}/events", json={"kind": "page_view", "url": url, **extra})


def _urls(rec, sid):
    return [e.url for e in rec.events(sid)]


# ------------------------------------------------------------------ limits


def test_oversize_body_is_413_and_the_session_is_untouched(rec):
    client = TestClient(_app(rec, limits=LimitSettings(max_body_bytes=4096)))
    sid = _sid(client)
    assert _view(client, sid, "https://kb.test/json").status_code == 200
    r = _view(client, sid, "https://kb.test/pickle", title="x" * 400, text="y" * 5000)
    _error(r, 413, "payload_too_large")
    assert _urls(rec, sid) == ["https://kb.test/json"]
    assert client.get("/v1/health").status_code == 200
    assert _view(client, sid, "https://kb.test/csv").status_code == 200


def test_oversize_chunked_body_without_length_is_413(rec):
    client = TestClient(_app(rec, limits=LimitSettings(max_body_bytes=1024)))
    sid = _sid(client)

    def chunks():
        yield b'{"kind": "page_view", "url": "https://kb.test/json", "text": "'
        for _ in range(20):
            yield b"z" * 100
        yield b'"}'

    r = client.post(f"/v1/sessions/{sid}/events", content=chunks(), headers={"content-type": "application/json"})
    _error(r, 413, "payload_too_large")
    assert rec.events(sid) == []


def test_bad_content_length_is_400(client):
    sid = _sid(client)
    r = client.post(f"/v1/sessions/{sid}/events", content=b"{}", headers={"content-length": "-5"})
    assert r.status_code in (400, 413, 422)  # the server may refuse it before we do; never a 5xx
    assert r.json()["error"]["code"]


def test_too_long_text_is_422(client, rec):
    sid = _sid(client)
    _error(_view(client, sid, "https://kb.test/json", text="x" * 20_001), 422, "invalid_request")
    assert rec.events(sid) == []


def test_full_session_is_409_and_keeps_its_events(articles, fake_encoder):
    settings = SessionSettings(max_events=3, overflow="reject")
    rec = SessionRecommender.build(
        articles,
        encoder=fake_encoder,
        progress=False,
        session_settings=settings,
        store=InMemorySessionStore(settings),
        settings=SuggestSettings(min_score=-1.0),
    )
    client = TestClient(_app(rec))
    sid = _sid(client)
    urls = ["https://kb.test/json", "https://kb.test/pickle", "https://kb.test/csv"]
    for u in urls:
        assert _view(client, sid, u).status_code == 200
    _error(_view(client, sid, "https://kb.test/http"), 409, "limit_exceeded")
    assert _urls(rec, sid) == urls
    assert client.get(f"/v1/sessions/{sid}/suggestions").status_code == 200


def test_per_session_rate_limit(rec):
    client = TestClient(_app(rec, limits=LimitSettings(per_session=5, per_client=1000)))
    sid, other = _sid(client), _sid(client)
    for i in range(5):
        assert _view(client, sid, f"https://site.test/{i}").status_code == 200
    r = _view(client, sid, "https://site.test/flood")
    _error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert _urls(rec, sid) == [f"https://site.test/{i}" for i in range(5)]
    assert _view(client, other, "https://site.test/other").status_code == 200  # only that session is limited
    assert client.get("/v1/health").status_code == 200


def test_per_client_rate_limit_and_forwarded_for(rec):
    limits = LimitSettings(per_session=1000, per_client=4)
    client = TestClient(_app(rec, limits=limits))
    for _ in range(4):
        client.post("/v1/sessions")
    _error(client.post("/v1/sessions"), 429, "rate_limited")
    # X-Forwarded-For is not trusted by default: a client cannot dodge its limit by inventing addresses
    _error(client.post("/v1/sessions", headers={"x-forwarded-for": "203.0.113.9"}), 429, "rate_limited")
    assert client.get("/v1/health").status_code == 200  # probes are exempt

    behind_proxy = TestClient(_app(rec, limits=limits.model_copy(update={"trust_forwarded_for": True})))
    for _ in range(4):
        assert behind_proxy.post("/v1/sessions", headers={"x-forwarded-for": "203.0.113.1"}).status_code == 201
    _error(behind_proxy.post("/v1/sessions", headers={"x-forwarded-for": "203.0.113.1"}), 429, "rate_limited")
    assert behind_proxy.post("/v1/sessions", headers={"x-forwarded-for": "203.0.113.2"}).status_code == 201
    # The proxy appends the real address: whatever the client put in front of it is not its key
    forged = {"x-forwarded-for": "198.51.100.7, 203.0.113.1"}
    _error(behind_proxy.post("/v1/sessions", headers=forged), 429, "rate_limited")

    two_proxies = TestClient(
        _app(rec, limits=limits.model_copy(update={"trust_forwarded_for": True, "trusted_proxies": 2}))
    )
    for i in range(4):
        hops = {"x-forwarded-for": f"198.51.100.{i}, 203.0.113.1, 10.0.0.1"}
        assert two_proxies.post("/v1/sessions", headers=hops).status_code == 201
    _error(
        two_proxies.post("/v1/sessions", headers={"x-forwarded-for": "198.51.100.99, 203.0.113.1, 10.0.0.2"}),
        429,
        "rate_limited",
    )


def test_rate_limit_window_resets():
    now = [0.0]
    limiter = InMemoryRateLimiter(clock=lambda: now[0])
    assert [limiter.hit("k", 2, 10.0) for _ in range(3)][:2] == [None, None]
    assert limiter.hit("k", 2, 10.0) == pytest.approx(10.0)
    now[0] = 10.5
    assert limiter.hit("k", 2, 10.0) is None


# ------------------------------------------------------------------ isolation


def test_issued_ids_are_signed_128_bit_tokens(client):
    ids = {_sid(client) for _ in range(200)}
    assert len(ids) == 200
    for sid in ids:
        raw = base64.urlsafe_b64decode(sid + "==")
        assert len(sid) == 48 and len(raw) == 36  # 16 random bytes, 4 of timestamp, a 16-byte tag
    nonces = {base64.urlsafe_b64decode(s + "==")[:16] for s in ids}
    assert len(nonces) == 200


def _flip(sid: str, byte: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(sid + "=="))
    raw[byte] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def _all_session_calls(client, sid):
    return [
        client.post(f"/v1/sessions/{sid}/events", json={"kind": "search", "query": "json"}),
        client.get(f"/v1/sessions/{sid}/suggestions"),
        client.post(f"/v1/sessions/{sid}/chat", json={"message": "json?"}),
        client.delete(f"/v1/sessions/{sid}"),
    ]


def test_guessed_and_forged_ids_are_rejected_everywhere(client, rec):
    good = _sid(client)
    foreign = SignedSessionIds(OTHER_SECRET).issue()
    bad = [
        secrets.token_urlsafe(36),  # a guess of the right shape
        secrets.token_urlsafe(32),  # the unsigned format
        _flip(good, 0),  # altered random part
        _flip(good, 17),  # altered timestamp
        _flip(good, 35),  # altered tag
        good[:-1],  # truncated
        good + "A",  # extended
        good[:-1] + ("B" if good[-1] != "B" else "C"),  # non-canonical / altered last char
        foreign,  # signed by another server
        "../../etc/passwd",
        "x" * 48,
    ]
    for sid in bad:
        for r in _all_session_calls(client, sid):
            assert r.status_code == 404, (sid, r.request.method, r.request.url, r.text)
            assert r.json()["error"]["code"] in ("unknown_session", "not_found")
    assert len(rec.store) == 0  # nothing was created for any of them
    assert _view(client, good, "https://kb.test/json").status_code == 200


def test_one_visitor_never_sees_another_visitors_session(client, rec):
    alice, bob = _sid(client), _sid(client)
    assert _view(client, alice, "https://kb.test/json").json()["stored"]
    assert _view(client, bob, "https://kb.test/socket").json()["stored"]
    a = client.get(f"/v1/sessions/{alice}/suggestions").json()["suggestions"]
    b = client.get(f"/v1/sessions/{bob}/suggestions").json()["suggestions"]
    assert a[0]["id"].startswith("ser-") and b[0]["id"].startswith("net-")
    assert all("kb.test/json" not in str(s["drivers"]) for s in b)
    assert client.delete(f"/v1/sessions/{bob}").status_code == 204
    assert _urls(rec, alice) == ["https://kb.test/json"]  # bob erasing his session leaves alice's alone


def test_workers_sharing_a_secret_accept_each_others_ids_and_no_one_elses(rec):
    w1, w2 = TestClient(_app(rec)), TestClient(_app(rec))
    stranger = TestClient(_app(rec, secret=OTHER_SECRET))
    sid = _sid(w1)
    assert _view(w2, sid, "https://kb.test/json").status_code == 200  # no shared table of issued ids needed
    _error(_view(stranger, sid, "https://kb.test/json"), 404, "unknown_session")


def test_key_rotation_and_expiry():
    now = [1_800_000_000.0]
    old = SignedSessionIds(OTHER_SECRET, clock=lambda: now[0])
    rotated = SignedSessionIds([SECRET, OTHER_SECRET], max_age_seconds=3600, clock=lambda: now[0])
    sid = old.issue()
    assert rotated.check(sid) == sid  # still honoured after rotating in a new signing key
    assert SignedSessionIds(SECRET, clock=lambda: now[0]).check(rotated.issue())
    now[0] += 3601
    with pytest.raises(UnknownSessionError, match="expired"):
        rotated.check(sid)
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        SignedSessionIds("short")
    with pytest.raises(ConfigError):
        secrets_from_env({})
    assert secrets_from_env({"SESSION_SUGGEST_SECRET": f"{SECRET}, {OTHER_SECRET}"}) == [SECRET, OTHER_SECRET]


def test_full_session_ids_never_reach_the_logs(rec, caplog):
    def broken(message, **kwargs):
        raise RuntimeError("responder down")

    client = TestClient(_app(rec, responder=broken))
    sid = _sid(client)
    caplog.set_level(logging.DEBUG)
    _view(client, sid, "https://kb.test/json")
    _error(client.post(f"/v1/sessions/{sid}/chat", json={"message": "hi"}), 503, "responder_unavailable")
    server_side = [r for r in caplog.records if not r.name.startswith("httpx")]  # httpx is the test client
    assert server_side
    assert all(sid not in r.getMessage() for r in server_side)


def test_an_internal_error_on_a_session_route_logs_no_full_session_id(rec, caplog, monkeypatch):
    """The error log of a 500 names the request path, and a session route's path holds the id (a bearer token)."""
    from plugin import IndexFormatError

    client = TestClient(_app(rec), raise_server_exceptions=False)
    sid = _sid(client)
    assert _view(client, sid, "https://kb.test/json").status_code == 200
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(rec, "suggest", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("index gone")))
    _error(client.get(f"/v1/sessions/{sid}/suggestions"), 500, "internal")
    monkeypatch.setattr(rec, "track", lambda *a, **k: (_ for _ in ()).throw(IndexFormatError("torn")))
    _error(_view(client, sid, "https://kb.test/pickle"), 500, "internal")
    logged = [r for r in caplog.records if r.name.startswith("adapters")]
    assert len(logged) == 2 and all(f"/v1/sessions/{sid[:8]}…" in r.getMessage() for r in logged)
    assert all(sid not in r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))


def test_access_log_lines_carry_no_full_session_id():
    sid = SignedSessionIds(SECRET).issue()
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/v1/sessions/{sid}/suggestions?k=3", "1.1", 200),
        None,
    )
    assert RedactSessionIds().filter(record) is True
    line = record.getMessage()
    assert sid not in line and f"/v1/sessions/{sid[:8]}" in line and "/suggestions?k=3" in line


def test_access_log_lines_carry_no_text_the_visitor_typed():
    """GET …/suggestions?query= puts what the visitor typed (an email address, a health question) in the path
    uvicorn logs: the value is dropped, the rest of the line stays useful."""
    sid = SignedSessionIds(SECRET).issue()
    path = f"/v1/sessions/{sid}/suggestions?k=3&query=jane.doe%40mail.test+divorce+lawyer&locale=en"
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', ("::1", "GET", path, "1.1", 200), None
    )
    assert RedactSessionIds().filter(record) is True
    line = record.getMessage()
    assert "jane.doe" not in line and "divorce" not in line and sid not in line
    assert "?k=3&query=…&locale=en" in line


# ------------------------------------------------------------------ privacy over HTTP


def test_no_consent_endpoint_suggests_from_the_page_and_keeps_nothing(rec, tmp_path):
    log = tmp_path / "events.jsonl"
    client = TestClient(_app(rec, settings=ServerSettings(event_log=log)))
    r = client.post("/v1/suggestions", json={"url": "https://kb.test/socket", "title": "Socket programming", "k": 2})
    assert r.status_code == 200, r.text
    got = [s["id"] for s in r.json()["suggestions"]]
    assert got and "net-socket" not in got and got[0].startswith("net-")
    assert len(rec.store) == 0 and (not log.exists() or log.read_text() == "")
    _error(client.post("/v1/suggestions", json={"k": 2}), 422, "invalid_request")
    _error(client.post("/v1/suggestions", json={"url": 5}), 422, "invalid_request")


def test_erase_over_http_removes_store_and_log_entries(rec, tmp_path):
    log = tmp_path / "events.jsonl"
    client = TestClient(_app(rec, settings=ServerSettings(event_log=log)))
    gone, kept = _sid(client), _sid(client)
    for sid in (gone, kept):
        assert _view(client, sid, "https://kb.test/json").status_code == 200
    assert client.delete(f"/v1/sessions/{gone}").status_code == 204
    assert rec.events(gone) == []
    assert {e.session_id for e in EventLog(log)} == {rec.event_log.pseudonym(kept)}
    # an erased id is revoked for as long as its signature would verify: reads and writes alike
    _error(client.get(f"/v1/sessions/{gone}/suggestions"), 404, "unknown_session")
    _error(_view(client, gone, "https://kb.test/json"), 404, "unknown_session")


# ------------------------------------------------------------------ fuzzing (small CI budget; bench/fuzz.py runs 10k+)


def test_fuzz_every_endpoint_small_budget():
    import importlib.util
    import sys
    from pathlib import Path

    pytest.importorskip("schemathesis")
    path = Path(__file__).resolve().parents[1] / "bench" / "fuzz.py"
    spec = importlib.util.spec_from_file_location("bench_fuzz", path)
    fuzz = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = fuzz  # dataclasses look their module up there
    spec.loader.exec_module(fuzz)
    report = fuzz.run(examples=4)
    assert report["server_errors"] == 0, report["failures"]
    assert report["bad_error_shape"] == 0, report["failures"]
    assert report["still_up"] and report["control_session_intact"]
    operations = {op.split(" ", 1)[1] for op in report["per_operation"]}
    assert {
        "/v1/health",
        "/v1/sessions",
        "/v1/sessions/{session_id}",
        "/v1/sessions/{session_id}/events",
        "/v1/sessions/{session_id}/suggestions",
        "/v1/sessions/{session_id}/chat",
        "/v1/suggestions",
    } <= operations
    assert report["inputs"] >= 100


# ------------------------------------------------------------------ binding ids to the browser (opt-in)


def _bound_app(rec, secret=SECRET):
    return create_hardened_app(
        rec, secrets=secret, limiter=InMemoryRateLimiter(), bind_to_browser=True, secure_cookie=False
    )  # the test client speaks plain http


def test_another_visitors_id_is_rejected_when_ids_are_bound_to_the_browser(rec):
    app = _bound_app(rec)
    alice, mallory = TestClient(app), TestClient(app)  # two browsers: separate cookie jars
    r = alice.post("/v1/sessions")
    sid = r.json()["session_id"]
    cookie = r.headers["set-cookie"]
    assert f"Path=/v1/sessions/{sid}" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert _view(alice, sid, "https://kb.test/json").status_code == 200
    # mallory learned alice's id (a log line, a shared screen) but not her cookie
    for resp in _all_session_calls(mallory, sid):
        _error(resp, 404, "unknown_session")
    assert _urls(rec, sid) == ["https://kb.test/json"]  # her session is untouched, not even erased
    # nor can mallory mint the cookie: a guess, her own session's cookie, or one made with another secret
    own = mallory.post("/v1/sessions")
    own_value = own.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    from adapters.http.signing import SessionBindingMiddleware

    foreign = SessionBindingMiddleware(None, OTHER_SECRET)._value(OTHER_SECRET.encode(), sid)
    for value in (secrets.token_urlsafe(16), own_value, foreign):
        r = TestClient(app).get(f"/v1/sessions/{sid}/suggestions", headers={"cookie": f"ss_bind={value}"})
        _error(r, 404, "unknown_session")
    assert alice.get(f"/v1/sessions/{sid}/suggestions").status_code == 200


def test_binding_keeps_every_session_of_one_browser_usable(rec):
    browser = TestClient(_bound_app(rec))
    first, second = _sid(browser), _sid(browser)
    assert _view(browser, first, "https://kb.test/json").status_code == 200
    assert _view(browser, second, "https://kb.test/socket").status_code == 200
    assert browser.delete(f"/v1/sessions/{first}").status_code == 204
    assert browser.post("/v1/suggestions", json={"url": "https://kb.test/json"}).status_code == 200


def test_session_responses_are_never_cached_and_never_sniffed(rec):
    """A session's responses carry what the visitor read and the bearer id itself: with no Cache-Control a browser
    (a shared computer) or a proxy may keep them, and the copy outlives an erase. `nosniff` on everything, so no
    response can be reinterpreted as a script or a stylesheet."""
    client = TestClient(_app(rec, limits=LimitSettings(per_session=5)))
    sid = _sid(client)
    _view(client, sid, "https://kb.test/json")
    answers = [
        client.get(f"/v1/sessions/{sid}/suggestions"),
        client.post(f"/v1/sessions/{sid}/chat", json={"message": "json"}),
        client.post(f"/v1/sessions/{sid}/events/batch", json={"events": [], "suggest": 2}),
        client.get(f"/v1/sessions/{sid}/suggestions"),
        client.get(f"/v1/sessions/{sid}/suggestions"),  # the per-session limit: 429 from the limits middleware
        client.get("/v1/sessions/not-a-session/suggestions"),
        client.post("/v1/suggestions", json={"url": "https://kb.test/json"}),
        client.post("/v1/sessions"),
    ]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 429, 404, 200, 201]
    for r in answers:
        assert r.headers["cache-control"] == "no-store", r.request.url
        assert r.headers["x-content-type-options"] == "nosniff", r.request.url
    erased = client.delete(f"/v1/sessions/{_sid(client)}")
    assert erased.status_code == 204 and erased.headers["cache-control"] == "no-store"
    widget = client.get("/static/widget.js")
    assert widget.headers["cache-control"] == "public, max-age=3600"  # the widget itself is public and cacheable
    assert widget.headers["x-content-type-options"] == "nosniff"
    assert client.get("/v1/health").headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000 + b"]" * 5000,  # nested past any parser's recursion limit
        b'{"kind": "page_view", "title": "\xff\xfe not utf-8"}',
        b'{"kind": "suggestion_click", "article_id": "ser-json", "position": NaN}',
        b'{"message": "hi", "k": Infinity}',
        b'{"message": "hi", "k": ' + b"9" * 5000 + b"}",
        b'{"kind": "page_view", "title": "\\ud800 lone"}',
    ],
    ids=["deep", "bad-utf8", "nan", "infinity", "huge-int", "lone-surrogate"],
)
def test_malformed_bodies_are_clear_errors_and_store_nothing(rec, body):
    """Adversarial review round 1 (docs/security.md): every body route answers 400/422 with the error shape, never
    500, and the session is untouched."""
    client = TestClient(_app(rec), raise_server_exceptions=False)
    sid = _sid(client)
    _view(client, sid, "https://kb.test/json")
    for path, ctype in [
        ("events", "application/json"),
        ("events/batch", "text/plain"),
        ("chat", "application/json"),
    ]:
        wrapped = body if path != "events/batch" else b'{"events": [' + body + b"]}"
        r = client.post(f"/v1/sessions/{sid}/{path}", content=wrapped, headers={"content-type": ctype})
        assert r.status_code in (400, 422), (path, r.status_code, r.text)
        assert set(r.json()) == {"error"} and r.json()["error"]["message"]
    assert [e.url for e in rec.events(sid)] == ["https://kb.test/json"]


def test_the_hardened_app_loads_no_cdn_script_unless_its_docs_are_asked_for(rec):
    """Swagger UI's page at /api/docs loads its script from a CDN, which then runs on the API's origin (the site's
    own origin when ids are bound to the browser): off in the hardened app unless the operator opts in."""
    from adapters.http import create_app

    hardened = TestClient(create_hardened_app(rec, secrets="s" * 40))
    assert hardened.get("/api/docs").status_code == 404
    assert "/v1/sessions" in hardened.get("/openapi.json").json()["paths"]  # the spec (for clients) stays
    asked = TestClient(create_hardened_app(rec, secrets="s" * 40, api_docs=True)).get("/api/docs")
    assert asked.status_code == 200 and "swagger-ui" in asked.text
    assert TestClient(create_app(rec)).get("/api/docs").status_code == 200  # the development app keeps them
