"""Long articles are embedded in full: windows that fit the model, pooled into one vector, cached by content."""

from __future__ import annotations

import numpy as np
import pytest

from plugin import Article, HashingEncoder, SessionRecommender
from plugin.chunking import pool_windows, split_windows, spread_windows
from plugin.encoder import CachedEncoder


def words(texts):
    return [len(t.split()) for t in texts]


def test_windows_respect_the_budget_and_keep_every_line():
    text = "\n".join(f"line {i} " + "w " * 7 for i in range(40))  # 40 lines of 9 words
    wins, sizes = split_windows(text, 50, words, header="Title")
    assert len(wins) > 1 and all(n <= 50 for n in words(wins))
    assert wins[0].startswith("line 0") and all(w.startswith("Title\n") for w in wins[1:])
    body = "\n".join(w.split("\n", 1)[1] if i else w for i, w in enumerate(wins))
    assert body == text  # nothing lost, nothing reordered
    assert len(sizes) == len(wins)


def test_short_text_is_one_window_and_a_long_line_is_cut_between_words():
    assert split_windows("a b c", 50, words)[0] == ["a b c"]
    wins, _ = split_windows("x " * 130, 50, words)
    assert len(wins) == 3 and sum(words(wins)) == 130
    with pytest.raises(ValueError, match="at least 8"):
        split_windows("a", 4, words)


def test_pooling_is_a_weighted_mean_renormalised():
    v = pool_windows(np.eye(3, dtype=np.float32)[:2], [3, 1])
    assert v == pytest.approx(np.array([3, 1, 0]) / np.sqrt(10))
    assert float(np.linalg.norm(v)) == pytest.approx(1.0)


class WindowedHashing(HashingEncoder):
    """The hashing encoder made to see only its first `window` words, like a transformer's position limit."""

    def __init__(self, window: int) -> None:
        super().__init__(512)
        self.window_tokens = window
        self.calls: list[int] = []

    def count_tokens(self, texts):
        return words(texts)

    def encode(self, texts):
        self.calls.append(len(texts))
        return super().encode([" ".join(t.split()[: self.window_tokens]) for t in texts])


def test_an_article_vector_covers_text_beyond_the_first_window():
    head = "\n".join("cooking recipes kitchen oven bread" for _ in range(20))  # 100 words about cooking
    tail = "\n".join("astronomy telescope planets orbit stars" for _ in range(20))  # then 100 about stars
    art = Article("a", "Notes", text=head + "\n" + tail)
    enc = WindowedHashing(window=60)
    rec = SessionRecommender.build([art], encoder=enc, progress=False)
    vec = rec.index.vectors(["a"])[0]
    stars = enc.encode(["astronomy telescope planets orbit stars"])[0]
    cut = enc.encode([art.embed_text()])[0]  # what one window of the whole text sees: cooking only
    assert float(cut @ stars) < 0.05 < 0.3 < float(vec @ stars)


def test_reindexing_unchanged_articles_encodes_nothing(tmp_path):
    arts = [Article(f"a{i}", f"T{i}", text="\n".join(f"topic{i} word{j}" for j in range(100))) for i in range(3)]
    enc = WindowedHashing(window=30)
    rec = SessionRecommender.build(arts, encoder=enc, progress=False)
    assert rec.encoder.misses == 6 and sum(enc.calls) > 6  # 3 articles (several windows each) + their 3 titles
    rec.save(tmp_path)
    again = SessionRecommender.load(tmp_path, encoder=enc)
    calls = len(enc.calls)
    again.upsert_articles(arts)
    assert len(enc.calls) == calls and again.encoder.misses == 0
    assert np.allclose(again.index.vectors(["a1"]), rec.index.vectors(["a1"]))


def test_encoders_without_a_window_encode_whole_texts_as_before():
    enc = CachedEncoder(HashingEncoder(64))
    assert np.array_equal(enc.encode_documents(["a b c"], ["T"]), HashingEncoder(64).encode(["a b c"]))
    with pytest.raises(ValueError, match="headers"):
        CachedEncoder(WindowedHashing(10)).encode_documents(["a", "b"], ["T"])


@pytest.mark.real_model
def test_real_model_windows_fit_and_pool(real_encoder):
    text = "\n".join(["Sessions store data per visitor on the server."] * 60 + ["Cookies are signed."] * 60)
    wins, _ = split_windows(text, real_encoder.window_tokens, real_encoder.count_tokens, "Sessions")
    assert len(wins) > 2 and max(real_encoder.count_tokens(wins)) <= real_encoder.window_tokens
    vec = CachedEncoder(real_encoder).encode_documents([text], ["Sessions"])
    assert vec.shape == (1, real_encoder.dim) and float(np.linalg.norm(vec)) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("n, cap", [(20, 8), (17, 16), (100, 4), (9, 2)])
def test_a_cap_keeps_first_last_and_evenly_spread_windows(n, cap):
    keep = spread_windows(n, cap)
    assert len(keep) == cap and keep[0] == 0 and keep[-1] == n - 1
    assert keep == sorted(set(keep))  # distinct, in reading order
    gaps = np.diff(keep)
    assert gaps.max() - gaps.min() <= 1  # evenly spread, not bunched at the head


def test_a_cap_keeps_everything_when_the_article_is_short_enough():
    assert spread_windows(5, 8) == [0, 1, 2, 3, 4] == spread_windows(5, None)
    assert spread_windows(7, 1) == [0]
    with pytest.raises(ValueError, match="at least 1"):
        spread_windows(7, 0)
    with pytest.raises(ValueError, match="at least 1"):
        CachedEncoder(HashingEncoder(64), max_windows=0)


def test_capped_pooling_encodes_at_most_the_cap_and_keys_its_own_vectors():
    # 12 windows of 10 words: the middle 10 are one topic, the first and last another
    lines = ["kitchen oven bread"] * 10 + [f"planet orbit{j} stars" for j in range(90)] + ["kitchen oven bread"] * 10
    text = "\n".join(" ".join(lines[i : i + 3]) for i in range(0, len(lines), 3))
    full_enc, capped_enc = WindowedHashing(window=30), WindowedHashing(window=30)
    full = CachedEncoder(full_enc, max_windows=None).encode_documents([text], ["T"])
    capped_cache = CachedEncoder(capped_enc, max_windows=3)
    capped = capped_cache.encode_documents([text], ["T"])
    assert sum(full_enc.calls) > 3 and sum(capped_enc.calls) == 3
    stars = full_enc.encode(["planet stars"])[0]
    assert float(capped[0] @ stars) < float(full[0] @ stars)  # fewer windows from the middle: a coarser vector
    # same text, another cap: another key, so neither cap's vector is served for the other
    assert len(capped_cache.cache) == 1
    again = CachedEncoder(WindowedHashing(window=30), capped_cache.cache, max_windows=None)
    assert np.allclose(again.encode_documents([text], ["T"]), full) and again.misses == 1
