"""The learning loop end to end on a small generated link graph: semi-synthetic visits logged through the HTTP
API (page views, impressions, clicks) -> `python -m plugin train-intent` -> the trained intent beats zero-shot
on held-out visits, and an article added after training is still suggested."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("fastapi")

from adapters.http import ServerSettings, create_app  # noqa: E402
from adapters.http.replay import in_process_client, replay_visits  # noqa: E402
from plugin import Article, HashingEncoder, SessionRecommender, SuggestSettings  # noqa: E402
from plugin.cli import main as plugin_main  # noqa: E402
from plugin.event_log import click_sessions, read_records  # noqa: E402
from plugin.models.walks import LinkGraph, WalkConfig, WalkGenerator  # noqa: E402
from plugin.persistence import is_trained

TOPICS = ("json serialization", "http networking", "sqlite database", "turtle graphics", "unit testing")
PAGES = 6
NEW = "t2p5"  # kept out of the KB until after training


def _site() -> tuple[list[Article], dict[str, list[str]]]:
    """Topic pages whose links mostly lead to the *next topic*: a path readers take that text similarity
    cannot see (zero-shot suggests the same topic)."""
    arts, links = [], {}
    for t, topic in enumerate(TOPICS):
        for p in range(PAGES):
            aid = f"t{t}p{p}"
            arts.append(
                Article(
                    aid,
                    f"{topic.title()} part {p}",
                    f"https://kb.test/{aid}",
                    f"{topic} {topic} guide chapter {aid} " + " ".join(f"{topic} notes" for _ in range(3)),
                )
            )
            nxt = (t + 1) % len(TOPICS)
            links[aid] = [f"t{nxt}p{p}", f"t{nxt}p{(p + 1) % PAGES}", f"t{t}p{(p + 1) % PAGES}"]
    return arts, links


def _hit_rate(rec: SessionRecommender, visits: list[list[str]], k: int, only_into: str | None = None) -> float:
    hits = total = 0
    for v in visits:
        for j in range(1, len(v)):
            if only_into is not None and v[j] != only_into:
                continue
            shown = [s.article.id for s in rec.suggest_for(v[:j], k=k)]
            hits += v[j] in shown
            total += 1
    assert total > 0
    return hits / total


@pytest.mark.slow
def test_learning_loop_end_to_end(tmp_path):
    arts, links = _site()
    by_id = {a.id: a for a in arts}
    gen = WalkGenerator(LinkGraph.from_mapping(links), WalkConfig(drift=0.05, noise=0.0, stop=0.35, position_decay=0.0))
    enc = HashingEncoder(512)
    pure_ranking = SuggestSettings(min_score=None, mmr_lambda=1.0)
    serving = SessionRecommender.build(
        [a for a in arts if a.id != NEW], encoder=enc, progress=False, settings=pure_ranking
    )
    serving.save(tmp_path / "ix")

    log = tmp_path / "events.jsonl"
    train_visits = gen.walks(160, seed=1)
    app = create_app(serving, settings=ServerSettings(event_log=log))

    async def replay():
        async with in_process_client(app) as client:
            return await replay_visits(client, [[by_id[a] for a in v] for v in train_visits], k=3)

    stats = asyncio.run(replay())
    kinds = [r["kind"] for r in read_records(log)]
    assert kinds.count("page_view") == stats.page_views == sum(map(len, train_visits))
    assert kinds.count("suggestion_impression") == stats.impressions > 0
    assert kinds.count("suggestion_click") == stats.clicks > 0
    # The log gives the visits back (the new article's views carry only its url: it is not in the KB yet).
    assert [list(s.items) for s in click_sessions(log, url_items=True)] == [
        [by_id[a].url if a == NEW else a for a in v] for v in train_visits
    ]

    assert (
        plugin_main(
            [
                "train-intent",
                "--index",
                str(tmp_path / "ix"),
                "--log",
                str(log),
                "--epochs",
                "40",
                "--dim",
                "32",
                "--min-clicks",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    trained = SessionRecommender.load(tmp_path / "ix", encoder=enc)
    assert is_trained(trained.intent_model) and not trained.intent_model.config.zero_shot
    assert len(trained.intent_model.config.item_keys) > 0  # the hybrid learned vectors for clicked articles

    # Held-out visits, with the new article added to both KBs (no retraining).
    test_visits = gen.walks(120, seed=2)
    zero = SessionRecommender.build(arts, encoder=enc, progress=False, settings=pure_ranking)
    trained.upsert_articles([by_id[NEW]])
    hr_trained, hr_zero = _hit_rate(trained, test_visits, 3), _hit_rate(zero, test_visits, 3)
    assert hr_trained > hr_zero + 0.2, (hr_trained, hr_zero)

    # The article added after training is suggested when readers go to it, at least as often as zero-shot does.
    into_new_trained = _hit_rate(trained, test_visits, 3, only_into=NEW)
    into_new_zero = _hit_rate(zero, test_visits, 3, only_into=NEW)
    assert into_new_trained >= into_new_zero and into_new_trained > 0.3, (into_new_trained, into_new_zero)
