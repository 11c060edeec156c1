"""The candidate pass scored as arrays (`SessionRecommender._candidates`, `rules.passing`, `rules.mmr_order`) gives
exactly what the per-candidate code it replaced gave: a straightforward reference, one candidate at a time, on a
small KB with every scoring term on (centring, hubness, BM25, titles, links, freshness, filters, floor)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from plugin import Article, SessionRecommender, SuggestSettings
from plugin.encoder import HashingEncoder
from plugin.lexical import LexicalIndex
from plugin.rules import Candidate, freshness_bonus, mmr_order, mmr_select, passes_filters, passing

TOPICS = {
    "db": "index vacuum query planner table row lock transaction",
    "net": "socket http request header proxy tls certificate port",
    "py": "module import class function decorator generator iterator",
}


def _kb(seed: int = 0) -> list[Article]:
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    arts = []
    for t, words in TOPICS.items():
        vocab = words.split()
        for i in range(20):
            aid = f"{t}{i}"
            arts.append(
                Article(
                    aid,
                    f"{t} {' '.join(rng.sample(vocab, 2))} {i}",
                    url=f"https://kb.test/{t}/{i}.html",
                    text=" ".join(rng.choice(vocab) for _ in range(40)),
                    tags=(t, "even" if i % 2 == 0 else "odd"),
                    locale=rng.choice(["en", "en-GB", "de", None]),
                    updated_at=now - timedelta(days=rng.randrange(400)),
                    meta={"links": [f"{(i + 1) % 20}.html", f"/{t}/{(i + 3) % 20}.html"], "hub": i == 7},
                )
            )
    return arts


@pytest.fixture(scope="module")
def rec() -> SessionRecommender:
    settings = SuggestSettings(min_score=None, freshness_weight=0.2, candidate_pool=12, link_weight=0.05)
    r = SessionRecommender.build(_kb(), encoder=HashingEncoder(64), progress=False, settings=settings)
    r.warm()
    return r


def _reference(rec, vector, k, floor, seen_ids, seen_urls, locale, tags, lexical, linked, titled, now):
    """The pass as it was written before it was vectorised (0fd1934): a Candidate per article, then sorted. The
    pool as it is defined since: the first `candidate_pool` unread articles of the index's hits and of BM25's."""
    cfg = rec.settings
    search = vector - rec.index.mean_vector()
    cvec = rec._centred(vector[None, :])[0]
    want = cfg.candidate_pool
    while True:
        pool = want + len(seen_ids)
        hits = rec.index.search(search[None, :], pool)[0]
        unread = [a for a, _ in hits if a not in seen_ids][:want]
        lex = [a for a in lexical.top(pool) if a not in seen_ids][:want]
        ids = [a for a in dict.fromkeys(unread + lex + sorted(linked)) if a not in seen_ids]
        found = [a for a in (rec.kb.find(a) for a in ids) if a is not None]
        arts = [
            a
            for a in found
            if a.id in rec.index
            and passes_filters(a, exclude_ids=seen_ids, exclude_urls=seen_urls, locale=locale, tags=tags)
        ]
        cands = []
        if arts:
            avecs = rec.index.vectors([a.id for a in arts])
            rel = avecs @ vector
            score = rec._centred(avecs) @ cvec
            score = score + cfg.lexical_weight * lexical.get([a.id for a in arts])
            score = score - cfg.hubness_weight * rec.hubness.get([a.id for a in arts])
            score = score + cfg.title_weight * rec.titles.scores(titled, [a.id for a in arts])
            score = score + cfg.link_weight * np.array([a.id in linked for a in arts], dtype=np.float32)
            for a, r, s in zip(arts, rel.tolist(), score.tolist()):
                if floor is not None and r < floor:
                    continue
                cands.append(Candidate(a, r, s + freshness_bonus(a, cfg.freshness_weight, 90.0, now)))
        if len(cands) >= k or len(hits) < pool or pool >= len(rec.index):
            return sorted(cands, key=lambda c: -c.score)
        want *= 4


@pytest.mark.parametrize(
    "read, locale, tags, floor",
    [
        (["db1", "db2"], None, None, None),
        (["net4"], "en", None, None),
        (["py3", "db5", "py9"], "de-AT", ["odd"], None),
        (["db0", "net0"], None, ["py"], 0.1),  # a narrow tag: the pool has to grow
    ],
)
def test_vectorised_candidates_equal_the_per_candidate_reference(rec, monkeypatch, read, locale, tags, floor):
    now = datetime.now(timezone.utc)
    # one clock for both sides: the freshness bonus reads the time
    monkeypatch.setattr("plugin.recommender.freshness_bonus", lambda a, w, h: freshness_bonus(a, w, h, now))
    vecs = rec.index.vectors(read)
    vector = vecs.mean(0) / np.linalg.norm(vecs.mean(0))
    lexical = rec._lexical_scores([rec.kb.get(a).embed_text() for a in read], None, 0.0)
    linked = rec._linked_from(read)
    titled = rec.titles.query(read)
    assert linked and titled is not None and lexical is not None  # every term is on
    seen_ids, seen_urls = set(read), {rec.kb.get(read[0]).url}
    args = (vector, 3, floor, seen_ids, seen_urls, locale, tags)
    pool = rec._candidates(*args, lexical=lexical, linked=linked, titled=titled)
    want = _reference(rec, *args, lexical, linked, titled, now)
    got = pool.candidates()
    assert [c.article.id for c in got] == [c.article.id for c in want]
    assert [c.relevance for c in got] == [c.relevance for c in want]
    assert [c.score for c in got] == [c.score for c in want]
    np.testing.assert_array_equal(pool.vectors, rec.index.vectors([c.article.id for c in got]))
    assert len(got) >= 3


def test_the_pool_does_not_grow_with_what_the_session_has_read(rec, monkeypatch):
    # candidate_pool unread articles from the index and as many from BM25, however many were read: a long session's
    # request looks up and scores as many candidates as a short one's (it once took candidate_pool + read ones)
    looked_up: list[int] = []
    find_many = rec.kb.find_many
    monkeypatch.setattr(rec.kb, "find_many", lambda ids: looked_up.append(len(ids)) or find_many(ids))
    cap = 2 * rec.settings.candidate_pool
    vector = rec.index.vectors(["py1"])[0]  # the newest page; the rest of the session read about other things
    lexical = rec._lexical_scores([rec.kb.get("py1").embed_text()], None, 0.0)
    for read in (["py1"], ["py1"] + [f"db{i}" for i in range(15)] + [f"net{i}" for i in range(15)]):
        pool = rec._candidates(vector, 3, None, set(read), set(), None, None, lexical=lexical)
        assert len(pool) >= 3 and not {c.article.id for c in pool.candidates()} & set(read)
    assert len(looked_up) == 2 and all(n <= cap for n in looked_up), looked_up


def test_the_first_searches_of_all_interests_in_one_call_equal_one_search_each(rec):
    vectors = [rec.index.vectors(["db1"])[0], rec.index.vectors(["net2"])[0]]
    batched = rec._first_hits(vectors, centre=True, pool=10)
    single = [rec.index.search_rows((v - rec.index.mean_vector())[None, :], 10)[0] for v in vectors]
    assert batched == single


def test_passing_keeps_what_passes_filters_keeps():
    arts = _kb(1)
    for exclude_ids, exclude_urls, locale, tags in [
        ((), (), None, None),
        ({"db1", "net2"}, {"https://kb.test/py/3.html"}, "en-US", None),
        ((), (), "DE", ["even"]),
        ((), (), "-x", ["nope"]),
        ((), (), None, []),
    ]:
        kw = dict(exclude_ids=exclude_ids, exclude_urls=exclude_urls, locale=locale, tags=tags)
        assert passing(arts, **kw) == [a for a in arts if passes_filters(a, **kw)]


def test_mmr_order_on_scores_equals_mmr_select_on_candidates():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((30, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    scores = rng.random(30).tolist()
    cands = [Candidate(Article(f"a{i}", "t"), s, s) for i, s in enumerate(scores)]
    for lam in (0.3, 0.7, 1.0):
        assert mmr_order(np.array(scores), v, 5, lam) == mmr_select(cands, v, 5, lam)


def test_find_many_is_find_of_each(rec):
    asks = ["db1", "https://kb.test/net/2.html", "nope", "", "py3", "https://kb.test/py/3.html#part"]
    assert rec.kb.find_many(asks) == [rec.kb.find(a) for a in asks]
    assert rec.index.holding(["db1", "nope", "py3"]) == {"db1", "py3"}


class _Texts:
    """Texts that record which ones were read."""

    def __init__(self, texts):
        self.texts, self.read = texts, []

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, i):
        self.read.append(i)
        return self.texts[i]


@pytest.mark.parametrize("full_scan_max", [1_000, 1])  # scores over the KB, and over the candidates only
def test_named_texts_score_as_their_text_and_are_not_read_once_cached(full_scan_max):
    arts = _kb(2)
    lex = LexicalIndex(lambda: ([a.id for a in arts], [a.embed_text() for a in arts]), full_scan_max=full_scan_max)
    texts = [arts[0].embed_text(), "vacuum planner lock", "   "]
    plain = lex.search(texts, [0.5, 0.3, 0.2]).get([a.id for a in arts])
    names = [("a", arts[0].id), ("p", "ref1"), ("p", "blank")]
    first = _Texts(texts)
    assert lex.search(first, [0.5, 0.3, 0.2], names).get([a.id for a in arts]).tolist() == plain.tolist()
    again = _Texts(texts)
    assert lex.search(again, [0.5, 0.3, 0.2], names).get([a.id for a in arts]).tolist() == plain.tolist()
    assert again.read == [2]  # the blank text was never cached: it is looked at (and skipped) each time
    assert first.read == [0, 1, 2]


def test_seen_keys_split_into_ids_and_urls_in_one_pass():
    from plugin.recommender import _split_seen

    ids, urls = _split_seen(["a:db1", "u:https://kb.test/x", "a:u:odd", "zz", "u:"])
    assert sorted(ids) == ["db1", "u:odd"] and sorted(urls) == ["", "https://kb.test/x"]


def test_bm25_names_a_page_only_where_the_name_fixes_its_text(rec):
    from plugin.events import make_event

    kb_page = make_event("s", "page_view", article_id="db1")
    page = make_event("s", "page_view", url="https://site.test/p", title="P", text="vacuum lock words").slim()
    restored = page.__class__(**{**page.__dict__, "text": "vacuum lock words"})
    search = make_event("s", "search", query="vacuum")
    assert rec._text_key(kb_page, "db1") == ("a", "db1")
    assert rec._text_key(restored, None) == ("p", page.content_ref)
    assert rec._text_key(page, None) is None  # its stored text lapsed: it stands for its title, or its url
    assert rec._text_key(search, None) is None
