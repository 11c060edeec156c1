"""The learning loop on real documentation, end to end, in one command (semi-synthetic visits).

    python bench/learning_loop.py --corpus django=/usr/share/doc/python-django-doc/html \
        --corpus postgres=/usr/share/doc/postgresql-doc-15/html --work /tmp/learning-loop

Per corpus (an installed HTML documentation folder; nothing is copied into the repository):

1. pages and their in-text links (lxml; the main text without headers, sidebars and prev/next bars);
   a share of the pages (`--new-fraction`) is kept out of the KB until after training;
2. the KB without them is indexed (MiniLM) and served by the real HTTP app (adapters.http, in process through httpx.ASGITransport);
3. semi-synthetic visits (`plugin.models.walks`: walks along the in-text links with popular entry pages, topic
   drift and noise clicks) are logged through the API into the JSONL event log: page views, an impression
   for every suggestion shown, and a click when the visit's next page was among them;
4. the log is split by session time: the first `--walks` visits train (`python -m plugin train-intent`, which
   holds out its last 10% for validation, installs the model only if it beats zero-shot there and blends in the
   log's item-to-item transition counts when they raise its validation MRR), the last `--test-walks` are the test;
5. the held-out articles are added to the trained index (no retraining), and every method ranks the next page
   of each test prefix among all KB articles not yet read: trained intent, zero-shot intent, session-mean NN,
   last-page NN, Markov-1 and V-SKNN fitted on the same training sessions, and the walks' own ceiling
   (ranking by the generator's true next-page law). HR@5 / MRR@5 with 95% bootstrap CIs over test sessions,
   on all test steps and on the steps into or from the articles added after training.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import faiss
import numpy as np
import torch
from lxml import html as lxml_html

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.http.replay import ReplayStats  # noqa: E402
from plugin import Article, IndexFormatError, SessionRecommender, SuggestSettings  # noqa: E402
from plugin.cli import _make_encoder  # noqa: E402
from plugin.cli import main as plugin_main
from plugin.content_training import with_scoring  # noqa: E402
from plugin.event_log import EventLog, click_sessions, read_records  # noqa: E402
from plugin.intent import ContentSTAMP, Intent  # noqa: E402
from plugin.models import get_model  # noqa: E402
from plugin.models.walks import LinkGraph, WalkConfig, WalkGenerator  # noqa: E402

logger = logging.getLogger("learning_loop")

K = 5
# Pages that are not articles: source listings, indexes, search, release notes, assets, whole-book TOCs.
SKIP = re.compile(
    r"(^|/)(_modules|_static|_sources|_images|releases|genindex|py-modindex|search|contents|bookindex|"
    r"release-\d|release\.html|index\.html$)"
)
# Site chrome around the text: Sphinx (Django's theme) and DocBook (PostgreSQL).
CHROME = (
    "//div[@id='hd']",
    "//div[contains(concat(' ', @class, ' '), ' nav ')]",
    "//div[@id='sidebar']",
    "//div[contains(@class, 'sphinxsidebar')]",
    "//div[@id='ft']",
    "//div[@class='navheader']",
    "//div[@class='navfooter']",
    "//script",
    "//style",
    "//a[@class='headerlink']",
)


# --- corpus ------------------------------------------------------------------------------------------------


def load_site(root: Path, base_url: str) -> tuple[list[Article], dict[str, list[str]]]:
    """Articles (id = path without .html) and each page's in-text links to other articles, in text order."""
    pages = sorted(p for p in root.rglob("*.html") if not SKIP.search(p.relative_to(root).as_posix()))
    ids = {p.relative_to(root).as_posix(): p.relative_to(root).as_posix()[: -len(".html")] for p in pages}
    articles, links = [], {}
    for p in pages:
        rel = p.relative_to(root).as_posix()
        doc = lxml_html.fromstring(p.read_bytes())
        title = (doc.findtext(".//title") or rel).split(" \u2014 ")[0].strip()
        for xp in CHROME:
            for el in doc.xpath(xp):
                el.drop_tree()
        body = doc.find(".//body")
        text = " ".join((body.text_content() if body is not None else "").split())
        out = []
        for a in body.iter("a") if body is not None else ():
            href = a.get("href")
            if not href or "://" in href or href.startswith(("mailto:", "#")):
                continue
            target = urldefrag(urljoin(rel, href))[0]
            if target in ids and target != rel:
                out.append(ids[target])
        articles.append(Article(id=ids[rel], title=title, url=base_url + rel, text=text))
        links[ids[rel]] = out
    return articles, links


