"""Relevance on real documentation: the plugin's default suggestions against baselines, same sessions, same vectors.

    python -m bench.relevance [DOCS_DIR ...] [--sessions 400] [--seed 0] [--json out.json] [--tune]

Corpora are documentation folders installed on this machine (default: Debian's postgresql-doc-15 and
python-django-doc); nothing from them is copied into the repository. Ground truth comes from each site's own
structure (bench/docs_corpus.py): chapters from its tables of contents, in-text links between its pages.
Articles are the pages as `plugin.load_articles` ingests them, embedded by the packaged MiniLM through
`SessionRecommender.build` (embeddings cached under runs/relevance-cache/).

Protocols (k=5; sessions seeded; 95% bootstrap CIs over sessions):
  topical  2 or 3 pages of one chapter -> P@5 (share of the 5 slots in that chapter), hit@5
  drift    2 pages of chapter A, then 1 of chapter B -> share of slots in B, in A, elsewhere
  walk     semi-synthetic visitors: walks of 2-3 pages along in-text links -> HR@5/MRR@5 of the next page
  query    2 pages of a chapter + a question (a section heading of a third page T of that chapter, never T's
           title) -> HR@5/MRR@5 of T, and P@5 in the chapter
Chapters are split (seeded) into a tuning half and a held-out report half; defaults are chosen on the tuning half
only (`--tune` prints the candidates), and the tables report both.
"""

from __future__ import annotations

import os

# One BLAS thread: on a shared machine OpenBLAS's spinning threads made each small matmul ~20x slower.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import itertools
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from plugin import SessionRecommender, SuggestSettings
from plugin.chunking import MAX_WINDOWS
from plugin.encoder import ENCODER_BACKENDS, sentence_encoder
from plugin.zero_shot import ZeroShotIntent

from .docs_corpus import DocsCorpus, load_corpus, section_headings
from .relevance_index import DEFAULT_CACHE, build_recommender
from .relevance_protocols import (
    Session,
    bootstrap_ci,
    drift_ceiling,
    drift_sessions,
    hit_at,
    precision_at,
    query_sessions,
    rank_metrics,
    ratio_ci,
    split_chapters,
    topical_ceiling,
    topical_sessions,
    walk_ceiling,
    walk_sessions,
)

logger = logging.getLogger("bench.relevance")

DEFAULT_DOCS = ("/usr/share/doc/postgresql-doc-15/html", "/usr/share/doc/python-django-doc/html")
K = 5
PROTOCOLS = ("topical-2", "topical-3", "drift", "walk", "query")

Method = Callable[[Session], list[str]]


# ---------------------------------------------------------------- methods


class Baselines:
    """The trivial things, on the index's own vectors (the same MiniLM vectors the plugin uses)."""

    def __init__(self, rec: SessionRecommender, corpus: DocsCorpus, seed: int) -> None:
        import bm25s

        self.rec = rec
        self.ids = rec.index.ids()
        self.row = {a: i for i, a in enumerate(self.ids)}
        self.V = rec.index.vectors(self.ids)  # (N, D)
        # The plugin never suggests hub/TOC pages (they are read, not recommended): the baselines rank the same
        # candidates, except the one row that shows what allowing them would do.
        self.hub = np.array([bool(rec.kb.get(a).meta.get("hub")) for a in self.ids])  # (N,)
        self.rng = np.random.default_rng(seed)
        texts = {a.id: a.embed_text() for a in corpus.articles}
        self.texts = texts
        self.bm25 = bm25s.BM25()
        self.bm25.index(
            bm25s.tokenize([texts[a] for a in self.ids], stopwords="en", show_progress=False), show_progress=False
        )

    def _top(self, scores: np.ndarray, exclude: Sequence[str], hubs: bool = False) -> list[str]:
        scores = scores.astype(np.float64).copy()
        if not hubs:
            scores[self.hub] = -np.inf
        for p in exclude:
            if p in self.row:
                scores[self.row[p]] = -np.inf
        order = np.argsort(-scores, kind="stable")[:K]
        return [self.ids[i] for i in order if np.isfinite(scores[i])]

    def vec(self, pages: Sequence[str]) -> np.ndarray:
        return self.V[[self.row[p] for p in pages]]  # (L, D)

    def last_page(self, s: Session) -> list[str]:
        return self._top(self.V @ self.vec(s.pages[-1:])[0], s.pages)

    def session_mean(self, s: Session) -> list[str]:
        return self._top(self.V @ self.vec(s.pages).mean(0), s.pages)

    def session_mean_hubs(self, s: Session) -> list[str]:
        return self._top(self.V @ self.vec(s.pages).mean(0), s.pages, hubs=True)

    def bm25_read(self, s: Session) -> list[str]:
        import bm25s

        tokens = bm25s.tokenize(
            " ".join(self.texts[p] for p in s.pages), stopwords="en", return_ids=False, show_progress=False
        )[0]
        return self._top(self.bm25.get_scores(tokens), s.pages)

    def random(self, s: Session) -> list[str]:
        return self._top(self.rng.random(len(self.ids)), s.pages)

    def query_only(self, s: Session) -> list[str]:
        q = self.rec.page_encoder.encode([s.query or ""])[0]
        return self._top(self.V @ q, s.pages)


