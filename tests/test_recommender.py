"""The core pipeline on a synthetic KB with a known answer (two topics + a distractor)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from conftest import TOPIC_ARTICLES

from plugin import (
    Article,
    ConfigError,
    DimensionMismatchError,
    EmptySessionError,
    HashingEncoder,
    InvalidEventError,
    SessionRecommender,
    SuggestSettings,
    UnknownArticleError,
)

SER = {"ser-json", "ser-pickle", "ser-shelve", "ser-marshal", "ser-csv"}
NET = {"net-http", "net-socket", "net-url", "net-ssl"}


def test_sessions_on_a_topic_get_that_topic_first(rec):
    rec.track("a", url="https://kb.test/json", title="JSON serialization guide")
    rec.track("a", article_id="ser-pickle")
    rec.track("b", url="https://kb.test/http")
    rec.track("b", url="https://kb.test/socket")
    sa = [s.article.id for s in rec.suggest("a", k=3)]
    sb = [s.article.id for s in rec.suggest("b", k=2)]
    assert set(sa) <= SER and set(sb) <= NET
    assert not {"ser-json", "ser-pickle"} & set(sa), "already-read articles are never suggested"
    assert not {"net-http", "net-socket"} & set(sb)


def test_intent_follows_the_latest_reading(rec):
    rec.track("s", article_id="ser-json")
    rec.track("s", article_id="ser-pickle")
    rec.track("s", article_id="net-http")
    rec.track("s", article_id="net-socket")
    top = rec.suggest("s", k=1)[0]
    assert top.article.id in NET


def test_reasons_name_the_pages_that_drove_each_suggestion(rec):
    rec.track("s", article_id="ser-pickle", title="Pickle serialization of python objects")
    rec.track("s", url="https://elsewhere.test/blog", title="My trip to the zoo", text="giraffes elephants zoo")
    sug = rec.suggest("s", k=2)
    assert sug and all("Pickle serialization of python objects" in s.drivers for s in sug if s.article.id in SER)
    assert any(s.reason.startswith("because you read") for s in sug)


def test_pages_outside_the_kb_are_first_class(rec):
    rec.track(
        "s", url="https://blog.example/networking", title="Notes on tcp sockets", text="socket tcp network connect"
    )
    ids = [s.article.id for s in rec.suggest("s", k=2)]
    assert set(ids) <= NET


def test_search_events_and_query_blending(rec):
    rec.track("s", "search", query="tls certificate encryption")
    assert rec.suggest("s", k=1)[0].article.id == "net-ssl"
    rec.track("q", article_id="net-http")
    blended = rec.suggest("q", k=1, query="turtle graphics drawing canvas", query_weight=0.9)
    assert blended[0].article.id == "misc-turtle"


def test_locale_tag_exclude_and_min_score_rules(rec):
    rec.track("s", article_id="ser-json")
    assert "ser-csv" not in {s.article.id for s in rec.suggest("s", k=5, locale="en")}
    assert {s.article.id for s in rec.suggest("s", k=5, tags=["net"])} <= NET
    assert "ser-pickle" not in {s.article.id for s in rec.suggest("s", k=5, exclude=["ser-pickle"])}
    assert rec.suggest("s", k=5, min_score=0.99) == []


def test_freshness_boost_reorders_near_ties(articles, fake_encoder):
    now = datetime.now(timezone.utc)
    arts = [
        Article(
            "old",
            "pickle serialize objects",
            "https://kb.test/o",
            "pickle serialize",
            updated_at=now - timedelta(days=900),
        ),
        Article("new", "pickle serialize objects", "https://kb.test/n", "pickle serialize", updated_at=now),
        Article("seed", "pickle", "https://kb.test/s", "pickle serialize"),
    ]
    fresh = SessionRecommender.build(
        arts,
        encoder=fake_encoder,
        progress=False,
        settings=SuggestSettings(freshness_weight=0.2, min_score=-1, mmr_lambda=1.0),
    )
    fresh.track("s", article_id="seed")
    top = fresh.suggest("s", k=2)
    assert [s.article.id for s in top] == ["new", "old"]
    assert top[0].score > top[1].score


def test_mmr_trades_relevance_for_diversity(fake_encoder):
    arts = [
        Article(
            f"dup{i}", "pickle serialize objects binary", f"https://kb.test/d{i}", "pickle serialize objects binary"
        )
        for i in range(3)
    ]
    arts += [
        Article("other", "json serialize objects text", "https://kb.test/j", "json serialize objects text"),
        Article("seed", "pickle serialize objects", "https://kb.test/s", "pickle serialize objects"),
    ]
    # no hubness discount: it would demote the three identical pages too, and this is about MMR alone
    plain = SessionRecommender.build(
        arts,
        encoder=fake_encoder,
        progress=False,
        settings=SuggestSettings(mmr_lambda=1.0, min_score=-1, hubness_weight=0),
    )
    diverse = SessionRecommender.build(
        arts,
        encoder=fake_encoder,
        progress=False,
        settings=SuggestSettings(mmr_lambda=0.3, min_score=-1, hubness_weight=0),
    )
    for r in (plain, diverse):
        r.track("s", article_id="seed")
    assert "other" not in [s.article.id for s in plain.suggest("s", k=2)]
    assert "other" in [s.article.id for s in diverse.suggest("s", k=2)]


def test_bad_input_is_a_clear_error_and_loses_nothing(rec):
    rec.track("s", article_id="ser-json")
    with pytest.raises(InvalidEventError, match="Valid kinds are"):
        rec.track("s", "teleport", url="x")
    with pytest.raises(InvalidEventError, match="needs at least one of"):
        rec.track("s", "page_view")
    with pytest.raises(InvalidEventError, match="non-empty query"):
        rec.track("s", "search", query="   ")
    with pytest.raises(EmptySessionError):
        rec.suggest("never-seen", k=3)
    with pytest.raises(UnknownArticleError, match="nope"):
        rec.suggest_for(["nope"])
    with pytest.raises(ValueError, match="between 1 and 100"):
        rec.suggest("s", k=0)
    for k in (2.5, "3", True):  # a TypeError from deep inside (or k=True taken as 1) before
        with pytest.raises(ConfigError, match="an integer between 1 and 100"):
            rec.suggest("s", k=k)
    assert [e.article_id for e in rec.events("s")] == ["ser-json"]


def test_duplicates_huge_and_non_utf8_text(rec):
    first = rec.track("s", url="https://blog.example/x", title="tcp sockets", event_id="e1")
    assert first is not None
    assert rec.track("s", url="https://blog.example/x", title="tcp sockets", event_id="e1") is None
    assert rec.track("s", url="https://blog.example/x", title="tcp sockets") is None  # reload within 2 s
    ev = rec.track("s", url="https://blog.example/y", title=b"caf\xe9 sockets", text="socket " * 100_000)
    assert ev.title == "caf\ufffd sockets"
    assert len(ev.text) == rec.session_settings.max_text_chars
    assert len(rec.events("s")) == 2
    assert rec.suggest("s", k=2)


def test_save_load_roundtrip_and_incremental_updates(rec, tmp_path, fake_encoder):
    rec.save(tmp_path)
    loaded = SessionRecommender.load(tmp_path, encoder=fake_encoder)
    assert len(loaded.kb) == len(rec.kb)
    loaded.track("s", article_id="ser-json")
    assert [s.article.id for s in loaded.suggest("s", k=3)] == [
        s.article.id for s in rec.suggest_for(["ser-json"], k=3)
    ]
    # update one article, add one, delete one: no rebuild, only the changed texts are encoded
    before = loaded.encoder.misses
    loaded.upsert_articles(
        [
            Article("ser-json", "JSON guide v2", "https://kb.test/json", "json serialize text"),
            Article("ser-yaml", "YAML serialization", "https://kb.test/yaml", "yaml serialize objects text"),
        ]
    )
    loaded.remove_articles(["ser-marshal"])
    assert loaded.encoder.misses - before == 4  # the two changed articles: each its text and its title
    assert "ser-marshal" not in {s.article.id for s in loaded.suggest("s", k=9)}
    with pytest.raises(UnknownArticleError):
        loaded.remove_articles(["ser-marshal"])
    loaded.save(tmp_path)
    again = SessionRecommender.load(tmp_path, encoder=fake_encoder)
    assert again.kb.get("ser-json").title == "JSON guide v2" and "ser-yaml" in again.index
    again.upsert_articles(list(again.kb))
    assert again.encoder.misses == 0, "re-indexing an unchanged KB encodes nothing"


def test_index_built_with_another_dimension_is_refused(rec, tmp_path):
    rec.save(tmp_path)
    with pytest.raises(DimensionMismatchError, match="1024-d"):
        SessionRecommender.load(tmp_path, encoder=HashingEncoder(64))


def test_hnsw_index_supports_updates_and_deletes(articles, fake_encoder):
    r = SessionRecommender.build(
        articles,
        encoder=fake_encoder,
        index_kind="hnsw",
        progress=False,
        settings=SuggestSettings(min_score=-1, mmr_lambda=1.0),
    )
    r.remove_articles(["ser-pickle"])
    r.track("s", article_id="ser-json")
    ids = [s.article.id for s in r.suggest("s", k=9)]
    assert "ser-pickle" not in ids and set(ids[:2]) <= SER


def test_exclude_seen_can_be_turned_off_per_call_and_query_reasons_are_short(rec):
    rec.track("s", article_id="ser-json")
    assert "ser-json" not in {s.article.id for s in rec.suggest("s", k=9)}
    assert "ser-json" in {s.article.id for s in rec.suggest("s", k=9, exclude_seen=False)}
    long_q = "turtle graphics drawing canvas " * 10
    only_query = rec.suggest("nobody", k=1, query=long_q)
    assert only_query[0].reason.startswith("matches your question “turtle graphics")
    assert len(only_query[0].reason) < 80


def test_reasons_use_the_kb_title_when_the_event_carried_only_a_url(rec):
    rec.track("s", url="https://kb.test/pickle")
    sug = rec.suggest("s", k=2)
    assert sug and all(s.drivers == ("Pickle serialization of python objects",) for s in sug)


def test_filters_find_rare_matches_beyond_the_first_candidate_pool(fake_encoder):
    arts = [
        Article(
            f"en{i}",
            f"pickle serialize objects part {i}",
            f"https://kb.test/en{i}",
            "pickle serialize objects",
            locale="en",
        )
        for i in range(80)
    ]
    arts.append(Article("de0", "Turtle Grafik", "https://kb.test/de0", "turtle zeichnen", locale="de", tags=("fun",)))
    r = SessionRecommender.build(
        arts, encoder=fake_encoder, progress=False, settings=SuggestSettings(min_score=None, candidate_pool=5)
    )
    r.track("s", article_id="en0")
    assert [s.article.id for s in r.suggest("s", k=3, locale="de")] == ["de0"]
    assert [s.article.id for s in r.suggest("s", k=3, tags=["fun"])] == ["de0"]


def test_a_zero_shot_save_removes_a_trained_model_saved_there_before(rec, tmp_path, fake_encoder):
    from plugin.intent import ContentSTAMP, ContentSTAMPConfig
    from plugin.stamp import STAMPConfig

    rec.intent_model = ContentSTAMP(ContentSTAMPConfig(input_dim=1024, stamp=STAMPConfig(dim=8)))
    rec.save(tmp_path)
    assert not SessionRecommender.load(tmp_path, encoder=fake_encoder).intent_model.config.zero_shot
    rec.intent_model = ContentSTAMP.zero_shot(1024)
    rec.save(tmp_path)
    from plugin import ZeroShotIntent

    assert isinstance(SessionRecommender.load(tmp_path, encoder=fake_encoder).intent_model, ZeroShotIntent)
    assert not list(tmp_path.glob("intent_model*"))


def test_an_index_built_by_another_encoder_of_the_same_size_is_refused(rec, tmp_path):
    from plugin import ConfigError

    class Other(HashingEncoder):
        def __init__(self):
            super().__init__(1024)
            self.name = "other-model"

    rec.save(tmp_path)
    with pytest.raises(ConfigError, match="built with encoder 'hashing:1024'.*--rebuild"):
        SessionRecommender.load(tmp_path, encoder=Other())


def test_visitor_pages_use_a_bounded_cache_that_is_not_saved(articles, fake_encoder, tmp_path):
    from plugin.page_contents import PageContents

    r = SessionRecommender.build(
        articles, encoder=fake_encoder, progress=False, page_cache_size=2, page_contents=PageContents(max_items=2)
    )
    for i in range(5):
        r.track("s", url=f"https://blog.test/{i}", title=f"socket notes {i}", text=f"tcp socket network {i}")
    for i in range(3):
        r.track("s", url=f"https://blog.test/t{i}", title=f"title only {i}")
    kb_entries = 2 * len(articles)  # each article's text and its title (plugin.titles); no visitor page
    assert len(r.pages) == 2 and len(r.page_encoder.cache) == 2 and len(r.encoder.cache) == kb_entries
    events = r.events("s")
    assert all(e.text is None and e.content_ref for e in events[:5])  # the store keeps no page text in events
    assert not r.needs_encoding(events[:5])  # pages with text: their vectors are read back from the store
    assert r.needs_encoding(events)  # the oldest title-only page was evicted from the bounded cache
    assert not r.needs_encoding(events[-2:])
    found = r.suggest("s", k=1)  # evicted pages are read back or embedded again
    assert found and len(r.pages) == 2
    r.save(tmp_path)
    assert len(SessionRecommender.load(tmp_path, encoder=fake_encoder).encoder.cache) == kb_entries


def test_hub_pages_count_as_read_but_are_never_suggested(fake_encoder):
    arts = [
        Article(
            "index.html",
            "Serialization docs home",
            "https://kb.test/docs/index.html",
            "json pickle shelve marshal serialize objects",
            meta={"hub": True},
        ),
        Article(
            "ser/index.html",
            "Serialization formats",
            "https://kb.test/docs/ser/index.html",
            "json pickle serialize objects formats",
            meta={"hub": True},
        ),
        *[a for a in TOPIC_ARTICLES if a.id.startswith(("ser-", "net-"))],
    ]
    r = SessionRecommender.build(
        arts, encoder=fake_encoder, progress=False, settings=SuggestSettings(min_score=-1.0, mmr_lambda=1.0)
    )
    r.track("v", url="https://kb.test/docs/?highlight=json")  # the root, as a browser sends it
    assert r.events("v")[0].article_id == "index.html"
    got = [s.article.id for s in r.suggest("v", k=20)]
    assert got and not {"index.html", "ser/index.html"} & set(got)  # not the page they are on, nor a hub
    assert set(got[:3]) <= SER  # the hub they read set the topic


def test_embeds_on_track_says_which_events_run_the_encoder(rec, monkeypatch):
    # the HTTP app keeps the others on its event loop: it must never run the encoder for one of those
    calls: list[int] = []
    inner = rec.page_encoder.inner.encode

    def counting(texts):
        calls.append(len(texts))
        return inner(texts)

    monkeypatch.setattr(rec.page_encoder.inner, "encode", counting)
    monkeypatch.setattr(rec.page_encoder, "encode", counting)
    cases = [
        ("page_view", {"url": "https://kb.test/json"}),
        ("page_view", {"article_id": "ser-json"}),
        ("suggestion_impression", {"article_id": "ser-json", "position": 0}),
        ("suggestion_click", {"article_id": "ser-json", "position": 0}),
        ("page_view", {"url": "https://blog.example/tcp", "title": "tcp", "text": "socket tcp connect"}),
        ("page_view", {"url": "https://blog.example/udp"}),
        ("search", {"query": "tcp sockets"}),
    ]
    for i, (kind, fields) in enumerate(cases):
        before = len(calls)
        says = rec.embeds_on_track(kind, url=fields.get("url"), article_id=fields.get("article_id"))
        rec.track(f"s{i}", kind, **fields)
        assert says == (len(calls) > before), (kind, fields)
    assert len(calls) == 3  # the two pages off the KB and the search