# --- methods: each maps a prefix (article ids, oldest first) to its top-K unread articles -------------------


class MeanIntent:
    """Session-mean NN: the mean of the read pages' vectors."""

    def __init__(self, dim: int) -> None:
        self.input_dim = dim

    def intent(self, items: np.ndarray, keys=None) -> Intent:
        return Intent(unit(items.mean(0)), np.full(len(items), 1.0 / len(items)))


class LastPageIntent(MeanIntent):
    """Last-page NN: the vector of the page read last."""

    def intent(self, items: np.ndarray, keys=None) -> Intent:
        return Intent(unit(items[-1]), np.eye(len(items))[-1])


class FreeQueryIntent(MeanIntent):
    """A diagnostic bound, not a model to ship: one free query vector per last page, fitted on the training
    transitions (softmax over cos(query, text embedding) of every article, Adam 1e-2, 60 epochs, no validation).
    It is the most a last-page model can do while candidates are scored on their text embeddings."""

    def __init__(self, sessions: list[list[str]], ids: list[str], table: np.ndarray, seed: int) -> None:
        super().__init__(table.shape[1])
        pos = {a: i for i, a in enumerate(ids)}
        src = torch.tensor([pos[s[j - 1]] for s in sessions for j in range(1, len(s))])
        dst = torch.tensor([pos[s[j]] for s in sessions for j in range(1, len(s))])
        emb = torch.from_numpy(table)  # (N, D)
        torch.manual_seed(seed)
        queries = torch.nn.Parameter(emb.clone())  # (N, D), starts as last-page NN
        opt = torch.optim.Adam([queries], lr=1e-2)
        for _ in range(60):
            for b in torch.randperm(len(src)).split(128):
                logits = 10.0 * torch.nn.functional.normalize(queries[src[b]], dim=-1) @ emb.T  # (B, N)
                loss = torch.nn.functional.cross_entropy(logits, dst[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.queries = {a: queries[i].detach().numpy() for a, i in pos.items()}

    def intent(self, items: np.ndarray, keys=None) -> Intent:
        last = keys[-1] if keys else None
        return Intent(unit(self.queries.get(last, items[-1])), np.eye(len(items))[-1])


def without_cold_start(model: ContentSTAMP) -> ContentSTAMP:
    """The trained model with no catalogue: articles added after training are ranked by its intent on their text
    like any article nobody clicked, instead of at their zero-shot rank. What the merge costs the other steps."""
    out = ContentSTAMP(replace(model.config, catalogue=()))
    out.load_state_dict(model.state_dict())
    out.transitions = model.transitions
    return out.eval()


COLD_START_LABELS = {
    "rank": "added articles at their zero-shot rank (round 3's merge)",
    "score": "added articles on the trained scale (calibrated on validation)",
}


def with_cold_start(model: ContentSTAMP, policy: str) -> ContentSTAMP:
    """The trained model under the other cold-start policy, for the same-run comparison (train-intent keeps the
    calibration it fitted on its validation split even when it chose the rank merge)."""
    out = ContentSTAMP(replace(model.config, cold_start=policy))
    out.load_state_dict(model.state_dict())
    out.transitions = model.transitions
    return out.eval()


def with_cold_protect(model: ContentSTAMP, protect: float) -> ContentSTAMP:
    """The trained model with another protected-slot threshold (0: the plain rank merge), for the same-run
    comparison of what the protected slots change."""
    out = ContentSTAMP(replace(model.config, cold_protect=protect))
    out.load_state_dict(model.state_dict())
    out.transitions = model.transitions
    return out.eval()


def served(rec: SessionRecommender, intent_model) -> Callable[[Sequence[str]], list[str]]:
    """The recommender's own path (FAISS, read pages excluded, the trained model's cold-start merge) with this
    intent, pure ranking: no minimum score, no MMR, so every method is compared on its ranking alone."""
    r = SessionRecommender(
        rec.kb,
        rec.encoder,
        rec.index,
        intent_model=intent_model,
        settings=SuggestSettings(min_score=None, mmr_lambda=1.0),
    )
    return lambda prefix: [s.article.id for s in r.suggest_for(prefix, k=K)]


def item_model_ranker(model, keys: list[str]) -> Callable[[Sequence[str]], list[str]]:
    """An item-ID model: it scores its catalogue only (no article added after training); unknown pages in the
    prefix are skipped; read pages are excluded like the recommender does."""
    index = {k: i + 1 for i, k in enumerate(keys)}

    def rank(prefix: Sequence[str]) -> list[str]:
        known = [index[a] for a in prefix if a in index]
        if not known:
            return []
        scores = model.score(np.array([known], dtype=np.int64))[0]  # (n_items + 1,), column 0 = -inf
        scores[known] = -np.inf
        top = np.argsort(-scores, kind="stable")[:K]
        return [keys[i - 1] for i in top if np.isfinite(scores[i])]

    return rank


def unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


# --- metrics -----------------------------------------------------------------------------------------------


def reciprocal_ranks(
    rank: Callable[[Sequence[str]], list[str]], examples: list[tuple[int, list[str], str]]
) -> np.ndarray:
    out = np.zeros(len(examples))
    for j, (_, prefix, target) in enumerate(examples):
        top = rank(prefix)
        out[j] = 1.0 / (top.index(target) + 1) if target in top else 0.0
    return out


def bootstrap(rr: dict[str, np.ndarray], session: np.ndarray, n_boot: int, seed: int) -> dict[str, dict[str, tuple]]:
    """HR@K and MRR@K with 95% percentile CIs, resampling test sessions (a session's steps move together)."""
    rng = np.random.default_rng(seed)
    sessions = np.unique(session)
    rows = [np.flatnonzero(session == s) for s in sessions]
    draws = [np.concatenate([rows[i] for i in rng.integers(0, len(rows), len(rows))]) for _ in range(n_boot)]
    out = {}
    for name, r in rr.items():
        hr, mrr = (r > 0).astype(float), r
        ci = lambda x: tuple(np.percentile([x[d].mean() for d in draws], [2.5, 97.5]))  # noqa: E731
        out[name] = {"HR": (hr.mean(), *ci(hr)), "MRR": (mrr.mean(), *ci(mrr))}
    return out


def ratio_ci(a: np.ndarray, b: np.ndarray, session: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    rows = [np.flatnonzero(session == s) for s in np.unique(session)]
    vals = []
    for _ in range(n_boot):
        d = np.concatenate([rows[i] for i in rng.integers(0, len(rows), len(rows))])
        vals.append(a[d].mean() / max(b[d].mean(), 1e-12))
    return a.mean() / max(b.mean(), 1e-12), *np.percentile(vals, [2.5, 97.5])


# --- one corpus ----------------------------------------------------------------------------------------------


def log_visits(serving: SessionRecommender, visits: list[list[Article]], log: Path) -> ReplayStats:
    """Every visit through the real HTTP app (in process), its event log written to `log`."""
    from adapters.http import ServerSettings, create_app
    from adapters.http.replay import in_process_client, replay_visits

    log.unlink(missing_ok=True)
    app = create_app(serving, settings=ServerSettings(event_log=log))

    async def go() -> ReplayStats:
        async with in_process_client(app) as client:
            return await replay_visits(client, visits, k=K, progress=True, total=len(visits))

    return asyncio.run(go())


def run_corpus(name: str, root: Path, work: Path, args: argparse.Namespace) -> dict:

    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    articles, links = load_site(root, f"https://{name}.docs.test/")
    graph = LinkGraph.from_mapping(links)
    by_id = {a.id: a for a in articles}
    rng = np.random.default_rng(args.seed)
    new_ids = set(rng.choice([a.id for a in articles], int(len(articles) * args.new_fraction), replace=False).tolist())
    logger.info(
        "%s: %d articles, %d in-text links, %d kept out until after training",
        name,
        len(articles),
        sum(len(v) for v in graph.links),
        len(new_ids),
    )

    # Every article embedded once (cached across runs); the training index is that minus the new articles.
    full_dir, index_dir = work / "full-index", work / "index"
    encoder = _make_encoder(args.encoder)
    try:
        full = SessionRecommender.load(full_dir, encoder=encoder)
        have = set(full.index.ids()) if args.reuse_index else set()
        full.upsert_articles([a for a in articles if a.id not in have])
    except IndexFormatError:  # first run: nothing saved yet
        full = SessionRecommender.build(articles, encoder=encoder, progress=True)
    full.save(full_dir)
    shutil.rmtree(index_dir, ignore_errors=True)
    full.remove_articles(sorted(new_ids))
    full.save(index_dir)
    serving = SessionRecommender.load(index_dir, encoder=encoder)

    gen = WalkGenerator(graph, WalkConfig())
    visits = gen.walks(args.walks + args.test_walks, seed=args.seed + 1)
    log = work / "events.jsonl"
    stats_file = work / "replay.json"
    if args.reuse_log and stats_file.exists() and json.loads(stats_file.read_text())["visits"] == visits:
        stats = ReplayStats(**json.loads(stats_file.read_text())["stats"])
        logger.info("%s: reusing %s, logged earlier for these same visits", name, log)
    else:
        stats = log_visits(serving, [[by_id[a] for a in v] for v in visits], log)
        stats_file.write_text(json.dumps({"visits": visits, "stats": asdict(stats)}))
    logger.info(
        "%s: logged %s; %.1f%% of steps went through a shown suggestion", name, stats, 100 * stats.click_through
    )

    # Split the log by session time: first --walks visits train, the rest test.
    sessions = click_sessions(log, url_items=True)
    pseudonym = EventLog(log).pseudonym  # the log keeps a keyed pseudonym of each session id, never the id
    assert [s.session_id for s in sessions] == [pseudonym(s) for s in stats.session_ids], (
        "sessions in the log are not the visits"
    )
    url_to_id = {a.url: a.id for a in articles}
    train_sids = {s.session_id for s in sessions[: args.walks]}
    train_log = work / "train-events.jsonl"
    train_log.write_text("".join(json.dumps(r) + "\n" for r in read_records(log) if r.get("session_id") in train_sids))
    test = [[url_to_id.get(i, i) for i in s.items] for s in sessions[args.walks :]]
    assert test == visits[args.walks :], "the log does not give back the visits replayed"

    train_cmd = [
        "train-intent",
        "--index",
        str(index_dir),
        "--log",
        str(train_log),
        "--dim",
        str(args.dim),
        "--min-clicks",
        str(args.min_clicks),
        "--epochs",
        str(args.epochs),
        "--item-model",
        args.item_model,
        "--quiet",
    ]
    logger.info("python -m plugin %s", " ".join(train_cmd))
    plugin_main(train_cmd)
    trained_rec = SessionRecommender.load(index_dir, encoder=encoder)
    trained = trained_rec.intent_model
    if not isinstance(trained, ContentSTAMP) or trained.config.zero_shot:
        logger.warning("%s: train-intent did not install a model (it did not beat zero-shot on validation)", name)
    trained_rec.upsert_articles([by_id[a] for a in sorted(new_ids)])  # added after training, not retrained

    train_sessions = [list(s.items) for s in click_sessions(train_log, known=set(serving.kb.ids()))]
    keys = sorted({a for s in train_sessions for a in s})
    kpos = {k: i + 1 for i, k in enumerate(keys)}
    int_sessions = [np.array([kpos[a] for a in s], dtype=np.int64) for s in train_sessions]
    item_models = {}
    for label, mname, opts in (("Markov-1", "markov", {}), ("V-SKNN", "vsknn", {"k": args.vsknn_k})):
        m = get_model(mname, **opts)
        m.fit(int_sessions, len(keys), item_keys=keys)
        item_models[label] = m

    dim = trained_rec.index.dim
    methods = {"trained intent (train-intent)": served(trained_rec, trained)}
    if isinstance(trained, ContentSTAMP) and trained.transitions is not None:
        alone = with_scoring(trained, trained.config.plain_scoring)
        alone.transitions = None
        methods["trained intent without its transition counts (diagnostic)"] = served(trained_rec, alone)
    if isinstance(trained, ContentSTAMP) and trained.config.catalogue:
        other = "score" if trained.config.cold_start == "rank" else "rank"
        if other == "rank" or trained.config.cold_calibration:
            methods[f"trained intent, {COLD_START_LABELS[other]} (diagnostic)"] = served(
                trained_rec, with_cold_start(trained, other)
            )
        if trained.config.cold_start == "rank" and trained.config.cold_protect > 0:
            methods["trained intent, rank merge without protected slots (diagnostic)"] = served(
                trained_rec, with_cold_protect(trained, 0.0)
            )
        methods["trained intent, no cold-start merge: added articles scored on their text (diagnostic)"] = served(
            trained_rec, without_cold_start(trained)
        )
    methods = {
        **methods,
        "zero-shot intent": served(trained_rec, ContentSTAMP.zero_shot(dim)),
        "session-mean NN": served(trained_rec, MeanIntent(dim)),
        "last-page NN": served(trained_rec, LastPageIntent(dim)),
        **{label: item_model_ranker(m, keys) for label, m in item_models.items()},
        "bound: free query per last page, text-scored (diagnostic)": served(
            trained_rec,
            FreeQueryIntent(train_sessions, serving.index.ids(), serving.index.vectors(serving.index.ids()), args.seed),
        ),
    }
    gpos = {p: i for i, p in enumerate(graph.ids)}

    def ceiling(prefix: Sequence[str]) -> list[str]:
        p = gen.next_distribution([gpos[a] for a in prefix])
        return [graph.ids[i] for i in np.argsort(-p, kind="stable")[:K] if p[i] > 0]

    methods["ceiling (the walks' true next-page law)"] = ceiling
    examples = [(si, s[:j], s[j]) for si, s in enumerate(test) for j in range(1, len(s))]
    session = np.array([e[0] for e in examples])
    rr = {m: reciprocal_ranks(f, examples) for m, f in methods.items()}
    subsets = {
        "all test steps": np.ones(len(examples), bool),
        "next page added after training": np.array([t in new_ids for _, _, t in examples]),
        "last page read added after training": np.array([p[-1] in new_ids for _, p, _ in examples]),
    }
    tables = {}
    for sub, mask in subsets.items():
        if mask.sum() == 0:
            continue
        tables[sub] = {
            "n": int(mask.sum()),
            "rows": bootstrap({m: r[mask] for m, r in rr.items()}, session[mask], args.bootstrap, args.seed),
        }
    best_item = max(item_models, key=lambda m: rr[m].mean())
    main = "trained intent (train-intent)"
    return {
        "corpus": name,
        "articles": len(articles),
        "links": int(sum(len(v) for v in graph.links)),
        "new_articles": len(new_ids),
        "visits_logged": stats.visits,
        "page_views": stats.page_views,
        "impressions": stats.impressions,
        "suggestion_clicks": stats.clicks,
        "train_sessions": len(train_sessions),
        "test_sessions": len(test),
        "test_steps": len(examples),
        "learned_articles": len(trained.config.item_keys) if isinstance(trained, ContentSTAMP) else 0,
        "scoring": ("plain (as trained)" if trained.config.plain_scoring else "with the rules' fusion")
        if isinstance(trained, ContentSTAMP)
        else "zero-shot",
        "cold_start": f"{COLD_START_LABELS.get(trained.config.cold_start, '?')}, placed by the zero-shot intent "
        f"at temperature {trained.config.zero_shot_temperature:g}"
        + (f" within its top {trained.config.cold_depth}" if trained.config.cold_depth else "")
        + (
            f" below the known successors with transition evidence >= {trained.config.cold_protect:g} (protected slots)"
            if trained.config.cold_protect
            else ""
        )
        if isinstance(trained, ContentSTAMP) and trained.config.catalogue
        else "-",
        "transitions": (
            f"blended with the log's transition counts (decay {trained.transitions.config.decay:g}, "
            f"weight {trained.transitions.config.weight:g}, popularity {trained.transitions.config.popularity:g})"
            if isinstance(trained, ContentSTAMP) and trained.transitions is not None
            else "without transition counts"
        ),
        "tables": tables,
        "best_item_model": best_item,
        "mrr_ratio_vs_best_item": ratio_ci(rr[main], rr[best_item], session, args.bootstrap, args.seed),
        "mrr_ratio_vs_zero_shot": ratio_ci(rr[main], rr["zero-shot intent"], session, args.bootstrap, args.seed),
        "seconds": time.perf_counter() - t0,
    }


def markdown(results: list[dict], command: str) -> str:
    lines = [f"Command: `{command}`", ""]
    for r in results:
        lo, hi = r["mrr_ratio_vs_best_item"][1:]
        lines += [
            f"**{r['corpus']}**: {r['articles']} articles, {r['links']} in-text links, {r['new_articles']} added after "
            f"training. Logged through the API: {r['visits_logged']} visits, {r['page_views']} page views, "
            f"{r['impressions']} impressions, {r['suggestion_clicks']} suggestion clicks. Trained on "
            f"{r['train_sessions']} sessions ({r['learned_articles']} articles with learned vectors; served "
            f"{r.get('scoring', '?')}, {r.get('transitions', '?')}, {r.get('cold_start', '?')}, all chosen by "
            f"train-intent on its own training log: the blend over time blocks of it, the rest on its validation "
            f"split and stand-ins); tested on "
            f"{r['test_sessions']} held-out visits ({r['test_steps']} steps). Trained / best item-ID model "
            f"({r['best_item_model']}) MRR@5: **{r['mrr_ratio_vs_best_item'][0]:.3f}×** [{lo:.3f}, {hi:.3f}]; "
            f"trained / zero-shot: {r['mrr_ratio_vs_zero_shot'][0]:.2f}×.",
            "",
        ]
        for sub, t in r["tables"].items():
            lines += [f"| {r['corpus']}: {sub} (n={t['n']}) | HR@5 [95% CI] | MRR@5 [95% CI] |", "|---|---|---|"]
            for m, v in t["rows"].items():
                lines.append(
                    f"| {m} | {v['HR'][0]:.3f} [{v['HR'][1]:.3f}, {v['HR'][2]:.3f}] | "
                    f"{v['MRR'][0]:.3f} [{v['MRR'][1]:.3f}, {v['MRR'][2]:.3f}] |"
                )
            lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", action="append", required=True, metavar="NAME=HTML_DIR")
    p.add_argument("--work", required=True, help="scratch folder: indexes, event logs, results")
    p.add_argument("--walks", type=int, default=3000, help="visits for training (+ validation)")
    p.add_argument("--test-walks", type=int, default=1000)
    p.add_argument("--new-fraction", type=float, default=0.1, help="share of articles added only after training")
    p.add_argument("--encoder", default="minilm")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--min-clicks", type=int, default=5)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument(
        "--item-model", default="auto", help="train-intent's --item-model (auto: its validation split decides)"
    )
    p.add_argument("--vsknn-k", type=int, default=100)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--reuse-log",
        action="store_true",
        help="skip logging when WORK/NAME/replay.json says these same visits were logged already",
    )
    p.add_argument(
        "--reuse-index",
        action="store_true",
        help="articles already in WORK/NAME/full-index keep the vectors saved there (an earlier run's "
        "encoder settings), so a rerun does not re-embed the corpus",
    )
    p.add_argument("--out", default=None, help="write the Markdown tables here (default: WORK/learning_loop.md)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    work = Path(args.work)
    for spec in args.corpus:
        name, _, folder = spec.partition("=")
        if not folder or not Path(folder).is_dir():
            p.error(f"--corpus {spec!r}: expected NAME=HTML_DIR with an existing folder")
    command = "python bench/learning_loop.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out) if args.out else work / "learning_loop.md"
    results = []
    for spec in args.corpus:
        name, _, folder = spec.partition("=")
        results.append(run_corpus(name, Path(folder), work / name, args))
        md = markdown(results, command)  # written after each corpus, so a long run shows what it has
        out.write_text(md + "\n")
        (work / "learning_loop.json").write_text(json.dumps(results, indent=1, default=float))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
