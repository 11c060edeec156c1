"""Indexing time of a documentation folder, 1 thread, same run, same articles.

Default: head-only embedding (the text cut at the model's window, as before issue 14) against whole-article
embedding (windows pooled); then a re-index of the unchanged articles, which must encode nothing.

    python bench/index_time.py /usr/share/doc/python-django-doc/html --include 'topics/*'

`--backends`: the plugin's indexing path (`CachedEncoder.encode_documents`: split into windows, embed, pool) on
each encoder backend, against a raw `SentenceTransformer.encode` of exactly the windows that path embeds, on a
seeded sample of `--pages` articles; the ratio is raw seconds / path seconds, so > 1 is faster than raw.

    python bench/index_time.py /usr/share/doc/python-django-doc/html --backends torch,onnx,onnx-int8 --pages 60
"""

from __future__ import annotations

import argparse
import random
import time

import faiss
import torch

from plugin.chunking import split_windows, spread_windows
from plugin.encoder import ENCODER_BACKENDS, CachedEncoder, SentenceTransformerEncoder, sentence_encoder
from plugin.ingest import scan_folder
from plugin.onnx_encoder import cpu_flags


def compare_backends(texts: list[str], titles: list[str], backends: list[str]) -> None:
    """Seconds of the raw encoder on the windows, then of the indexing path per backend, same texts."""
    flags = cpu_flags()
    print(
        f"CPU: avx512_vnni={'avx512_vnni' in flags} avx512_bf16={'avx512_bf16' in flags} "
        f"amx={'amx_tile' in flags} (detected from /proc/cpuinfo); 1 thread everywhere"
    )
    torch_enc = SentenceTransformerEncoder()
    windows = []
    for t, h in zip(texts, titles):
        ws, _ = split_windows(t, torch_enc.window_tokens, torch_enc.count_tokens, h)
        windows += [ws[j] for j in spread_windows(len(ws), CachedEncoder(torch_enc).max_windows)]
    print(f"{len(texts)} articles -> {len(windows)} windows embedded")
    raw = torch_enc._model  # the bare SentenceTransformer: what "raw encode" means
    raw.encode(windows[:8], batch_size=64)  # warm-up
    t0 = time.perf_counter()
    raw.encode(windows, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    t_raw = time.perf_counter() - t0
    print(
        f"| path | seconds | windows/s | raw encode / path |\n|---|---|---|---|\n"
        f"| raw SentenceTransformer.encode (torch, batch 64) | {t_raw:.1f} | {len(windows) / t_raw:.1f} | 1.00 |",
        flush=True,
    )
    for backend in backends:
        enc = torch_enc if backend == "torch" else sentence_encoder(backend, threads=1)
        enc.encode(windows[:8])  # warm-up (and, for ONNX, the one-time export before the clock starts)
        t0 = time.perf_counter()
        CachedEncoder(enc).encode_documents(texts, titles)
        dt = time.perf_counter() - t0
        print(
            f"| indexing path, backend {backend} | {dt:.1f} | {len(windows) / dt:.1f} | {t_raw / dt:.2f} |", flush=True
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--include", action="append", default=[])
    p.add_argument("--exclude", action="append", default=[])
    p.add_argument("--backends", help=f"comma-separated, from {', '.join(b for b in ENCODER_BACKENDS if b != 'auto')}")
    p.add_argument("--pages", type=int, default=60, help="articles sampled (seed 0) for --backends")
    args = p.parse_args()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    scan = scan_folder(args.folder, include=args.include, exclude=args.exclude)
    arts = scan.articles
    print(scan.summary())
    if args.backends:
        sample = random.Random(0).sample(arts, min(args.pages, len(arts)))
        compare_backends([a.embed_text() for a in sample], [a.title for a in sample], args.backends.split(","))
        return
    enc = SentenceTransformerEncoder()
    texts, titles = [a.embed_text() for a in arts], [a.title for a in arts]
    enc.encode(texts[:8])  # warm-up
    t0 = time.perf_counter()
    windows = [len(split_windows(t, enc.window_tokens, enc.count_tokens, h)[0]) for t, h in zip(texts, titles)]
    t_split = time.perf_counter() - t0
    tokens = sum(enc.count_tokens(texts))
    print(
        f"{len(arts)} articles, {tokens} word pieces, {sum(windows)} windows "
        f"({sum(w > 1 for w in windows)} articles longer than one window; splitting took {t_split:.1f}s)"
    )

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
    print(
        f"head only (before): {t_head:.1f}s   whole articles (after): {t_whole:.1f}s ({t_whole / t_head:.1f}x)   "
        f"re-index unchanged: {t_again:.2f}s, {whole.misses - before} encoded"
    )


if __name__ == "__main__":
    main()
