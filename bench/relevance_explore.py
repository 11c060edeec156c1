"""Scoring ideas tried on the relevance benchmark's cached vectors, before any of them went into the plugin.

    python -m bench.relevance_explore DOCS_DIR [--split tuning|report] [--sessions 400]

Every method here is "mean over the read pages of one row of an article x article affinity matrix", so a dozen
ideas score in seconds on the same sessions as `bench.relevance` (same split, same seeds, hub pages never ranked):
session mean, centred cosine, + BM25 + link bonus ("fuse", what the plugin's default adds), graph diffusion
(manifold ranking over a kNN graph), pseudo-relevance feedback, removing the top principal components,
shrunk whitening, co-citation over in-text links, and CSLS hubness reduction (`plugin.hubness`) over a k / weight
grid. Choose on `--split tuning`; look at `report` only to confirm. The plugin's own `suggest()` is scored beside
them ("default"). Results of the run that chose the hubness discount: BENCHMARKS.md, relevance round 3.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .docs_corpus import load_corpus
from .relevance import _corpus_name, make_sessions, plugin_method, score_sessions
from .relevance_index import DEFAULT_CACHE, build_recommender
from .relevance_protocols import Session, ratio_ci, split_chapters

K = 5
PROTOCOLS = ("topical-2", "topical-3", "drift", "walk")
COLUMNS = (
    ("topical-2", "P@5"),
    ("topical-3", "P@5"),
    ("drift", "in B (newest)"),
    ("drift", "in A (earlier)"),
    ("walk", "MRR@5"),
)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Affinities:
    """Article x article matrices over one corpus's index: cosines, BM25, links."""

    def __init__(self, rec, corpus) -> None:
        import bm25s

        self.ids = rec.index.ids()
        self.row = {a: i for i, a in enumerate(self.ids)}
        self.V = rec.index.vectors(self.ids).astype(np.float32)  # (N, D)
        self.C = self.V - self.V.mean(0)  # (N, D)
        self.Vc = _unit(self.C)
        self.hub = np.array([bool(rec.kb.get(a).meta.get("hub")) for a in self.ids])  # (N,)
        texts = [rec.kb.get(a).embed_text() for a in self.ids]
        bm = bm25s.BM25()
        bm.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        n = len(self.ids)
        self.B = np.zeros((n, n), np.float32)  # row i: BM25 of every article for article i's text, best = 1
        for i, t in enumerate(texts):
            s = np.asarray(
                bm.get_scores(bm25s.tokenize(t[:4000], stopwords="en", return_ids=False, show_progress=False)[0]),
                np.float32,
            )
            if s.max() > 0:
                self.B[i] = s / s.max()
        self.L = np.zeros((n, n), np.float32)  # the plugin's link bonus: i's text links to j
        for i, a in enumerate(self.ids):
            for t in rec._linked_from([a]):
                if t in self.row:
                    self.L[i, self.row[t]] = 1

    def top(self, scores: np.ndarray, pages: Sequence[str]) -> list[str]:
        s = scores.astype(np.float64).copy()
        s[[self.row[p] for p in pages]] = -np.inf
        s[self.hub] = -np.inf
        return [self.ids[i] for i in np.argsort(-s, kind="stable")[:K]]

    def mean_rows(self, S: np.ndarray) -> Callable[[Session], list[str]]:
        return lambda s: self.top(S[[self.row[p] for p in s.pages]].mean(0), s.pages)


def _knn_graph(S: np.ndarray, m: int) -> np.ndarray:
    S = S.copy()
    np.fill_diagonal(S, -np.inf)
    idx = np.argpartition(-S, m, axis=1)[:, :m]
    W = np.zeros_like(S)
    rows = np.arange(len(S))[:, None]
    W[rows, idx] = np.maximum(S[rows, idx], 0)
    return np.maximum(W, W.T)


def _diffusion(W: np.ndarray, alpha: float) -> np.ndarray:
    d = W.sum(1)
    d[d == 0] = 1
    Wn = W / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    return np.linalg.inv(np.eye(len(W)) - alpha * Wn.astype(np.float64)).astype(np.float32)


