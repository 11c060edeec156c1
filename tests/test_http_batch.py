"""POST /v1/sessions/{id}/events/batch: the widget's one request per page view (events + suggestions) and per
render (impressions), sent as text/plain so browsers skip the CORS preflight."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from test_http_api import _error, client, sid  # noqa: E402,F401 (the API tests' fixtures: an app, a session)

from adapters.http import ServerSettings, create_app  # noqa: E402
from adapters.http.hardened import create_hardened_app  # noqa: E402
from adapters.http.limits import LimitSettings  # noqa: E402

SECRET = "x" * 48


def _batch(client, sid, body, content_type="text/plain;charset=UTF-8"):
    return client.post(
        f"/v1/sessions/{sid}/events/batch", content=json.dumps(body), headers={"Content-Type": content_type}
    )


@pytest.mark.parametrize("content_type", ["text/plain;charset=UTF-8", "application/json"])
def test_page_view_and_suggestions_in_one_request(client, sid, rec, content_type):
    r = _batch(
        client,
        sid,
        {"events": [{"kind": "page_view", "url": "https://kb.test/json", "event_id": "view-0001"}], "suggest": 2},
        content_type,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["results"] == [{"stored": True, "event_id": "view-0001", "article_id": "ser-json"}]
    assert len(body["suggestions"]) == 2 and "ser-json" not in {s["id"] for s in body["suggestions"]}
    assert all(s["id"].startswith("ser-") for s in body["suggestions"]), body["suggestions"]
    assert [e.article_id for e in rec.events(sid)] == ["ser-json"]


def test_impressions_of_one_render_are_stored_in_order_and_retries_dedupe(client, sid, rec):
    _batch(client, sid, {"events": [{"kind": "page_view", "url": "https://kb.test/json"}]})
    shown = [
        {"kind": "suggestion_impression", "article_id": a, "position": i, "event_id": f"imp-0000{i}"}
        for i, a in enumerate(["ser-pickle", "ser-shelve", "net-ssl"])
    ]
    first = _batch(client, sid, {"events": shown}).json()
    assert [x["stored"] for x in first["results"]] == [True, True, True] and first["suggestions"] is None
    again = _batch(client, sid, {"events": shown}).json()  # a beacon resent on page hide
    assert [x["stored"] for x in again["results"]] == [False, False, False]
    assert [(e.kind, e.article_id) for e in rec.events(sid)][1:] == [
        ("suggestion_impression", "ser-pickle"),
        ("suggestion_impression", "ser-shelve"),
        ("suggestion_impression", "net-ssl"),
    ]


def test_nothing_read_yet_is_an_empty_list_not_an_error(client, sid):
    r = _batch(client, sid, {"events": [], "suggest": 3})
    assert r.status_code == 200 and r.json() == {"results": [], "suggestions": []}


def test_a_bad_feedback_event_stores_nothing_of_its_batch(client, sid, rec):
    r = _batch(
        client,
        sid,
        {
            "events": [
                {"kind": "page_view", "url": "https://kb.test/json"},
                {"kind": "suggestion_impression", "article_id": "no-such", "position": 0},
            ]
        },
    )
    _error(r, 409, "unknown_article")  # as POST .../events: the session exists, the body names no KB article
    assert rec.events(sid) == []


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code", "says"),
    [
        ("{not json", "text/plain", 422, "invalid_request", "json"),
        (
            json.dumps({"events": [{"kind": "page_view", "url": "u", "extra": 1}]}),
            "text/plain",
            422,
            "invalid_request",
            "page_view.extra",
        ),
        (json.dumps({"events": [{"kind": "scroll"}]}), "text/plain", 422, "invalid_request", "kind"),
        (
            json.dumps({"events": [{"kind": "page_view", "url": "u"}] * 51}),
            "text/plain",
            422,
            "invalid_request",
            "events",
        ),
        (json.dumps({"events": [], "suggest": 0}), "application/json", 422, "invalid_request", "suggest"),
        (json.dumps({"events": []}), "application/x-www-form-urlencoded", 415, "unsupported_media_type", "text/plain"),
        (json.dumps({"events": []}), None, 415, "unsupported_media_type", "application/json"),
    ],
)
def test_bad_batches_are_clear_errors_and_store_nothing(client, sid, rec, raw, content_type, status, code, says):
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post(f"/v1/sessions/{sid}/events/batch", content=raw, headers=headers)
    assert says.lower() in _error(r, status, code).lower()
    assert rec.events(sid) == []


def test_unknown_session_is_404_like_every_session_call(client):
    _error(_batch(client, "nope", {"events": []}), 404, "unknown_session")


def test_text_plain_needs_no_preflight_but_keeps_cors_headers(client, sid):
    r = client.post(
        f"/v1/sessions/{sid}/events/batch",
        content=b'{"events": []}',
        headers={"Content-Type": "text/plain", "Origin": "https://site.test"},
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"


def test_hardened_app_applies_its_limits_to_batches(rec):
    client = TestClient(create_hardened_app(rec, secrets=SECRET, limits=LimitSettings(max_body_bytes=1024)))
    sid = client.post("/v1/sessions").json()["session_id"]
    big = {"events": [{"kind": "page_view", "url": "https://kb.test/json", "text": "x" * 2000}]}
    _error(_batch(client, sid, big), 413, "payload_too_large")
    ok = _batch(client, sid, {"events": [{"kind": "page_view", "url": "https://kb.test/json"}], "suggest": 1})
    assert ok.status_code == 200 and len(ok.json()["suggestions"]) == 1
    forged = sid[:-2] + ("AA" if sid[-2:] != "AA" else "BB")
    _error(_batch(client, forged, {"events": []}), 404, "unknown_session")


def test_openapi_documents_both_body_types(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/sessions/{session_id}/events/batch"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "text/plain"}
    items = body["text/plain"]["schema"]["properties"]["events"]["items"]
    refs = [one["$ref"].split("/")[-1] for one in items["oneOf"]]  # one body model per event kind
    assert refs and all(ref in spec["components"]["schemas"] for ref in refs)


def test_suggest_count_takes_whole_numbers_and_the_servers_bound(rec):
    """A whole float is an integer here as everywhere in the API; a server configured with a lower max_k says so
    in its OpenAPI document and refuses more (schemathesis found both)."""
    low = TestClient(create_app(rec, settings=ServerSettings(max_k=3, default_k=2)))
    s = low.post("/v1/sessions").json()["session_id"]
    r = low.post(
        f"/v1/sessions/{s}/events/batch",
        json={"events": [{"kind": "page_view", "url": "https://kb.test/json"}], "suggest": 2.0},
    )
    assert r.status_code == 200 and len(r.json()["suggestions"]) == 2
    _error(low.post(f"/v1/sessions/{s}/events/batch", json={"events": [], "suggest": 4}), 422, "invalid_request")
    body = low.get("/openapi.json").json()["paths"]["/v1/sessions/{session_id}/events/batch"]["post"]["requestBody"]
    suggest = body["content"]["application/json"]["schema"]["properties"]["suggest"]
    assert [o.get("maximum") for o in suggest["anyOf"] if "maximum" in o] == [3]
