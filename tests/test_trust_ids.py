"""Nothing in the event log works as a credential, and an erased session id is dead everywhere: refused for
reads and writes, its rate-limit counter gone, for as long as its signature would have verified."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from redis_server import redis_prefix, redis_url  # noqa: E402,F401  (fixtures)

from adapters.http import ServerSettings  # noqa: E402
from adapters.http.hardened import create_hardened_app  # noqa: E402
from adapters.http.limits import InMemoryRateLimiter, LimitSettings, RedisRateLimiter  # noqa: E402
from adapters.http.revocation import InMemoryRevocations, RedisRevocations, id_digest  # noqa: E402
from adapters.http.signing import SignedSessionIds  # noqa: E402

SECRET = "t" * 40
ID_LIKE = re.compile(r"[A-Za-z0-9_\-]{8,}")


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _busy_session(client, rec) -> str:
    sid = client.post("/v1/sessions").json()["session_id"]
    for url in ("https://kb.test/json", "https://kb.test/pickle"):
        assert client.post(f"/v1/sessions/{sid}/events", json={"kind": "page_view", "url": url}).status_code == 200
    assert client.post(f"/v1/sessions/{sid}/events", json={"kind": "search", "query": "serialize"}).status_code == 200
    shown = client.get(f"/v1/sessions/{sid}/suggestions").json()["suggestions"]
    for pos, s in enumerate(shown):
        r = client.post(
            f"/v1/sessions/{sid}/events",
            json={
                "kind": "suggestion_impression",
                "article_id": s["id"],
                "position": pos,
                "event_id": f"imp-{pos:08d}",
            },
        )
        assert r.status_code == 200
    r = client.post(
        f"/v1/sessions/{sid}/events", json={"kind": "suggestion_click", "article_id": shown[0]["id"], "position": 0}
    )
    assert r.status_code == 200
    assert client.post(f"/v1/sessions/{sid}/chat", json={"message": "how do I save objects?"}).status_code == 200
    return sid


def _refused(client, sid: str) -> bool:
    read = client.get(f"/v1/sessions/{sid}/suggestions", params={"query": "json"})
    write = client.post(f"/v1/sessions/{sid}/events", json={"kind": "search", "query": "json"})
    chat = client.post(f"/v1/sessions/{sid}/chat", json={"message": "json"})
    return all(r.status_code == 404 and r.json()["error"]["code"] == "unknown_session" for r in (read, write, chat))


def test_no_value_in_the_event_log_opens_a_session_and_erase_revokes_the_id(rec, tmp_path):
    log = tmp_path / "events.jsonl"
    limiter = InMemoryRateLimiter()
    app = create_hardened_app(
        rec, secrets=SECRET, settings=ServerSettings(event_log=log), limits=LimitSettings(), limiter=limiter
    )
    client = TestClient(app)
    sid = _busy_session(client, rec)
    other = _busy_session(client, rec)

    text = log.read_text()
    assert sid not in text and other not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) >= 12
    candidates = {m for r in records for s in _strings(r) for m in ID_LIKE.findall(s)}
    assert {r["session_id"] for r in records} <= candidates  # the pseudonyms themselves are presented too
    assert len(candidates) > 10
    for value in sorted(candidates):
        assert _refused(client, value), value

    assert "session:" + id_digest(sid) in limiter
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    assert "session:" + id_digest(sid) not in limiter  # no per-session key outlives the erase
    assert _refused(client, sid)
    assert client.delete(f"/v1/sessions/{sid}").status_code == 404
    assert not _refused(client, other)  # only the erased id is dead
    assert rec.event_log.pseudonym(sid) not in log.read_text()


def test_revocation_lasts_exactly_as_long_as_the_signature(monkeypatch):
    now = [1_000_000.0]
    revoked = InMemoryRevocations(clock=lambda: now[0])
    ids = SignedSessionIds(SECRET, max_age_seconds=3600, clock=lambda: now[0], revocations=revoked)
    sid, kept = ids.issue(), ids.issue()
    now[0] += 100
    assert ids.forget(sid) is True and len(revoked) == 1
    with pytest.raises(KeyError):
        ids.check(sid)
    assert ids.check(kept) == kept
    now[0] += 3600 + 300  # past max age plus the tolerated skew: the signature check refuses it on its own
    with pytest.raises(KeyError):
        ids.check(sid)
    ids.forget(ids.issue())  # a later revoke prunes entries that expired
    assert len(revoked) == 1
    assert ids.forget("not-a-token") is False


@pytest.mark.redis
def test_with_redis_no_key_names_the_erased_session(rec, redis_url, redis_prefix):  # noqa: F811
    redis = pytest.importorskip("redis")
    client_r = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(client_r, prefix=redis_prefix + "rl:")
    revocations = RedisRevocations(client_r, prefix=redis_prefix + "revoked:")
    app = create_hardened_app(rec, secrets=SECRET, limits=LimitSettings(), limiter=limiter, revocations=revocations)
    client = TestClient(app)
    sid = client.post("/v1/sessions").json()["session_id"]
    assert client.post(f"/v1/sessions/{sid}/events", json={"kind": "search", "query": "json"}).status_code == 200
    digest = id_digest(sid)
    assert client_r.exists(f"{redis_prefix}rl:session:{digest}")
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    keys = [k.decode() for k in client_r.scan_iter(match=f"{redis_prefix}*")]
    assert not any(sid in k for k in keys)
    assert [k for k in keys if digest in k] == [f"{redis_prefix}revoked:{digest}"]
    ttl = client_r.pttl(f"{redis_prefix}revoked:{digest}") / 1000
    assert 7 * 24 * 3600 <= ttl <= 7 * 24 * 3600 + 301
    # a second app (another worker) refuses it too
    other = TestClient(create_hardened_app(rec, secrets=SECRET, limiter=limiter, revocations=revocations))
    assert _refused(other, sid)
    client_r.close()


def _everything_in_redis(client_r, prefix: str) -> list[bytes]:
    """Every key under the prefix and every value it holds, read as its type needs (not DUMP: it compresses)."""
    out: list[bytes] = []
    for key in client_r.scan_iter(match=prefix + "*"):
        out.append(key)
        kind = client_r.type(key).decode()
        if kind == "string":
            out.append(client_r.get(key))
        elif kind == "list":
            out.extend(client_r.lrange(key, 0, -1))
        elif kind == "set":
            out.extend(client_r.smembers(key))
        elif kind == "hash":
            for field, value in client_r.hgetall(key).items():
                out.extend((field, value))
        elif kind == "zset":
            out.extend(member for member, _ in client_r.zrange(key, 0, -1, withscores=True))
        else:  # pragma: no cover - the store writes no other type
            raise AssertionError(f"unexpected Redis type {kind} at {key!r}")
    return out


class _Monitor:
    """Every command the server runs while open (script arguments and the commands scripts run), as `MONITOR`
    shows them to an operator."""

    def __init__(self, redis_url: str) -> None:
        import threading

        import redis

        self.lines: list[str] = []
        self._client = redis.Redis.from_url(redis_url)
        self._monitor = self._client.monitor()
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for cmd in self._monitor.listen():
            self.lines.append(cmd["command"])
            if "monitor-test-done" in cmd["command"]:
                return

    def close(self) -> list[str]:
        self._client.echo("monitor-test-done")
        self._thread.join(10)
        assert not self._thread.is_alive(), "MONITOR did not see the closing command"
        self._monitor.__exit__(None, None, None)
        self._client.close()
        return self.lines


@pytest.mark.redis
def test_with_redis_no_key_value_or_command_carries_a_session_id(articles, fake_encoder, redis_url, redis_prefix):  # noqa: F811
    """Redis keys, values and the arguments of every command (`MONITOR`, `SLOWLOG`) are seen by whoever can reach
    Redis: none of them may hold a session id, which acts as the visitor. Through the store (track, suggest,
    erase) and through the hardened app on the same Redis."""
    redis = pytest.importorskip("redis")
    from plugin import SessionRecommender, SuggestSettings
    from plugin.redis_store import RedisSessionStore

    client_r = redis.Redis.from_url(redis_url)
    store = RedisSessionStore(client_r, prefix=redis_prefix)
    rec = SessionRecommender.build(
        articles,
        encoder=fake_encoder,
        progress=False,
        settings=SuggestSettings(min_score=-1.0, mmr_lambda=1.0),
        store=store,
    )
    monitor = _Monitor(redis_url)
    direct = "direct-session-" + "q7" * 20  # as long and as unique as an issued id
    rec.track(direct, "page_view", url="https://site.test/private", title="Private", text="zebra quokka page text")
    rec.track(direct, "article_open", article_id="ser-json")
    rec.track(direct, "search", query="json encoder")
    assert rec.suggest(direct, k=2)

    app = create_hardened_app(
        rec,
        secrets=SECRET,
        limits=LimitSettings(),
        limiter=RedisRateLimiter(client_r, prefix=redis_prefix + "rl:"),
        revocations=RedisRevocations(client_r, prefix=redis_prefix + "revoked:"),
    )
    client = TestClient(app)
    sid = _busy_session(client, rec)
    page = {"kind": "page_view", "url": "https://site.test/other", "title": "Other", "text": "an outside page"}
    assert client.post(f"/v1/sessions/{sid}/events", json=page).status_code == 200
    assert client.get(f"/v1/sessions/{sid}/suggestions").json()["suggestions"]
    assert len(rec.events(sid)) > 5 and len(rec.events(direct)) == 3

    held = b"\n".join(_everything_in_redis(client_r, redis_prefix))
    assert b"zebra quokka" in held  # the scan reads values: the page's text is there, by its hash
    for session_id in (direct, sid):
        assert session_id.encode() not in held
    assert rec.erase(direct) and client.delete(f"/v1/sessions/{sid}").status_code == 204
    commands = monitor.close()
    assert any("EVALSHA" in c.upper() for c in commands) and any(id_digest(sid) in c for c in commands)
    for session_id in (direct, sid):
        assert not [c for c in commands if session_id in c]
    slow = [e["command"] for e in client_r.slowlog_get(128)]  # usually empty (nothing takes 10 ms); never an id
    slow_bytes = b"\n".join(c if isinstance(c, bytes) else str(c).encode() for c in slow)
    assert direct.encode() not in slow_bytes and sid.encode() not in slow_bytes
    client_r.close()
