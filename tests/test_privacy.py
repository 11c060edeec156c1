"""Privacy: idle sessions expire (30 min by default), consent=false keeps nothing, erase removes a session from
the store and the event log, and raw page text reaches no log unless the operator opts in."""

from __future__ import annotations

import logging

import pytest
from redis_server import redis_prefix, redis_url  # noqa: F401  (fixtures)
from store_contract import FakeClock

from plugin import (
    ConfigError,
    EmptySessionError,
    EventLog,
    InMemorySessionStore,
    SessionRecommender,
    SessionSettings,
    SuggestSettings,
)

SECRET = "Zebra-Quokka-4711 private page text"


def _rec(articles, fake_encoder, **kwargs) -> SessionRecommender:
    return SessionRecommender.build(
        articles,
        encoder=fake_encoder,
        progress=False,
        settings=SuggestSettings(min_score=-1.0, mmr_lambda=1.0),
        **kwargs,
    )


# reset tokens, signed-link signatures, path-parameter sessions, user info, OAuth fragments: what location.href carries
_URLS_WITH_SECRETS = (
    "https://site.test/account/reset?token=TOKEN-aaa111&email=visitor%40mail.test#step-2",
    "https://kb.test/json?X-Amz-Signature=SIG-bbb222&X-Amz-Credential=CRED-ccc333",
    "https://site.test/app;jsessionid=JSESSION-ddd444?x=1",
    "https://admin:PASS-eee555@site.test/private",
    "/docs/callback#access_token=TOKEN-fff666",
)


def test_default_ttl_is_thirty_minutes():
    assert SessionSettings().ttl_seconds == 30 * 60


def test_idle_session_is_forgotten_after_the_configured_ttl(articles, fake_encoder):
    clock = FakeClock()
    settings = SessionSettings(ttl_seconds=120)
    rec = _rec(articles, fake_encoder, store=InMemorySessionStore(settings, clock=clock), session_settings=settings)
    rec.track("s", "article_open", article_id="ser-json")
    clock.advance(119)
    assert rec.suggest("s")
    clock.advance(121)
    assert rec.events("s") == []
    with pytest.raises(EmptySessionError):
        rec.suggest("s")


