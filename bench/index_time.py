"""Indexing time of a documentation folder: head-only embedding (the text cut at the model's window, as before
issue 14) against whole-article embedding (windows pooled), same run, same articles, 1 thread; then a re-index
of the unchanged articles, which must encode nothing.

    python bench/index_time.py /usr/share/doc/python-django-doc/html --include 'topics/*'
"""

from __future__ import annotations

import argparse
import time

import faiss
import torch

from plugin.chunking import split_windows
from plugin.encoder import CachedEncoder, SentenceTransformerEncoder
from plugin.ingest import scan_folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--include", action="append", default=[])
    p.add_argument("--exclude", action="append", default=[])
    args = p.parse_args()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    scan = scan_folder(args.folder, include=args.include, exclude=args.exclude)
    arts = scan.articles
    print(scan.summary())
    enc = SentenceTransformerEncoder()
    texts, titles = [a.embed_text() for a in arts], [a.title for a in arts]
    enc.encode(texts[:8])  # warm-up
    t0 = time.perf_counter()
    windows = [len(split_windows(t, enc.window_tokens, enc.count_tokens, h)[0]) for t, h in zip(texts, titles)]
    t_split = time.perf_counter() - t0
    tokens = sum(enc.count_tokens(texts))
    print(f"{len(arts)} articles, {tokens} word pieces, {sum(windows)} windows "
          f"({sum(w > 1 for w in windows)} articles longer than one window; splitting took {t_split:.1f}s)")

    t0 = time.perf_counter()
    CachedEncoder(enc).encode(texts)
    t_head = time.perf_counter() - t0
    whole = CachedEncoder(enc)
    t0 = time.perf_counter()
    whole.encode_documents(texts, titles)
    t_whole = time.perf_counter() - t0
    before = whole.misses
    t0 = time.perf_counter()
    whole.encode_documents(texts, titles)
    t_again = time.perf_counter() - t0
    print(f"head only (before): {t_head:.1f}s   whole articles (after): {t_whole:.1f}s ({t_whole / t_head:.1f}x)   "
          f"re-index unchanged: {t_again:.2f}s, {whole.misses - before} encoded")


if __name__ == "__main__":
    main()
