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