def methods(aff: Affinities, rec) -> dict[str, Callable[[Session], list[str]]]:
    S1 = aff.Vc @ aff.Vc.T
    extras = 0.7 * aff.B + 0.1 * aff.L  # the default's lexical and link terms
    out = {
        "session mean": aff.mean_rows(aff.V @ aff.V.T),
        "centred": aff.mean_rows(S1),
        "fuse (centred + BM25 + links)": aff.mean_rows(S1 + extras),
        "default (plugin suggest)": plugin_method(rec),
    }
    for m, a in ((10, 0.5), (10, 0.8), (20, 0.5)):
        out[f"diffusion kNN {m}, alpha {a}"] = aff.mean_rows(_diffusion(_knn_graph(S1, m), a))
    for m, beta in ((5, 0.3), (10, 0.3)):

        def prf(s: Session, m: int = m, beta: float = beta) -> list[str]:
            rows = [aff.row[p] for p in s.pages]
            sc = (S1 + extras)[rows].mean(0)
            tmp = sc.copy()
            tmp[rows] = -np.inf
            tmp[aff.hub] = -np.inf
            return aff.top(sc + beta * (S1 + extras)[np.argsort(-tmp)[:m]].mean(0), s.pages)

        out[f"PRF top {m}, beta {beta} (fuse)"] = prf
    _, sv, Vt = np.linalg.svd(aff.C, full_matrices=False)
    for d in (1, 5):
        X = _unit(aff.C - (aff.C @ Vt[:d].T) @ Vt[:d])
        out[f"top {d} PCs removed (fuse)"] = aff.mean_rows(X @ X.T + extras)
    var = sv**2 / len(aff.C)
    X = _unit((aff.C @ Vt.T) / np.sqrt(var + var.mean()))
    out["whitened, shrinkage 1 (fuse)"] = aff.mean_rows(X @ X.T + extras)
    In = aff.L.T
    norm = np.linalg.norm(In, axis=1, keepdims=True)
    co = (In @ In.T) / np.maximum(norm * norm.T, 1e-9)
    np.fill_diagonal(co, 0)
    out["co-cited 0.2 (fuse; links incl. TOC blocks)"] = aff.mean_rows(S1 + extras + 0.2 * co)
    srt = np.sort(np.where(np.eye(len(S1), dtype=bool), -np.inf, S1), axis=1)
    for k in (10, 20, 50):
        for w in (0.3, 0.5, 0.8):
            out[f"CSLS k {k}, weight {w} (fuse)"] = aff.mean_rows(S1 - w * srt[:, -k:].mean(1)[None, :] + extras)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.relevance_explore", description=__doc__.split("\n\n")[0])
    ap.add_argument("docs", help="documentation folder (installed HTML)")
    ap.add_argument("--split", choices=("tuning", "report"), default="tuning")
    ap.add_argument("--sessions", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args(argv)
    corpus = load_corpus(args.docs, name=_corpus_name(args.docs))
    rec = build_recommender(corpus, cache_path=args.cache)
    tune, report = split_chapters(corpus.members(), args.seed)
    chapters = tune if args.split == "tuning" else report
    sessions = make_sessions(corpus, chapters, args.sessions, args.seed + (0 if args.split == "tuning" else 100))
    aff = Affinities(rec, corpus)
    members = corpus.members()
    res = {
        name: {p: score_sessions(p, sessions[p], m, corpus, members) for p in PROTOCOLS}
        for name, m in methods(aff, rec).items()
    }
    base = res["session mean"]
    print(
        f"{corpus.name}, {args.split} chapters, {args.sessions} sessions per protocol; in brackets: / session mean "
        "(paired 95% CI)\n"
    )
    print("| method | " + " | ".join(f"{p} {m}" for p, m in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for name, by in res.items():
        cells = []
        for p, met in COLUMNS:
            v = float(np.mean(by[p][met]))
            if p.startswith("topical"):
                r = ratio_ci(by[p][met], base[p][met], args.seed)
                cells.append(f"{v:.3f} ({r[0]:.2f}× [{r[1]:.2f}, {r[2]:.2f}])")
            else:
                cells.append(f"{v:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