def test_no_consent_suggests_from_the_current_page_and_keeps_nothing(articles, fake_encoder, tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    rec = _rec(articles, fake_encoder, event_log=log)
    rec.track("earlier", "article_open", article_id="net-http")  # another visitor's history must not leak in
    cached = len(rec.encoder.cache)
    log_size = log.path.stat().st_size
    got = rec.suggest_for_page(
        3, url="https://elsewhere.test/page", title="Serialize objects", text=f"pickle json serialize objects {SECRET}"
    )
    assert got and all(s.article.id.startswith("ser-") for s in got)
    assert len(rec.store) == 1 and not rec.store.exists("no-consent")
    assert len(rec.encoder.cache) == cached  # not even the embedding of the page text
    assert log.path.stat().st_size == log_size


def test_no_consent_leaves_no_bm25_scores_of_the_page_behind(articles, fake_encoder):
    """The page text's embedding was never cached for a visitor who did not consent, but BM25's scores of it were,
    under a digest of the text, for the session TTL (and a query's scores and vector too): a trace of what the
    visitor read or asked, which no erase can reach (there is no session to erase)."""
    rec = _rec(articles, fake_encoder)
    rec.track("kept", "page_view", url="https://site.test/kept", title="Sockets", text="socket tcp")
    rec.suggest("kept", 3)
    before = set(rec.lexical._scores), set(rec.lexical._tokens), set(rec.page_encoder.cache._data)
    title, text = "Serialize objects", f"pickle json serialize objects {SECRET}"
    assert rec.suggest_for_page(3, url="https://elsewhere.test/page", title=title, text=text)
    assert rec.suggest_for_page(3, title=title, query=f"how do I pickle {SECRET}")  # the plugin API takes a query
    assert (set(rec.lexical._scores), set(rec.lexical._tokens), set(rec.page_encoder.cache._data)) == before
    assert before[0]  # the consented session's scores stay


def test_no_consent_on_a_kb_page_excludes_that_page(rec):
    got = rec.suggest_for_page(3, url="https://kb.test/socket")
    ids = [s.article.id for s in got]
    assert "net-socket" not in ids and ids[0].startswith("net-")
    assert len(rec.store) == 0


def _erase_everywhere(rec: SessionRecommender, log: EventLog) -> None:
    for sid in ("gone", "kept"):
        rec.track(sid, "page_view", url=f"https://site.test/{sid}", title="Serialize", text=SECRET)
        rec.track(sid, "search", query="json")
    assert rec.erase("gone") is True
    assert rec.events("gone") == [] and not rec.store.exists("gone")
    assert {e.session_id for e in log} == {log.pseudonym("kept")}
    assert "gone" not in log.path.read_text()
    assert len(rec.events("kept")) == 2
    assert rec.erase("gone") is False
    # going forward: a new visit under that id starts from nothing
    rec.track("gone", "search", query="socket")
    assert [e.kind for e in rec.events("gone")] == ["search"]
    assert [e.query for e in log if e.session_id == log.pseudonym("gone")] == ["socket"]


def test_erase_removes_the_session_from_store_and_event_log(articles, fake_encoder, tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    _erase_everywhere(_rec(articles, fake_encoder, event_log=log), log)


@pytest.mark.redis
def test_erase_removes_the_session_from_redis_and_event_log(articles, fake_encoder, tmp_path, redis_url, redis_prefix):  # noqa: F811
    import redis

    from plugin.redis_store import RedisSessionStore

    store = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    log = EventLog(tmp_path / "events.jsonl")
    _erase_everywhere(_rec(articles, fake_encoder, store=store, event_log=log), log)
    from plugin.session_store import id_digest

    client = redis.Redis.from_url(redis_url)
    # what Redis holds under that id is the new visit only: one event, nothing of the erased one
    events = f"{redis_prefix}ev:{id_digest('gone')}"
    assert client.llen(events) == 1
    assert SECRET.encode() not in b"".join(client.lrange(events, 0, -1))


def _shared_page_workers(articles, store):
    """Two workers' recommenders on one store, each with its own encoder whose calls are counted."""
    from plugin import HashingEncoder

    first = _rec(articles, HashingEncoder(1024), store=store)
    encoder = HashingEncoder(1024)
    calls: list[list[str]] = []
    inner = encoder.encode
    encoder.encode = lambda texts: calls.append(list(texts)) or inner(texts)  # type: ignore[method-assign]
    second = SessionRecommender(first.kb, encoder, first.index, store=store, settings=first.settings)
    return first, second, calls


def _a_page_embedded_once_is_read_by_the_other_worker_and_erased_with_its_sessions(articles, store):
    first, second, calls = _shared_page_workers(articles, store)
    page = {"url": "https://site.test/p", "title": "Private page", "text": SECRET}
    first.track("a", "page_view", **page)
    second.track("b", "page_view", **page)  # another visitor reads the same page, on the other worker
    assert calls == []  # read from the store by its hash: not embedded again
    (ref,) = [e.content_ref for e in second.events("b")]
    assert second.pages.get(ref) is not None and second.suggest("b", k=2) and calls == []
    second.track("b", "page_view", url="https://site.test/q", title="Another page", text="socket tcp")
    assert len(calls) == 1  # a page nobody read before is embedded
    assert first.erase("a") and store.shared_content(ref) is not None  # "b" still holds the page
    assert second.erase("b") and store.shared_content(ref) is None  # its last holder erased: gone from the store
    assert second.pages.get(ref) is None  # and from the erasing worker's memory
    calls.clear()
    second.track("c", "page_view", **page)
    assert len(calls) == 1  # nothing left to read: embedded afresh


def test_a_page_another_worker_embedded_is_read_not_embedded_and_erase_still_removes_it(articles):
    _a_page_embedded_once_is_read_by_the_other_worker_and_erased_with_its_sessions(articles, InMemorySessionStore())


@pytest.mark.redis
def test_a_page_another_worker_embedded_is_read_from_redis_and_erased(articles, redis_url, redis_prefix):  # noqa: F811
    from plugin.redis_store import RedisSessionStore

    store = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    _a_page_embedded_once_is_read_by_the_other_worker_and_erased_with_its_sessions(articles, store)


def test_page_text_reaches_no_log_unless_opted_in(articles, fake_encoder, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    quiet = EventLog(tmp_path / "private.jsonl")
    rec = _rec(articles, fake_encoder, event_log=quiet)
    rec.track("s", "page_view", url="https://site.test/p", title="Serialize", text=SECRET)
    rec.suggest("s")
    rec.inject("s", "reply", k=2)
    rec.index = None  # make the chat path fail: it logs, but never the page text
    assert rec.inject("s", "still answered") == "still answered"
    assert caplog.records, "the failing chat path should have logged something"
    assert SECRET not in caplog.text
    assert SECRET not in quiet.path.read_text()
    assert [e.text for e in quiet if e.kind == "page_view"] == [None]  # impressions of the injected block follow

    opted_in = EventLog(tmp_path / "with-text.jsonl", log_text=True)
    rec2 = _rec(articles, fake_encoder, event_log=opted_in)
    rec2.track("s", "page_view", url="https://site.test/p", text=SECRET)
    assert [e.text for e in opted_in] == [SECRET]


def test_event_log_holds_pseudonyms_that_group_and_erase_but_are_not_ids(tmp_path):
    import json as _json

    from plugin import make_event

    path = tmp_path / "events.jsonl"
    a, b = EventLog(path), EventLog(path)  # two processes sharing a log share its key file
    assert not (tmp_path / "events.jsonl.key").exists()  # a reader never creates one
    a.append(make_event("visitor-1", "search", query="json"))
    b.append(make_event("visitor-1", "search", query="csv"))
    b.append(make_event("visitor-2", "search", query="tls"))
    names = [_json.loads(line)["session_id"] for line in path.read_text().splitlines()]
    assert names[0] == names[1] != names[2] and all(n.startswith("p-") and len(n) == 34 for n in names)
    assert "visitor-1" not in path.read_text()
    assert (tmp_path / "events.jsonl.key").stat().st_mode & 0o077 == 0  # owner-only

    # key rotation: lines written under an old key are still found on erase; so are raw ids from older versions
    rotated = EventLog(path, pseudonym_keys=[b"n" * 32, b"o" * 32])
    EventLog(path, pseudonym_keys=b"o" * 32).append(make_event("visitor-3", "search", query="old key"))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(
            _json.dumps(
                {"session_id": "visitor-3", "kind": "search", "ts": 1.0, "event_id": "legacy01", "query": "raw id"}
            )
            + "\n"
        )
    assert rotated.erase_session("visitor-3") == 2
    assert a.erase_session("visitor-1") == 2 and [e.query for e in a] == ["tls"]
    with pytest.raises(ConfigError):
        EventLog(path, pseudonym_keys=b"short")


def test_credentials_in_a_page_url_reach_no_event_log(rec, tmp_path):
    """The widget reports `location.href`: a reset token, a signed link's signature, a servlet session or a
    password in the url must not land in a log that analysts read. The page itself is still logged by its path,
    and a KB page by its article id."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from adapters.http import ServerSettings
    from adapters.http.hardened import create_hardened_app

    log = tmp_path / "events.jsonl"
    client = TestClient(create_hardened_app(rec, secrets="s" * 40, settings=ServerSettings(event_log=log)))
    sid = client.post("/v1/sessions").json()["session_id"]
    pages = list(_URLS_WITH_SECRETS)
    r = client.post(
        f"/v1/sessions/{sid}/events/batch", json={"events": [{"kind": "page_view", "url": u} for u in pages]}
    )
    assert r.status_code == 200
    text = log.read_text()
    for secret in ("TOKEN-aaa111", "visitor", "SIG-bbb222", "CRED-ccc333", "JSESSION-ddd444", "PASS-eee555", "admin"):
        assert secret not in text, secret
    logged = [e for e in EventLog(log) if e.kind == "page_view"]
    assert [e.url for e in logged] == [
        "https://site.test/account/reset",
        "https://kb.test/json",
        "https://site.test/app",
        "https://site.test/private",
        "/docs/callback",
    ]
    assert logged[1].article_id == "ser-json"  # the KB page is still known by its id


def test_credentials_in_a_page_url_stay_out_of_the_session_store(articles, fake_encoder):
    """The session store keeps urls as the event log does (no query, fragment, path parameters or user info),
    after the KB lookup, which still sees the whole url: a site whose articles are `?p=123` pages keeps its links."""
    from plugin import Article

    blog = [
        Article("blog-123", "Blog post on json encoders", "https://blog.test/?p=123", "json encoder decoder dumps"),
        Article("blog-456", "Blog post on pickle", "https://blog.test/?p=456", "pickle serialize objects"),
    ]
    rec = _rec([*articles, *blog], fake_encoder)
    pages = [*_URLS_WITH_SECRETS, "https://blog.test/?p=123"]
    for i, url in enumerate(pages):
        rec.track("s", "page_view", url=url, title=f"Page {i}", text=f"text of page {i} json", ts=float(10 * i))
    stored = rec.events("s")
    held = repr(stored) + repr(rec.context("s"))
    for secret in ("TOKEN-", "visitor", "SIG-bbb222", "CRED-ccc333", "JSESSION-ddd444", "PASS-eee555", "admin"):
        assert secret not in held, secret
    assert [e.url for e in stored] == [
        "https://site.test/account/reset",
        "https://kb.test/json",
        "https://site.test/app",
        "https://site.test/private",
        "/docs/callback",
        "https://blog.test/",
    ]
    # the KB pages were linked from their whole urls, the query of `?p=123` included
    assert [e.article_id for e in stored] == [None, "ser-json", None, None, None, "blog-123"]
    shown = [s.article.id for s in rec.suggest("s", k=len(articles) + 2)]
    assert "blog-456" in shown and "blog-123" not in shown and "ser-json" not in shown  # read pages stay excluded
    # the stripped url of the blog page names the blog's front page, which is no article: nothing else is excluded
    assert set(shown) == {a.id for a in [*articles, *blog]} - {"blog-123", "ser-json"}


def _vectors_of(rec: SessionRecommender, texts) -> list[bool]:
    from plugin.encoder import content_key

    return [rec.page_encoder.cache.get(content_key(rec.encoder.name, t)) is not None for t in texts]


def test_erase_drops_the_vectors_of_the_sessions_words_from_this_workers_caches(articles, fake_encoder):
    """A session's page texts and searches are embedded on this worker; erase must not leave their vectors in the
    page cache (an LRU with room for 10,000), where they outlived the session indefinitely."""
    rec = _rec(articles, fake_encoder)
    private_query = "zebra quokka visitor@mail.test divorce lawyer"
    rec.track("gone", "page_view", url="https://site.test/p", title="Private page", text=SECRET)
    rec.track("gone", "page_view", url="https://site.test/t", title="Title only private page")
    rec.track("gone", "search", query=private_query)
    rec.track("kept", "search", query="socket tcp")
    assert rec.suggest("gone", k=2) and rec.suggest("kept", k=2)
    words = ["Private page\n" + SECRET, "Title only private page", private_query]
    assert _vectors_of(rec, words[1:]) == [True, True]  # what suggest embedded and cached
    refs = {e.kind: e.content_ref for e in rec.events("gone") if e.content_ref}  # the text page's and the search's
    (kept_ref,) = [e.content_ref for e in rec.events("kept")]
    scored = set(rec.lexical._scores)  # BM25's cache: stored contents by their hash, a title-only page by a digest
    assert scored == {("p", refs["page_view"]), ("p", refs["search"]), ("p", kept_ref), *_digests(words[1:2])}
    assert rec.erase("gone")
    assert _vectors_of(rec, words) == [False, False, False]
    assert _vectors_of(rec, ["socket tcp"]) == [True]  # another session's stay
    assert set(rec.lexical._scores) == {("p", kept_ref)}  # "socket tcp", of the session that was kept


def test_erase_drops_the_vectors_and_scores_of_the_sessions_questions(articles, fake_encoder):
    """A chat question or a `?query=` is no event (the store does not hold it), yet suggest() embeds and scores it
    in this worker's caches: erase must find it there too (review 2026-12-01: it outlived the erase)."""
    rec = _rec(articles, fake_encoder)
    question = "can my divorce lawyer see visitor@mail.test"
    rec.track("gone", "page_view", url="https://site.test/t", title="Title only private page")
    rec.track("kept", "page_view", url="https://site.test/u", title="Another page")
    assert rec.suggest("gone", k=2, query=question) and rec.suggest("kept", k=2, query="socket tcp")
    assert rec.suggest("gone", k=2, query="json parse")  # a second question of the same session
    assert _vectors_of(rec, [question, "json parse", "socket tcp"]) == [True, True, True]
    assert _digests([question]) <= set(rec.lexical._scores)
    assert rec.erase("gone")
    assert _vectors_of(rec, [question, "json parse"]) == [False, False]
    assert not _digests([question, "json parse"]) & set(rec.lexical._scores)
    assert _vectors_of(rec, ["socket tcp"]) == [True]  # another session's question stays
    assert _digests(["socket tcp"]) <= set(rec.lexical._scores)


def test_erase_drops_the_vector_of_a_question_a_responder_searched_with(articles, fake_encoder):
    """The extractive responder answers the chat message with `search(message, session_id=…)`, which embeds the
    message as typed into this worker's cache; suggest() notes the question cut and with its spaces collapsed
    (`truncate_query`), so a message with a line break, a double space or over 500 characters kept its vector past
    the erase (and one searched while its session was being erased, too)."""
    rec = _rec(articles, fake_encoder)
    question = "can my divorce lawyer\nsee  visitor@mail.test " + "please " * 80
    rec.track("gone", "page_view", url="https://kb.test/json")
    rec.track("kept", "page_view", url="https://kb.test/socket")
    assert rec.search(question, 3, session_id="gone", session_weight=0.15)
    assert rec.search("socket tcp\nhelp", 3, session_id="kept", session_weight=0.15)
    assert _vectors_of(rec, [question, "socket tcp\nhelp"]) == [True, True]
    assert rec.erase("gone")
    assert _vectors_of(rec, [question, "socket tcp\nhelp"]) == [False, True]  # another session's stays
    assert rec.search(question, 3, session_id="gone", session_weight=0.15)  # in flight as the erase ran
    assert _vectors_of(rec, [question]) == [False]


def test_an_erase_the_store_refuses_leaves_no_question_behind(articles, fake_encoder):
    """Erase takes the session's questions off this worker's note before it reads the store: when the store then
    fails (Redis unreachable: 503, the client retries), the note is gone — so the questions' vectors and scores
    must be gone too, or no retry could find them again."""
    from plugin import StoreUnavailableError

    rec = _rec(articles, fake_encoder)
    question = "can my divorce lawyer see visitor@mail.test"
    rec.track("gone", "page_view", url="https://site.test/t", title="Title only private page")
    assert rec.suggest("gone", k=2, query=question)
    read = rec.store.read

    def unreachable(session_id):
        raise StoreUnavailableError("the session store is not answering; retry in 1 s")

    rec.store.read = unreachable  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailableError):
        rec.erase("gone")
    assert _vectors_of(rec, [question]) == [False] and not _digests([question]) & set(rec.lexical._scores)
    rec.store.read = read  # type: ignore[method-assign]
    assert rec.erase("gone") and rec.events("gone") == []  # the retry finishes the rest


def test_a_question_asked_while_its_session_is_erased_leaves_nothing(articles, fake_encoder):
    """The erase runs between the suggestion's own erase check and its note of the question: the question is then
    not noted (the session is marked erased), so the suggestion drops what it left itself."""
    rec = _rec(articles, fake_encoder)
    rec.track("gone", "page_view", url="https://site.test/t", title="Title only private page")
    asked = rec.rows.asked

    def erase_first(session_id, question):
        rec.erase(session_id)
        return asked(session_id, question)

    rec.rows.asked = erase_first  # type: ignore[method-assign]
    rec.suggest("gone", k=2, query="a private question")
    assert _vectors_of(rec, ["a private question"]) == [False]
    assert len(rec.lexical._scores) == 0 and rec.rows.questions("gone") == ()


@pytest.mark.parametrize("when", ["after the context read", "while the rows are resolved"])
def test_a_suggestion_in_flight_during_an_erase_leaves_nothing_in_this_workers_caches(articles, fake_encoder, when):
    """The HTTP chat route and GET suggestions read the context, then run suggest() in the thread pool: an erase in
    between (or while the rows are resolved) dropped the caches first, and the suggestion then put the session's
    page vectors, BM25 scores and page contents back on the erasing worker (review 2026-12-01)."""
    rec = _rec(articles, fake_encoder)
    rec.track("gone", "page_view", url="https://site.test/p", title="Private page", text=SECRET)
    rec.track("gone", "page_view", url="https://site.test/t", title="Title only private page")
    rec.track("gone", "search", query="zebra quokka visitor@mail.test divorce lawyer")
    ctx = rec.context("gone")
    if when == "after the context read":
        rec.erase("gone")
    else:
        from test_session_rows import erase_while_resolving

        erase_while_resolving(rec, "gone")
    rec.suggest("gone", k=2, context=ctx)
    assert len(rec.page_encoder.cache) == 0 and len(rec.lexical._scores) == 0 and len(rec.pages._data) == 0
    assert rec.rows.get("gone") is None


def _digests(texts) -> set:
    from plugin.lexical import _query

    return {_query(t, None)[1] for t in texts}


def test_the_page_vector_cache_lapses_after_the_session_ttl_on_every_worker():
    """Another worker that embedded an erased session's words cannot be told: its entries lapse after the session
    TTL, as its page contents do."""
    import numpy as np

    from plugin.encoder import EmbeddingCache

    now = [0.0]
    cache = EmbeddingCache(2, "enc", 100, ttl_seconds=60, clock=lambda: now[0])
    cache.put("erased-session-query", np.ones(2, np.float32))
    now[0] = 50
    cache.put("fresh", np.ones(2, np.float32))
    assert cache.get("erased-session-query") is not None  # a use keeps it
    now[0] = 109
    assert cache.get("fresh") is not None
    now[0] = 165
    assert cache.get("erased-session-query") is None and len(cache) == 1
    cache.forget(["fresh"])
    assert len(cache) == 0
    with pytest.raises(ConfigError):
        EmbeddingCache(2, "enc", ttl_seconds=0)


def test_the_recommender_gives_its_page_vector_cache_the_session_ttl(articles, fake_encoder):
    rec = _rec(articles, fake_encoder, session_settings=SessionSettings(ttl_seconds=90))
    assert rec.page_encoder.cache.ttl_seconds == 90
    assert rec.encoder.cache.ttl_seconds is None  # the article cache saved with the index never lapses


def test_a_line_nested_past_the_decoders_limit_loses_no_log_and_stops_no_erase(tmp_path):
    """'A log is never lost to one bad line': a line nested deeper than json's recursion limit (another writer's,
    a corrupted copy) raised RecursionError out of every reader and out of erase."""
    from plugin import make_event
    from plugin.event_log import click_sessions, read_records

    log = EventLog(tmp_path / "events.jsonl")
    log.append(make_event("gone", "page_view", article_id="ser-json"))
    with open(log.path, "a", encoding="utf-8") as fh:
        fh.write("[" * 100_000 + "]" * 100_000 + "\n")
    log.append(make_event("kept", "page_view", article_id="ser-csv"))
    log.append(make_event("kept", "page_view", article_id="ser-json"))
    assert [r["article_id"] for r in read_records(log.path)] == ["ser-json", "ser-csv", "ser-json"]
    assert [s.items for s in click_sessions(log)] == [("ser-csv", "ser-json")]
    assert log.erase_session("gone") == 1
    assert {e.session_id for e in log} == {log.pseudonym("kept")}


def test_the_event_log_is_readable_by_its_owner_only_before_and_after_an_erase(tmp_path):
    """docs/security.md, round 2: the log holds what visitors searched for; `open(path, "a")` created it 0644 under
    the usual umask (every local user could read it), while an erase renamed in a 0600 file."""
    import os

    from plugin import make_event

    old = os.umask(0o022)
    try:
        log = EventLog(tmp_path / "logs" / "events.jsonl", pseudonym_keys=b"k" * 32)
        log.append(make_event("visitor-1", "search", query="my divorce lawyer"))
        assert log.path.stat().st_mode & 0o777 == 0o600
        log.append(make_event("visitor-2", "search", query="tls"))
        assert log.erase_session("visitor-1") == 1 and log.path.stat().st_mode & 0o777 == 0o600
        log.append(make_event("visitor-3", "search", query="csv"))
        assert log.path.stat().st_mode & 0o777 == 0o600 and [e.query for e in log] == ["tls", "csv"]
    finally:
        os.umask(old)
