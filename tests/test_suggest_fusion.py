"""The data-chosen suggestion mechanisms: centred scores, BM25 fusion, two interests sharing the slots."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from plugin import Article, ArticleIndex, SessionRecommender, SuggestSettings
from plugin.lexical import LexicalIndex
from plugin.recommender import _quotas, _share_slots
from plugin.rules import Candidate

SER = {"ser-json", "ser-pickle", "ser-shelve", "ser-marshal", "ser-csv"}
NET = {"net-http", "net-socket", "net-url", "net-ssl"}
OPEN = dict(min_score=None, mmr_lambda=1.0)


class NoiseEncoder:
    """A dense model that knows nothing: each text gets a random unit vector seeded by its hash."""

    name = "noise:32"
    dim = 32

    def encode(self, texts):
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=4).digest(), "little")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            out[i] = v / np.linalg.norm(v)
        return out


def _lexical_kb() -> list[Article]:
    filler = [
        "gardening soil compost",
        "weather rain forecast",
        "cooking pasta sauce",
        "music guitar chords",
        "football league table",
        "painting canvas brushes",
        "hiking trail boots",
        "coffee beans roast",
    ]
    arts = [Article(f"f{i}", f"Topic {i}", text=f"{t} general notes about {t}") for i, t in enumerate(filler)]
    arts.append(Article("vac", "Routine upkeep", text="autovacuum thresholds tune autovacuum workers and freeze age"))
    arts.append(Article("read", "Reading", text="how autovacuum decides when to freeze old rows"))
    return arts


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_lexical_fusion_finds_what_an_uninformed_dense_model_misses(weight):
    rec = SessionRecommender.build(
        _lexical_kb(),
        encoder=NoiseEncoder(),
        progress=False,  # titles: noise too, off
        settings=SuggestSettings(**OPEN, lexical_weight=weight, topic_split=None, title_weight=0.0),
    )
    rec.track("s", article_id="read")
    top = rec.suggest("s", k=1)[0].article.id
    if weight:
        assert top == "vac"  # the only other page sharing "autovacuum" and "freeze"
    else:
        assert top != "vac"  # noise vectors alone rank it nowhere in particular


def test_lexical_index_scores_and_rebuilds_after_invalidate():
    docs = {"a": "postgres vacuum freeze", "b": "django models queries", "c": "vacuum cleaner review"}
    lex = LexicalIndex(lambda: (list(docs), list(docs.values())))
    s = lex.search(["vacuum freeze"], [1.0])
    assert s.top(3) == ["a", "c"]  # b shares no word: no positive score
    assert s.get(["a", "zz"]).tolist() == [1.0, 0.0]
    docs["d"] = "freeze vacuum freeze vacuum"
    assert "d" not in lex.search(["freeze"], [1.0]).top(5)  # the built index is kept until invalidated
    lex.invalidate()
    assert lex.search(["freeze"], [1.0]).top(1) == ["d"]


def test_a_topic_switch_gets_slots_for_both_interests(articles, fake_encoder):
    def composition(share: float) -> tuple[str, int, int]:
        rec = SessionRecommender.build(
            articles,
            encoder=fake_encoder,
            progress=False,
            settings=SuggestSettings(**OPEN, topic_split=0.2, newest_share=share),
        )
        for aid in ("ser-json", "ser-pickle", "net-http"):
            rec.track("s", article_id=aid)
        got = [s.article.id for s in rec.suggest("s", k=5)]
        return got[0], len(set(got) & NET), len(set(got) & SER)

    first, net, ser = composition(0.6)
    assert first in NET, "the newest interest leads"
    assert (net, ser) == (3, 2)  # 0.6 of 5 slots for the newest topic, the rest for the earlier one
    assert composition(0.4)[1:] == (2, 3)


def test_one_topic_sessions_are_not_split(articles, fake_encoder):
    rec = SessionRecommender.build(
        articles, encoder=fake_encoder, progress=False, settings=SuggestSettings(**OPEN, topic_split=0.2)
    )
    for aid in ("ser-pickle", "ser-shelve"):  # centred cosine 0.3 with this encoder
        rec.track("s", article_id=aid)
    assert len(rec._interests(rec._session_items(rec.events("s"))[0])) == 1
    assert {s.article.id for s in rec.suggest("s", k=2)} <= SER


def _cand(aid: str) -> tuple[Candidate, np.ndarray]:
    return Candidate(Article(aid, aid), 0.5, 0.5), np.zeros(2, np.float32)


def test_share_slots_quota_order_dedupe_and_fill():
    new = [_cand(a) for a in ("n1", "n2", "n3", "n4")]
    old = [_cand(a) for a in ("n1", "o1", "o2")]
    ids = [c.article.id for c, _ in _share_slots([new, old], [0.6, 0.4], 5)]
    assert ids == ["n1", "o1", "n2", "o2", "n3"]  # n1 is taken once; turns alternate within the quotas
    ids = [c.article.id for c, _ in _share_slots([new[:1], old], [0.6, 0.4], 5)]
    assert ids == ["n1", "o1", "o2"]  # an interest that runs out leaves its slots to the other
    ids = [c.article.id for c, _ in _share_slots([new], [1.0], 3)]
    assert ids == ["n1", "n2", "n3"]


def test_index_mean_vector_follows_changes():
    idx = ArticleIndex(4)
    idx.upsert(["a", "b"], np.eye(4, dtype=np.float32)[:2])
    assert idx.mean_vector().tolist() == [0.5, 0.5, 0.0, 0.0]
    idx.upsert(["b"], np.eye(4, dtype=np.float32)[2:3])
    assert idx.mean_vector().tolist() == [0.5, 0.0, 0.5, 0.0]
    idx.remove(["a"])
    assert idx.mean_vector().tolist() == [0.0, 0.0, 1.0, 0.0]


def test_query_weight_comes_from_the_settings(articles, fake_encoder):
    def top(qw: float) -> str:
        rec = SessionRecommender.build(
            articles,
            encoder=fake_encoder,
            progress=False,
            settings=SuggestSettings(**OPEN, query_weight=qw, lexical_weight=0.0),
        )
        rec.track("s", article_id="ser-json")
        rec.track("s", article_id="ser-pickle")
        return rec.suggest("s", k=1, query="turtle graphics drawing canvas")[0].article.id

    assert top(0.95) == "misc-turtle"
    assert top(0.05) in SER


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_a_page_linked_from_the_read_page_is_boosted(weight):
    arts = [
        Article(f"p{i}", f"Page {i}", url=f"https://docs.test/p{i}.html", text=f"unrelated words {i}") for i in range(8)
    ]
    arts.append(
        Article(
            "read",
            "Read",
            url="https://docs.test/guide/read.html",
            text="x",
            meta={"links": ["../p5.html", "https://elsewhere.test/x.html", "read.html"]},
        )
    )
    rec = SessionRecommender.build(
        arts,
        encoder=NoiseEncoder(),
        progress=False,
        settings=SuggestSettings(**OPEN, lexical_weight=0.0, link_weight=weight),
    )
    rec.track("s", url="https://docs.test/guide/read.html")
    top = rec.suggest("s", k=1)[0].article.id
    assert (top == "p5") == bool(weight)


def test_quotas_split_k_by_share():
    assert _quotas([0.6, 0.4], 5) == [3, 2]
    assert _quotas([0.7, 0.3], 5) == [4, 1]  # 3.5 / 1.5: the tie goes to the newer interest
    assert _quotas([0.9, 0.1], 3) == [2, 1]  # an interest with a positive share keeps one slot
    assert _quotas([1.0, 0.0], 3) == [3, 0]
    assert _quotas([0.5, 0.5], 1) == [1, 0]


def test_above_the_full_scan_limit_bm25_scores_only_the_candidates_asked_about():
    docs = {
        "a": "postgres vacuum analyze tables",
        "b": "vacuum full locks the table",
        "c": "django models and migrations",
        "d": "migrations for postgres in django",
        "e": "analyze statistics planner",
    }
    full = LexicalIndex(lambda: (list(docs), list(docs.values())))
    per_candidate = LexicalIndex(lambda: (list(docs), list(docs.values())), full_scan_max=len(docs) - 1)
    texts, weights = ["vacuum analyze on postgres tables", "django migrations"], [0.7, 0.3]
    asked = ["b", "d", "e", "zz"]
    # the same BM25 as the full scan, each text divided by its best over the candidates instead of over the KB
    expected = np.zeros(len(asked))
    for text, w in zip(texts, weights):
        s = full.search([text], [1.0]).get(asked)
        expected += w * s / s.max()
    got = per_candidate.search(texts, weights)
    np.testing.assert_allclose(got.get(asked), expected, rtol=1e-5)
    assert got.get(["zz"]).tolist() == [0.0] and got.top(3) == []  # no lexical-only candidates: that is the scan
    assert per_candidate._docs is not None and full._docs is None


def test_the_lexical_caches_stay_bounded_with_a_small_kb_and_many_new_texts(monkeypatch):
    # Every site page a visitor reads is a new text; with 3 articles the float bound alone would keep ~700,000 of
    # them, each keyed by up to 4,000 characters. The caches are keyed by a 16-byte digest and capped in entries.
    import plugin.lexical as lexical

    monkeypatch.setattr(lexical, "_CACHE_ENTRIES", 50)
    docs = {"a": "backup and restore with pg_dump", "b": "indexes speed up queries", "c": "vacuum reclaims space"}
    full = LexicalIndex(lambda: (list(docs), list(docs.values())))
    per_candidate = LexicalIndex(lambda: (list(docs), list(docs.values())), full_scan_max=2)
    for i in range(200):
        text = f"page {i} about backup and restore " + "filler words " * 300
        for lex in (full, per_candidate):
            assert lex.search([text], [1.0]).get(["a"])[0] > 0
    assert len(full._scores) == 50 and all(isinstance(k, bytes) and len(k) == 16 for k in full._scores)
    assert len(per_candidate._tokens) == 50 and all(len(k) == 16 for k in per_candidate._tokens)
    # a text served from the cache scores as an index that never saw it before
    again = "page 199 about backup and restore " + "filler words " * 300
    fresh = LexicalIndex(lambda: (list(docs), list(docs.values())))
    assert (
        full.search([again], [1.0]).get(["a", "b", "c"]).tolist()
        == fresh.search([again], [1.0]).get(["a", "b", "c"]).tolist()
    )
