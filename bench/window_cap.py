"""What capping the windows pooled per article costs in relevance, and what it saves in encoder passes.

    python -m bench.window_cap [DOCS_DIR ...] [--caps 8 16] [--sessions 200] [--json out.json]
    python -m bench.window_cap demo DOCS_DIR ... --count-only --caps 8 16    # windows each cap encodes

Every window of every article is encoded once (per-window cache, runs/relevance-cache/windows.npz); each cap's
article vectors are pooled from the windows `plugin.chunking.spread_windows` keeps, written into the relevance
benchmark's pooled cache under the plugin's own keys (so `bench.relevance` then runs without encoding), and the
plugin's default settings are scored on the TUNING chapters only (bench/relevance.py's protocols and sessions),
with paired bootstrap CIs of each cap's difference from pooling all windows. Encoder cost is proportional to the
windows encoded; the encoding rate measured in this run converts windows to seconds.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from plugin import CachedEncoder, EmbeddingCache, SentenceTransformerEncoder, load_articles
from plugin.chunking import pool_windows, split_windows, spread_windows
from plugin.demo_kb import stdlib_articles
from plugin.encoder import document_key

from .docs_corpus import load_corpus
from .relevance import DEFAULT_DOCS, GRID_COLUMNS, _corpus_name, evaluate, make_sessions, plugin_method, summarise
from .relevance_index import DEFAULT_CACHE, build_recommender
from .relevance_protocols import bootstrap_ci, split_chapters

logger = logging.getLogger("bench.window_cap")

WINDOW_CACHE = DEFAULT_CACHE.with_name("windows.npz")
_BATCH = 256  # windows per encoder call: the bar moves and the cache is saved as it goes


def _label(cap: int | None) -> str:
    return "all windows" if cap is None else f"max {cap} windows"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.window_cap", description=__doc__.split("\n\n")[0])
    ap.add_argument("docs", nargs="*", default=list(DEFAULT_DOCS))
    ap.add_argument("--caps", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--sessions", type=int, default=200, help="sessions per protocol (tuning chapters)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="the relevance benchmark's pooled cache")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--window-cache", type=Path, default=WINDOW_CACHE, help="per-window embedding cache (.npz)")
    ap.add_argument(
        "--count-only",
        action="store_true",
        help="only count the windows each cap keeps (no encoding); 'demo' as a folder is the demo KB",
    )
    ap.add_argument("--capped-only", action="store_true", help="encode only the windows the caps keep (no baseline)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)

    caps: list[int | None] = [None, *sorted(set(args.caps))]
    inner = SentenceTransformerEncoder()
    wcache = (
        EmbeddingCache.load(args.window_cache, inner.dim, inner.name)
        if args.window_cache.exists()
        else EmbeddingCache(inner.dim, inner.name)
    )
    wenc = CachedEncoder(inner, wcache)
    pooled = (
        EmbeddingCache.load(args.cache, inner.dim, inner.name)
        if args.cache.exists()
        else EmbeddingCache(inner.dim, inner.name)
    )
    window = inner.window_tokens
    report: dict = {
        "command": "python -m bench.window_cap " + " ".join(sys.argv[1:] if argv is None else argv),
        "corpora": {},
    }
    for folder in args.docs:
        if args.count_only:
            arts = stdlib_articles(progress=False) if folder == "demo" else load_articles(folder)
            splits = [split_windows(a.embed_text(), window, inner.count_tokens, a.title) for a in arts]
            n = [len(ws) for ws, _ in splits]
            kept = {_label(c): sum(len(spread_windows(k, c)) for k in n) for c in caps}
            print(
                f"{folder}: {len(arts)} articles, windows per article median {np.median(n):.0f}, p90 "
                f"{np.percentile(n, 90):.0f}, max {max(n)}; windows encoded: {kept}",
                flush=True,
            )
            continue
        corpus = load_corpus(folder, name=_corpus_name(folder))
        arts = corpus.articles
        splits = [split_windows(a.embed_text(), window, inner.count_tokens, a.title) for a in arts]
        offsets = np.cumsum([0] + [len(ws) for ws, _ in splits])
        flat = [w for ws, _ in splits for w in ws]
        # the windows some cap keeps first, so an interrupted run (or --capped-only) still has every cap's vectors
        capped = sorted(
            {
                int(offsets[i]) + j
                for i, (ws, _) in enumerate(splits)
                for cap in caps[1:]
                for j in spread_windows(len(ws), cap)
            }
        )
        rest = sorted(set(range(len(flat))) - set(capped))
        t0, misses0 = time.perf_counter(), wenc.misses
        vecs = np.full((len(flat), inner.dim), np.nan, np.float32)  # (W, D)
        for phase, rows in (("capped", capped), ("rest", [] if args.capped_only else rest)):
            for start in tqdm(range(0, len(rows), _BATCH), desc=f"{corpus.name} windows ({phase})", unit="batch"):
                part = rows[start : start + _BATCH]
                vecs[part] = wenc.encode([flat[i] for i in part])
                if (start // _BATCH) % 4 == 3:
                    wcache.save(args.window_cache)
            wcache.save(args.window_cache)
        encoded = wenc.misses - misses0
        secs = time.perf_counter() - t0
        used = caps[1:] if args.capped_only else caps
        counts: dict = {}
        per_article = []
        for i, ((ws, sizes), a) in enumerate(zip(splits, arts)):
            v = vecs[offsets[i] : offsets[i + 1]]  # (n, D)
            per_article.append(len(ws))
            for cap in used:
                keep = spread_windows(len(ws), cap)
                counts[cap] = counts.get(cap, 0) + len(keep)
                pooled.put(
                    document_key(inner.name, window, cap, a.title, a.embed_text()),
                    pool_windows(v[keep], [sizes[j] for j in keep]),
                )
        pooled.save(args.cache)
        rate = encoded / secs if encoded else None
        n = np.array(per_article)
        entry: dict = {
            "articles": len(arts),
            "windows": counts,
            "encoded_now": encoded,
            "seconds": round(secs, 1),
            "windows_per_s": rate,
            "windows_per_article": {
                "median": float(np.median(n)),
                "p90": float(np.percentile(n, 90)),
                "max": int(n.max()),
            },
        }
        tune_ch, _ = split_chapters(corpus.members(), args.seed)
        sessions = make_sessions(corpus, tune_ch, args.sessions, args.seed)
        methods = {}
        for cap in used:
            rec = build_recommender(corpus, cache_path=args.cache, encoder=inner, max_windows=cap, progress=False)
            methods[_label(cap)] = plugin_method(rec)
        res = evaluate(corpus, sessions, methods)
        summary = summarise(res, args.seed)
        entry["results"] = summary
        diffs: dict = {}
        for cap in [c for c in used if c is not None] if None in used else []:
            for proto, met in GRID_COLUMNS:
                a = np.array(res[proto][_label(cap)][met])
                b = np.array(res[proto][_label(None)][met])
                diffs[f"{_label(cap)} {proto} {met}"] = bootstrap_ci(list(a - b), args.seed)
        entry["diff_vs_all"] = diffs
        report["corpora"][corpus.name] = entry
        print(_table(corpus.name, entry, used, summary, diffs, len(tune_ch)), flush=True)
        if args.json:  # after each corpus: a long run stopped half way keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    return 0


def _table(name: str, entry: dict, caps: list[int | None], summary: dict, diffs: dict, n_chapters: int) -> str:
    rate = entry["windows_per_s"]
    wpa = entry["windows_per_article"]
    lines = [
        f"#### {name}: {entry['articles']} articles, windows per article median {wpa['median']:.0f}, "
        f"p90 {wpa['p90']:.0f}, max {wpa['max']}; tuning chapters ({n_chapters})",
        "",
    ]
    head = " | ".join(f"{p} {m}" for p, m in GRID_COLUMNS)
    lines += [f"| pooling | windows encoded | est. encode s | {head} |", "|---|---|---|" + "---|" * len(GRID_COLUMNS)]
    for cap in caps:
        cells = []
        for proto, met in GRID_COLUMNS:
            m = summary[proto][_label(cap)][met]["mean"]
            if f"{_label(cap)} {proto} {met}" not in diffs:
                cells.append(f"{m:.3f}")
            else:
                d, lo, hi = diffs[f"{_label(cap)} {proto} {met}"]
                cells.append(f"{m:.3f} ({d:+.3f} [{lo:+.3f}, {hi:+.3f}])")
        est = f"{entry['windows'][cap] / rate:.0f}" if rate else "?"
        lines.append(f"| {_label(cap)} | {entry['windows'][cap]} | {est} | " + " | ".join(cells) + " |")
    rate_txt = f"{rate:.1f} windows/s" if rate else "all windows were cached"
    lines += [
        "",
        f"(encoding rate this run: {rate_txt}; in brackets: the paired difference from all windows, 95% bootstrap CI)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
