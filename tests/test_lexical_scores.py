"""Known answers for BM25's fast paths: the one-call full scan equals bm25s's own scores bit for bit, and a stored
page's terms (`PageContent.terms`) give the same suggestions as tokenising its text again."""

from __future__ import annotations

import random

import numpy as np
import pytest

from plugin.lexical import QUERY_CHARS, LexicalIndex, _bm25_scores, _weighted_sum, query_terms

bm25s = pytest.importorskip("bm25s")

WORDS = [f"w{i}" for i in range(60)] + ["vacuum", "freeze", "socket", "json", "the", "and", "of"]


def _corpus(rng: random.Random, n: int) -> list[str]:
    # Zipf-ish word choice: common words sit in most documents, rare ones in few (long and short columns)
    return [
        " ".join(rng.choices(WORDS, weights=[1 / (i + 1) for i in range(len(WORDS))], k=rng.randrange(3, 300)))
        for _ in range(n)
    ]


def test_the_one_call_full_scan_is_bm25s_get_scores_bit_for_bit():
    rng = random.Random(7)
    docs = _corpus(rng, 150)
    bm25 = bm25s.BM25()
    bm25.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)
    queries = [["vacuum"], ["w3", "w3", "w3"], ["unknown", "w1"], ["w0"] * 50]
    queries += [rng.choices(WORDS + ["nowhere"], k=rng.randrange(1, 400)) for _ in range(200)]
    for q in queries:
        want = bm25.get_scores(q)
        got = _bm25_scores(bm25, q)
        assert got.dtype == want.dtype and np.array_equal(got, want), q[:5]
    assert not _bm25_scores(bm25, ["nowhere"]).any()  # no known token: zeros, as bm25s gives


def test_the_weighted_sum_of_a_sessions_texts_is_the_loop_it_replaced_bit_for_bit():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, texts = int(rng.integers(1, 2000)), int(rng.integers(1, 25))
        scale = [1.0, 1e-3, 1e3][int(rng.integers(3))]
        parts = [(rng.random(n, dtype=np.float32) * scale).astype(np.float32) for _ in range(texts)]
        weights = [float(w) for w in rng.random(texts) / texts]
        total = np.zeros(n, dtype=np.float32)
        for w, scores in zip(weights, parts):
            total += w * scores
        got = _weighted_sum(parts, weights, n)
        assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32), total.view(np.uint32))
    assert np.array_equal(_weighted_sum([], [], 3), np.zeros(3, dtype=np.float32))


def test_query_terms_are_the_tokens_bm25_reads_of_the_head():
    text = "The Vacuum  freeze-age of tables; " * 400  # past QUERY_CHARS
    want = bm25s.tokenize(text[:QUERY_CHARS], stopwords="en", return_ids=False, show_progress=False)[0]
    assert query_terms(text).split() == want
    assert query_terms("the and of") == ""  # stop words only: no terms, not "no terms stored"


def test_the_request_path_tokens_are_bm25s_tokenize_on_any_text():
    from plugin.lexical import _tokens

    rng = random.Random(3)
    alphabet = "aAbZ09_ é\u00dfİı\u0130\u212a\u00e9\u0301ǅ\t\n-.,;:'\"()[]{}<>/\\@#$%^&*+=|~`!?\u200b\u3000日本語ﬁ𝔘"
    texts = ["", " ", "a", "I", "The and of", "don't won't it's", "VACUUM FULL (verbose) -- the ANALYZE", "x" * 500]
    texts += ["".join(rng.choices(alphabet, k=rng.randrange(0, 300))) for _ in range(500)]
    texts += [
        " ".join(rng.choices(WORDS + ["The", "AND", "Of", "isn't", "you're"], k=rng.randrange(0, 80)))
        for _ in range(200)
    ]
    for text in texts:
        want = bm25s.tokenize(text, stopwords="en", return_ids=False, show_progress=False)[0]
        assert _tokens(text, bm25s) == want, repr(text)


def test_search_with_stored_terms_equals_search_that_tokenises():
    rng = random.Random(3)
    docs = _corpus(rng, 80)
    pages = _corpus(rng, 12) + ["the and of"]

    def index() -> LexicalIndex:
        return LexicalIndex(lambda: ([f"a{i}" for i in range(len(docs))], docs))

    weights = [1 / len(pages)] * len(pages)
    names = [("p", str(i)) for i in range(len(pages))]
    plain = index().search(pages, weights, names)
    asked: list[int] = []

    class Texts(list):
        def __getitem__(self, i):
            asked.append(i)
            return super().__getitem__(i)

    stored = index().search(Texts(pages), weights, names, [query_terms(p) for p in pages])
    ids = [f"a{i}" for i in range(len(docs))]
    assert np.array_equal(plain.get(ids), stored.get(ids)) and plain.top(10) == stored.top(10)
    assert asked == [len(pages) - 1]  # only the page whose terms are empty had its text read

    few = LexicalIndex(lambda: (ids, docs), full_scan_max=10)  # the candidate-only path reads them the same way
    cand_plain = few.search(pages, weights, names).get(ids)
    few.invalidate()
    cand_stored = few.search(pages, weights, names, [query_terms(p) for p in pages]).get(ids)
    assert np.array_equal(cand_plain, cand_stored)


def test_a_tracked_page_keeps_its_terms_and_a_miss_reads_them_with_the_same_suggestions(rec, monkeypatch):
    import plugin.lexical

    tokenised: list[str] = []
    tokens = plugin.lexical._tokens
    monkeypatch.setattr(plugin.lexical, "_tokens", lambda head, lib: tokenised.append(head) or tokens(head, lib))
    text = "How to serialize objects to JSON and read them back with the json module, dumps and loads."
    rec.track("s", "page_view", url="https://site.test/blog/json", title="A JSON post", text=text)
    rec.track("s", "page_view", url="https://site.test/blog/net", title="Sockets", text="socket servers and clients")
    ev = [e for e in rec.events("s") if e.content_ref][0]
    content = rec.pages.get(ev.content_ref)
    assert content is not None and content.terms == query_terms(f"A JSON post\n{text}")

    def answers():
        rec.lexical.invalidate()  # every page a BM25 cache miss
        return [(s.article.id, s.score, s.reason) for s in rec.suggest("s", k=4)]

    tokenised.clear()
    with_terms = answers()
    assert tokenised == []  # both pages scored from their stored terms
    for e in rec.events("s"):  # the same pages as a worker holding contents stored before terms were
        if e.content_ref:
            held = rec.pages.get(e.content_ref)
            assert held is not None
            rec.pages.put(e.content_ref, type(held)(held.text, held.vector))
    assert answers() == with_terms and len(with_terms) == 4
    assert len(tokenised) == 2  # without terms, each page's text tokenised again
