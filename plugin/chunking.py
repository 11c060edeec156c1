"""Long texts -> windows the encoder can see whole, and window vectors -> one article vector.

MiniLM reads 256 word pieces; a documentation page runs to thousands. Encoding only the head of a page loses
everything below its first screen, so articles are split at block boundaries (the extractor puts each paragraph,
heading, list item and code block on its own line) into windows that fit, each window after the first repeats
the article's title so it stays anchored to its topic, and the article vector is the token-weighted mean of the
window vectors, L2-normalised again.

A very long page (a reference page of hundreds of windows) would cost hundreds of encoder passes for one vector;
`spread_windows` keeps at most MAX_WINDOWS of them, spread evenly from the first to the last, so indexing cost
grows with the number of pages rather than with their length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .errors import ConfigError, DimensionMismatchError

__all__ = ["MAX_WINDOWS", "split_windows", "spread_windows", "pool_windows"]

# Windows pooled per article at most; None pools them all. 16 scored within the bootstrap CIs of all windows on
# every protocol of the relevance benchmark's tuning chapters and encodes 40% fewer windows on Django's manual
# (3,243 of 5,408); 8 saved more but lost 0.011 topical P@5. See BENCHMARKS.md, "Relevance on real documentation".
MAX_WINDOWS: int | None = 16

Measure = Callable[[Sequence[str]], list[int]]


def split_windows(text: str, budget: int, measure: Measure, header: str = "") -> tuple[list[str], list[int]]:
    """Consecutive lines of `text` packed greedily into windows of at most `budget` units (as counted by
    `measure`: tokens for a real model), and each window's size. Windows after the first start with `header`.
    A line longer than a window is cut between words. Text that fits in one window comes back as it is."""
    if budget < 8:
        raise ConfigError(f"a window must hold at least 8 units, got budget={budget}")
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if not lines:
        return [text], [1]
    sizes = measure(lines)
    total = sum(sizes) + len(lines) - 1  # a line break is about one unit
    if total <= budget:
        return [text], [total]
    head = f"{header}\n" if header else ""
    room = budget - (measure([head])[0] if head else 0)
    room = max(room, budget // 2)  # a huge title must not leave windows with no room for text
    pieces: list[tuple[str, int]] = []
    for line, size in zip(lines, sizes):
        if size <= room:
            pieces.append((line, size))
            continue
        words = line.split(" ")
        n = math.ceil(size / room)
        step = math.ceil(len(words) / n)
        for i in range(0, len(words), step):
            part = " ".join(words[i : i + step])
            pieces.append((part, math.ceil(size * len(part) / max(len(line), 1))))
    windows: list[str] = []
    used: list[int] = []
    cur: list[str] = []
    n = 0
    for part, size in pieces:
        if cur and n + size > (budget if not windows else room):
            windows.append("\n".join(cur))
            used.append(n)
            cur, n = [], 0
        cur.append(part)
        n += size + 1
    if cur:
        windows.append("\n".join(cur))
        used.append(n)
    return [windows[0]] + [head + w for w in windows[1:]], used


def spread_windows(n: int, cap: int | None) -> list[int]:
    """Indices of at most `cap` of `n` windows: the first, the last and evenly spaced between (all when n <= cap
    or cap is None). The first window holds the title and introduction; the rest sample the body evenly."""
    if cap is None or n <= cap:
        return list(range(n))
    if cap < 1:
        raise ConfigError(f"max windows must be at least 1 or None (all), got {cap}")
    if cap == 1:
        return [0]
    # the step (n-1)/(cap-1) exceeds 1 here, so the rounded positions are distinct
    return [round(i * (n - 1) / (cap - 1)) for i in range(cap)]


def pool_windows(vectors: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """One unit vector from a document's window vectors (n, d): their weighted mean, re-normalised."""
    w = np.asarray(weights, dtype=np.float32)  # (n,)
    if vectors.ndim != 2 or len(w) != len(vectors):
        raise DimensionMismatchError(f"expected (n, d) vectors and n weights, got {vectors.shape} and {len(w)}")
    mean = (w[:, None] * vectors).sum(axis=0)  # (d,) the scale goes with the normalisation
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)  # (d,)