def plugin_method(rec: SessionRecommender) -> Method:
    """The plugin through its public API: a real session tracked page by page, then `suggest`."""
    counter = itertools.count()

    def run(s: Session) -> list[str]:
        sid = f"bench-{next(counter)}"
        for i, p in enumerate(s.pages):
            art = rec.kb.get(p)
            rec.track(sid, "page_view", article_id=p, url=art.url or None, ts=1000.0 + 60.0 * i)
        try:
            return [sg.article.id for sg in rec.suggest(sid, k=K, query=s.query)]
        finally:
            rec.erase(sid)

    return run


def variant(rec: SessionRecommender, *, temperature: float | None = None, **settings) -> SessionRecommender:
    """A recommender sharing rec's KB, index and encoder, with other settings / zero-shot temperature."""
    intent = ZeroShotIntent(rec.index.dim, temperature=temperature) if temperature is not None else None
    base = rec.settings.model_dump()
    base.update(settings)
    return SessionRecommender(rec.kb, rec.encoder, rec.index, settings=SuggestSettings(**base), intent_model=intent)


# ---------------------------------------------------------------- scoring


def score_sessions(
    protocol: str, sessions: Sequence[Session], method: Method, corpus: DocsCorpus, members: dict[str, list[str]]
) -> dict[str, list[float]]:
    """Per-session metric values of one method on one protocol."""
    out: dict[str, list[float]] = {}

    def add(name: str, v: float) -> None:
        out.setdefault(name, []).append(v)

    for s in sessions:
        ranked = method(s)
        if protocol.startswith("topical"):
            rel = set(members[s.chapter]) - set(s.pages)
            add("P@5", precision_at(ranked, rel, K))
            add("hit@5", hit_at(ranked, rel, K))
        elif protocol == "drift":
            b = set(members[s.chapter]) - set(s.pages)
            a = set(members[s.earlier or ""]) - set(s.pages)
            add("in B (newest)", precision_at(ranked, b, K))
            add("in A (earlier)", precision_at(ranked, a, K))
            add("elsewhere", 1.0 - precision_at(ranked, a | b, K))
        elif protocol == "walk":
            hr, mrr = rank_metrics(ranked, s.target or "", K)
            add("HR@5", hr)
            add("MRR@5", mrr)
        elif protocol == "query":
            hr, mrr = rank_metrics(ranked, s.target or "", K)
            add("HR@5", hr)
            add("MRR@5", mrr)
            add("P@5", precision_at(ranked, set(members[s.chapter]) - set(s.pages), K))
    return out


def ceiling_values(
    protocol: str, sessions: Sequence[Session], corpus: DocsCorpus, members: dict[str, list[str]]
) -> dict[str, list[float]]:
    if protocol.startswith("topical"):
        v = [topical_ceiling(s, members, K) for s in sessions]
        return {"P@5": v, "hit@5": [float(x > 0) for x in v]}
    if protocol == "walk":
        v = [walk_ceiling(s, corpus.links, K) for s in sessions]
        return {"HR@5": v}
    if protocol == "drift":
        hubs = {a.id for a in corpus.articles if a.meta.get("hub")}
        rows = [drift_ceiling(s, members, hubs, K) for s in sessions]
        return {m: [r[m] for r in rows] for m in rows[0]} if rows else {}
    return {}


