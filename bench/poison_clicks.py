"""How far scripted sessions can push one article in what `python -m plugin train-intent` learns (docs/security.md,
adversarial review round 3, item 1).

    python bench/poison_clicks.py --work /tmp/poison --sessions 0 10 100 --json /tmp/poison/result.json

A small generated site (topics whose in-text links lead on to the next topic, as in tests/test_learning_loop.py)
and semi-synthetic visits (`plugin.models.walks`) logged through the HTTP API in process, as the learning-loop
benchmark logs them. Then N scripted sessions, also sent through the API (which accepts them), try to push one
target article, each session staying under the per-session click cap (200 click events):

* `clicks`: page views of random articles, each followed by a `suggestion_click` of the target (no impression);
* `forged`: the same with a forged `suggestion_impression` of the target before each click;
* `views`: page views alternating between random articles and the target (no suggestion events at all);
* `pairs`: one short visit per session, a random article then the target (what any two-page visitor sends).

For each attack and N, the log is trained on (`train-intent`, same arguments every time) and the trained model
ranks every article not yet read after each prefix of held-out genuine visits that have not read the target:
the target's share of top-5 lists and its mean rank, with the genuine next page's HR@5 beside them. The target
and every seed are fixed before measuring. Nothing is read from outside the work folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.http import ServerSettings, create_app  # noqa: E402
from adapters.http.replay import in_process_client, replay_visits  # noqa: E402
from plugin import Article, HashingEncoder, SessionRecommender, SuggestSettings  # noqa: E402
from plugin.cli import main as plugin_main  # noqa: E402
from plugin.models.walks import LinkGraph, WalkConfig, WalkGenerator  # noqa: E402

TOPICS = (
    "json serialization",
    "http networking",
    "sqlite database",
    "turtle graphics",
    "unit testing",
    "regular expressions",
    "date and time",
    "file system paths",
)
PAGES = 8
ATTACKS = ("clicks", "forged", "views", "pairs")
PURE = SuggestSettings(min_score=None, mmr_lambda=1.0)


def site() -> tuple[list[Article], dict[str, list[str]]]:
    arts, links = [], {}
    for t, topic in enumerate(TOPICS):
        for p in range(PAGES):
            aid = f"t{t}p{p}"
            text = f"{topic} {topic} guide chapter {aid} " + " ".join(f"{topic} notes" for _ in range(3))
            arts.append(Article(aid, f"{topic.title()} part {p}", f"https://kb.test/{aid}", text))
            nxt = (t + 1) % len(TOPICS)
            links[aid] = [f"t{nxt}p{p}", f"t{nxt}p{(p + 1) % PAGES}", f"t{t}p{(p + 1) % PAGES}"]
    return arts, links


async def scripted_session(client, kind: str, target: Article, others: list[Article], rng: random.Random) -> None:
    sid = (await client.post("/v1/sessions")).json()["session_id"]
    url = f"/v1/sessions/{sid}/events"
    rounds = 1 if kind == "pairs" else 100  # 100 rounds = 200 click events, the cap
    for _ in range(rounds):
        other = rng.choice(others)
        evs = [{"kind": "page_view", "url": other.url, "title": other.title}]
        if kind == "forged":
            evs.append({"kind": "suggestion_impression", "article_id": target.id, "position": 0})
        if kind in ("clicks", "forged"):
            evs.append({"kind": "suggestion_click", "article_id": target.id, "position": 0})
        else:
            evs.append({"kind": "page_view", "url": target.url, "title": target.title})
        for e in evs:
            r = await client.post(url, json=e)
            assert r.status_code < 300, (r.status_code, r.text)  # the API accepts every one of them


async def log_run(log: Path, base, visits, kind: str, n: int, target: Article, others: list[Article]) -> None:
    """The genuine visits and the scripted sessions through one app, interleaved in time (seeded): the server
    stamps each event's time, and train-intent validates on the log's last sessions, so an attack sent after
    every genuine visit would be the validation split rather than part of the training data."""
    rng = random.Random(7)
    jobs: list[list[Article] | None] = [list(v) for v in visits] + [None] * n
    rng.shuffle(jobs)
    async with in_process_client(create_app(base, settings=ServerSettings(event_log=log))) as client:
        for job in jobs:
            if job is None:
                await scripted_session(client, kind, target, others, rng)
            else:
                await replay_visits(client, [job], k=5)


def measure(rec: SessionRecommender, visits: list[list[str]], target: str, n_articles: int) -> dict[str, float]:
    in_top5 = prefixes = rank_sum = hits = steps = 0
    for v in visits:
        if target in v:
            continue
        for j in range(1, len(v)):
            ranked = [s.article.id for s in rec.suggest_for(v[:j], k=n_articles)]
            hits += v[j] in ranked[:5]
            steps += 1
            rank = ranked.index(target) + 1 if target in ranked else len(ranked) + 1
            in_top5 += rank <= 5
            rank_sum += rank
            prefixes += 1
    return {
        "target_top5_share": in_top5 / prefixes,
        "target_mean_rank": rank_sum / prefixes,
        "genuine_hr5": hits / steps,
        "prefixes": prefixes,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--sessions", type=int, nargs="+", default=[0, 10, 100])
    ap.add_argument("--attacks", nargs="+", choices=ATTACKS, default=list(ATTACKS))
    ap.add_argument("--target", default="t3p4")
    ap.add_argument("--train-visits", type=int, default=300)
    ap.add_argument("--test-visits", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    arts, links = site()
    by_id = {a.id: a for a in arts}
    target = by_id[args.target]
    others = [a for a in arts if a.id != target.id]
    gen = WalkGenerator(LinkGraph.from_mapping(links), WalkConfig(drift=0.05, noise=0.0, stop=0.35, position_decay=0.0))
    enc = HashingEncoder(512)
    work = args.work
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    base = SessionRecommender.build(arts, encoder=enc, progress=False, settings=PURE)
    base.save(work / "base-ix")
    visits = [[by_id[a] for a in v] for v in gen.walks(args.train_visits, seed=1)]
    test_visits = gen.walks(args.test_visits, seed=2)

    results = []
    runs = [("none", 0)] if 0 in args.sessions else []
    runs += [(kind, n) for kind in args.attacks for n in args.sessions if n > 0]
    for kind, n in runs:
        run = work / f"{kind}-{n}"
        shutil.copytree(work / "base-ix", run / "ix")
        log = run / "events.jsonl"
        # a fresh server per run: the app attaches its event log to the recommender it serves
        server = SessionRecommender.load(work / "base-ix", encoder=enc)
        asyncio.run(log_run(log, server, visits, kind, n, target, others))
        argv_train = ["train-intent", "--index", str(run / "ix"), "--log", str(log), "--epochs", str(args.epochs)]
        argv_train += ["--dim", "32", "--min-clicks", "3", "--quiet"]
        assert plugin_main(argv_train) == 0
        trained = SessionRecommender.load(run / "ix", encoder=enc)
        row = {"attack": kind, "sessions": n, **measure(trained, test_visits, target.id, len(arts))}
        print(json.dumps(row), flush=True)
        results.append(row)

    print(f"\ntarget {target.id}; {len(visits)} genuine training visits, {len(test_visits)} held-out")
    print(
        "| attack | scripted sessions | target in top-5 (share of held-out prefixes) | target mean rank | genuine HR@5 |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['attack']} | {r['sessions']} | {r['target_top5_share']:.3f} | {r['target_mean_rank']:.1f} "
            f"| {r['genuine_hr5']:.3f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
