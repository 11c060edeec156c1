"""Title similarity: pages whose titles share the read pages' subject rank higher; a cold one-shot load never
builds the text model just to embed titles."""

from __future__ import annotations

import random

import numpy as np
import pytest

from plugin import Article, HashingEncoder, SessionRecommender, SuggestSettings
from plugin.encoder import LazyEncoder

OPEN = dict(min_score=None, mmr_lambda=1.0, lexical_weight=0.0, link_weight=0.0, topic_split=None, hubness_weight=0.0)
SUBJECTS = ("geodjango", "mailer", "caching", "sessions")


def _kb() -> list[Article]:
    """Four subjects named only in the titles; every body is long filler of its own, so the text vectors (which
    see the title among hundreds of words) barely tell the subjects apart."""
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(3000)]
    out = []
    for s in SUBJECTS:
        for part in ("overview", "reference", "settings", "examples", "internals"):
            body = " ".join(rng.choice(vocab) for _ in range(300))
            out.append(Article(f"{s}-{part}", f"{s} {part}", text=body))
    return out


def _on_subject(weight: float) -> int:
    rec = SessionRecommender.build(
        _kb(), encoder=HashingEncoder(256), progress=False, settings=SuggestSettings(**OPEN, title_weight=weight)
    )
    hits = 0
    for s in SUBJECTS:
        rec.track(s, article_id=f"{s}-overview")
        rec.track(s, article_id=f"{s}-settings")
        hits += sum(sg.article.id.startswith(s) for sg in rec.suggest(s, k=3))
    return hits


def test_titles_bring_the_read_subjects_pages_forward():
    with_titles, without = _on_subject(0.3), _on_subject(0.0)
    # of 12 slots (3 x 4 sessions): the text alone finds the subject by chance (2 here), titles most of the time
    assert with_titles >= 9, with_titles
    assert without <= with_titles - 5, (without, with_titles)


def test_a_cold_load_does_not_build_the_model_for_titles_until_warm(tmp_path):
    rec = SessionRecommender.build(
        _kb(), encoder=HashingEncoder(256), progress=False, settings=SuggestSettings(**OPEN, title_weight=0.0)
    )  # titles never embedded
    rec.save(tmp_path)
    built = []

    def factory():
        built.append(1)
        return HashingEncoder(256)

    loaded = SessionRecommender.load(
        tmp_path, encoder=LazyEncoder(factory, "hashing:256", 256), settings=SuggestSettings(**OPEN, title_weight=0.3)
    )
    loaded.track("s", article_id="mailer-overview")
    assert loaded.suggest("s", k=3)
    assert built == [], "a one-shot suggestion must not load the model for titles"
    assert loaded.titles.query(["mailer-overview"]) is None  # until warm()
    loaded.warm()  # a server's loading thread: embeds the missing titles
    assert built == [1]
    assert loaded.titles.query(["mailer-overview"]) is not None


def test_title_weight_is_validated():
    with pytest.raises(ValueError):
        SuggestSettings(title_weight=1.5)


def test_a_saved_version_carries_the_centred_title_vectors(tmp_path, monkeypatch):
    rec = SessionRecommender.build(
        _kb(), encoder=HashingEncoder(256), progress=False, settings=SuggestSettings(**OPEN, title_weight=0.3)
    )
    q = rec.titles.query(["mailer-overview", "mailer-settings"])
    ids = [a.id for a in _kb()]
    expected = rec.titles.scores(q, ids)
    rec.save(tmp_path)
    loaded = SessionRecommender.load(tmp_path)
    monkeypatch.setattr(loaded, "_title_vectors", lambda allow: pytest.fail("titles recomputed at load"))
    np.testing.assert_array_equal(loaded.titles.query(["mailer-overview", "mailer-settings"]), q)
    np.testing.assert_array_equal(loaded.titles.scores(q, ids), expected)
    assert loaded.titles._vecs.dtype == np.float32  # float16 only above titles.COMPACT_ABOVE articles


def test_a_huge_kb_keeps_its_title_vectors_in_float16(monkeypatch):
    from plugin import titles

    monkeypatch.setattr(titles, "COMPACT_ABOVE", 5)
    rec = SessionRecommender.build(
        _kb(), encoder=HashingEncoder(256), progress=False, settings=SuggestSettings(**OPEN, title_weight=0.3)
    )
    q = rec.titles.query(["mailer-overview"])
    assert rec.titles._vecs.dtype == np.float16 and q.dtype == np.float32
    assert rec.titles.scores(q, ["mailer-overview"])[0] == pytest.approx(1.0, abs=2e-3)