def make_sessions(corpus: DocsCorpus, chapters: Sequence[str], n: int, seed: int) -> dict[str, list[Session]]:
    members = corpus.members()
    titles = {a.id: a.title for a in corpus.articles}
    page_path = {a.id: corpus.root / a.id for a in corpus.articles}

    def headings(p: str) -> list[str]:
        path = page_path.get(p)
        return section_headings(path) if path is not None and path.is_file() else []

    return {
        "topical-2": topical_sessions(members, chapters, 2, n, random.Random(seed + 1)),
        "topical-3": topical_sessions(members, chapters, 3, n, random.Random(seed + 2)),
        "drift": drift_sessions(members, chapters, n, random.Random(seed + 3)),
        "walk": walk_sessions(corpus.links, corpus.chapter, chapters, (2, 3), n, random.Random(seed + 4)),
        "query": query_sessions(members, chapters, headings, titles, n, random.Random(seed + 5)),
    }


def evaluate(
    corpus: DocsCorpus,
    sessions: dict[str, list[Session]],
    methods: dict[str, Method],
    progress: bool = True,
    only: dict[str, frozenset[str]] | None = None,
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """protocol -> method -> metric -> per-session values (the ceiling included as a method). `only` limits a
    method to some protocols."""
    only = only or {}
    members = corpus.members()
    res: dict[str, dict[str, dict[str, list[float]]]] = {}
    bar = tqdm(
        total=sum(len(v) for v in sessions.values()) * len(methods),
        desc=f"{corpus.name}",
        unit="sess",
        disable=not progress,
        mininterval=10,
    )
    for proto, sess in sessions.items():
        res[proto] = {}
        for name, m in methods.items():
            if (name == "query-only" and proto != "query") or (name in only and proto not in only[name]):
                continue
            res[proto][name] = score_sessions(proto, sess, m, corpus, members)
            bar.update(len(sess))
        ceil = ceiling_values(proto, sess, corpus, members)
        if ceil:
            res[proto]["ceiling"] = ceil
    bar.close()
    return res


# ---------------------------------------------------------------- report


def _fmt(values: Sequence[float], seed: int) -> str:
    m, lo, hi = bootstrap_ci(values, seed)
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def summarise(res: dict, seed: int) -> dict:
    return {
        proto: {
            meth: {met: dict(zip(("mean", "lo", "hi"), bootstrap_ci(v, seed)), n=len(v)) for met, v in mets.items()}
            for meth, mets in by.items()
        }
        for proto, by in res.items()
    }


def tables(title: str, res: dict, seed: int, n_sessions: dict[str, int]) -> str:
    lines = [f"#### {title}", ""]
    for proto, by in res.items():
        metrics = list(dict.fromkeys(m for mets in by.values() for m in mets))  # the ceiling may add a column
        lines.append(f"*{proto}* ({n_sessions[proto]} sessions)")
        lines.append("")
        lines.append("| method | " + " | ".join(metrics) + " |")
        lines.append("|---|" + "---|" * len(metrics))
        for meth, mets in by.items():
            lines.append(f"| {meth} | " + " | ".join(_fmt(mets[m], seed) if m in mets else "" for m in metrics) + " |")
        lines.append("")
    return "\n".join(lines)


GRID_COLUMNS = (
    ("topical-2", "P@5"),
    ("topical-3", "P@5"),
    ("drift", "in B (newest)"),
    ("drift", "in A (earlier)"),
    ("walk", "MRR@5"),
    ("query", "MRR@5"),
)


def grid_table(summary: dict) -> str:
    """One row per method, the headline metric of each protocol (means; blank where not scored)."""
    methods = list(dict.fromkeys(m for by in summary.values() for m in by))
    head = " | ".join(f"{p} {m}" for p, m in GRID_COLUMNS)
    lines = [f"| method | {head} |", "|---|" + "---|" * len(GRID_COLUMNS)]
    for meth in methods:
        cells = []
        for proto, met in GRID_COLUMNS:
            v = summary.get(proto, {}).get(meth, {}).get(met)
            cells.append(f"{v['mean']:.3f}" if v else "")
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def goals(title: str, res: dict, seed: int) -> tuple[str, dict]:
    """The issue's goals for the default, with the paired ratio CIs."""
    rows, out = [], {}
    for proto in ("topical-2", "topical-3"):
        r = ratio_ci(res[proto]["default"]["P@5"], res[proto]["session-mean NN"]["P@5"], seed)
        out[f"{proto} P@5 default / session-mean"] = r
        rows.append(
            (f"{proto}: P@5 default / session-mean NN", "≥ 1.10", f"{r[0]:.3f} [{r[1]:.3f}, {r[2]:.3f}]", r[0] >= 1.10)
        )
        h = ratio_ci(res[proto]["default"]["P@5"], res[proto]["session-mean NN, hub pages allowed"]["P@5"], seed)
        out[f"{proto} P@5 default / session-mean, hub pages allowed"] = h
        rows.append(
            (
                f"{proto}: (for comparison) / session-mean NN allowed to suggest hub pages",
                "—",
                f"{h[0]:.3f} [{h[1]:.3f}, {h[2]:.3f}]",
                None,
            )
        )
    d = res["drift"]["default"]
    b, a = bootstrap_ci(d["in B (newest)"], seed), bootstrap_ci(d["in A (earlier)"], seed)
    out["drift in B"], out["drift in A"] = b, a
    rows.append(("drift: share in newest chapter B", "≥ 0.45", f"{b[0]:.3f} [{b[1]:.3f}, {b[2]:.3f}]", b[0] >= 0.45))
    rows.append(("drift: share in earlier chapter A", "≥ 0.15", f"{a[0]:.3f} [{a[1]:.3f}, {a[2]:.3f}]", a[0] >= 0.15))
    q = ratio_ci(res["query"]["default"]["MRR@5"], res["query"]["query-only"]["MRR@5"], seed)
    out["query MRR@5 default / query-only"] = q
    rows.append(
        ("query: MRR@5 of T, default / query-only", "> 1.00", f"{q[0]:.3f} [{q[1]:.3f}, {q[2]:.3f}]", q[0] > 1.0)
    )
    lines = [f"#### {title}: goals", "", "| goal | target | measured (95% CI) | met |", "|---|---|---|---|"]
    lines += [f"| {g} | {t} | {m} | {'' if ok is None else 'yes' if ok else '**no**'} |" for g, t, m, ok in rows]
    return "\n".join(lines) + "\n", out


def baseline_methods(base: Baselines, rec: SessionRecommender) -> dict[str, Method]:
    return {
        "default": plugin_method(rec),
        "session-mean NN": base.session_mean,
        "session-mean NN, hub pages allowed": base.session_mean_hubs,
        "last-page NN": base.last_page,
        "BM25 (read text)": base.bm25_read,
        "random": base.random,
        "query-only": base.query_only,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.relevance", description=__doc__.split("\n\n")[0])
    ap.add_argument("docs", nargs="*", default=list(DEFAULT_DOCS), help="documentation folders (installed HTML)")
    ap.add_argument("--sessions", type=int, default=400, help="sessions per protocol per split (default 400)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="embedding cache (.npz), created if missing")
    ap.add_argument("--json", type=Path, help="write every number (means and CIs) here")
    ap.add_argument("--tune", action="store_true", help="also score the tuning grid on the tuning chapters")
    ap.add_argument("--only", choices=("tuning", "report", "both"), default="both")
    ap.add_argument(
        "--max-windows",
        type=int,
        default=MAX_WINDOWS,
        help=f"windows pooled per article (plugin.chunking; default {MAX_WINDOWS}, 0 = all)",
    )
    ap.add_argument(
        "--backend",
        choices=ENCODER_BACKENDS,
        default="auto",
        help="how the packaged MiniLM runs (plugin.encoder.sentence_encoder; default auto). Give each "
        "backend its own --cache file: the cache is keyed by encoder name, so they never mix",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import faiss
        import torch

        torch.set_num_threads(1)
        faiss.omp_set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass

    t0 = time.perf_counter()
    report: dict = {
        "command": "python -m bench.relevance " + " ".join(sys.argv[1:] if argv is None else argv),
        "k": K,
        "seed": args.seed,
        "corpora": {},
    }
    md: list[str] = []
    encoder = sentence_encoder(args.backend)
    report["encoder"] = encoder.name
    for folder in args.docs:
        corpus = load_corpus(folder, name=_corpus_name(folder))
        rec = build_recommender(corpus, cache_path=args.cache, encoder=encoder, max_windows=args.max_windows or None)
        tune_ch, report_ch = split_chapters(corpus.members(), args.seed)
        base = Baselines(rec, corpus, args.seed)
        entry: dict = {
            "articles": len(corpus.articles),
            "max_windows": args.max_windows or None,
            "chapters_tuning": len(tune_ch),
            "chapters_report": len(report_ch),
            "settings": rec.settings.model_dump(),
        }
        md.append(
            f"### {corpus.name}: {len(corpus.articles)} articles, {len(tune_ch)} tuning / {len(report_ch)} "
            f"held-out chapters (≥ 3 pages)\n"
        )
        splits = {"tuning": tune_ch, "report": report_ch}
        for split, chapters in splits.items():
            if args.only not in (split, "both"):
                continue
            sessions = make_sessions(corpus, chapters, args.sessions, args.seed + (0 if split == "tuning" else 100))
            methods = baseline_methods(base, rec)
            only: dict[str, frozenset[str]] = {}
            if args.tune and split == "tuning":
                for name, kw, protos in tuning_grid():
                    methods[name] = plugin_method(variant(rec, **kw))
                    only[name] = protos
            res = evaluate(corpus, sessions, methods, only=only)
            n_sessions = {p: len(s) for p, s in sessions.items()}
            label = "held-out chapters" if split == "report" else "tuning chapters"
            md.append(tables(f"{corpus.name}, {label}", res, args.seed, n_sessions))
            g_md, g = goals(f"{corpus.name}, {label}", res, args.seed)
            md.append(g_md)
            entry[split] = {"sessions": n_sessions, "results": summarise(res, args.seed), "goals": g}
            if args.tune and split == "tuning":
                md.append(f"#### {corpus.name}, tuning grid (means)\n\n" + grid_table(entry[split]["results"]))
        report["corpora"][corpus.name] = entry
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print("\n".join(md))
    print(f"\n({report['seconds']} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


def _corpus_name(folder: str) -> str:
    parts = [p for p in Path(folder).parts if p not in ("/", "html", "usr", "share", "doc")]
    return parts[-1] if parts else Path(folder).name


ALL = frozenset(PROTOCOLS)
QUERY = frozenset({"query"})
SESSION = frozenset({"topical-2", "topical-3", "drift", "walk"})
TOPICAL = frozenset({"topical-2", "topical-3", "query"})


def tuning_grid() -> list[tuple[str, dict, frozenset[str]]]:
    """Candidate defaults scored on the tuning chapters (`--tune`): (name, settings, protocols to score them on).
    Round 2 (after main-content ingestion and pooled windows): the link bonus, then one knob at a time around the
    shipped defaults ("default" in the tables), to see whether the first round's choices still hold. Round 3 added
    the hubness discount (plugin.hubness) and title similarity (plugin.titles)."""
    off = dict(centre=False, lexical_weight=0.0, topic_split=None, min_score=None, mmr_lambda=1.0, link_weight=0.0)
    grid: list[tuple[str, dict, frozenset[str]]] = [
        ("old default (tau 2, min 0.2, mmr 0.7)", dict(off, temperature=2.0, min_score=0.2, mmr_lambda=0.7), ALL),
    ]
    for key, values, protos in (
        ("hubness_weight", (0.0, 0.3, 0.8), SESSION),
        ("title_weight", (0.0, 0.3, 0.5), ALL),
        ("link_weight", (0.05, 0.1, 0.2, 0.3), ALL),
        ("lexical_weight", (0.5, 1.0), SESSION),
        ("topic_split", (0.0, 0.2), SESSION),
        ("newest_share", (0.6, 1.0), frozenset({"drift"})),
        ("temperature", (0.01, 2.0), SESSION),
        ("mmr_lambda", (1.0,), TOPICAL),
    ):
        for v in values:
            grid.append((f"default, {key}={v}", {key: v}, protos))
    return grid


if __name__ == "__main__":
    raise SystemExit(main())
