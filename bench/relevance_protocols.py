"""The relevance benchmark's pure pieces: chapter split, seeded session sampling, metrics, bootstrap CIs.

No model and no I/O here, so tests can pin every piece on tiny hand-made inputs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Session",
    "split_chapters",
    "topical_sessions",
    "drift_sessions",
    "walk_sessions",
    "query_sessions",
    "precision_at",
    "hit_at",
    "rank_metrics",
    "bootstrap_ci",
    "ratio_ci",
    "topical_ceiling",
    "drift_ceiling",
    "walk_ceiling",
]


@dataclass(frozen=True)
class Session:
    pages: tuple[str, ...]  # article ids read, oldest first
    chapter: str  # the chapter being read (drift: the newest one, B)
    earlier: str | None = None  # drift: the chapter read first (A)
    target: str | None = None  # next page (walks) or the page a query is about
    query: str | None = None


def split_chapters(members: Mapping[str, Sequence[str]], seed: int, min_size: int = 3) -> tuple[list[str], list[str]]:
    """Chapters with at least `min_size` pages, shuffled with `seed` and cut in half: (tuning, report)."""
    eligible = sorted(ch for ch, pages in members.items() if len(pages) >= min_size)
    random.Random(seed).shuffle(eligible)
    half = (len(eligible) + 1) // 2
    return sorted(eligible[:half]), sorted(eligible[half:])


def topical_sessions(
    members: Mapping[str, Sequence[str]], chapters: Sequence[str], length: int, n: int, rng: random.Random
) -> list[Session]:
    """n sessions of `length` distinct pages from one chapter; the chapter is drawn uniformly (so a huge chapter
    does not dominate), then its pages."""
    pool = [ch for ch in chapters if len(members[ch]) > length]
    if not pool:
        return []
    out = []
    for _ in range(n):
        ch = rng.choice(pool)
        out.append(Session(tuple(rng.sample(list(members[ch]), length)), ch))
    return out


def drift_sessions(
    members: Mapping[str, Sequence[str]], chapters: Sequence[str], n: int, rng: random.Random
) -> list[Session]:
    """2 pages of chapter A, then 1 page of another chapter B."""
    pool = [ch for ch in chapters if len(members[ch]) >= 3]
    if len(pool) < 2:
        return []
    out = []
    for _ in range(n):
        a, b = rng.sample(pool, 2)
        pages = tuple(rng.sample(list(members[a]), 2)) + (rng.choice(list(members[b])),)
        out.append(Session(pages, b, earlier=a))
    return out


def walk_sessions(
    links: Mapping[str, Sequence[str]],
    chapter: Mapping[str, str],
    chapters: Sequence[str],
    lengths: Sequence[int],
    n: int,
    rng: random.Random,
) -> list[Session]:
    """Semi-synthetic visitors: walks along in-text links, each next page drawn uniformly from the current page's
    links not yet visited. A walk starts on a page of the given chapters (the split), reads `length` pages and the
    page opened next is the target. Walks that dead-end are dropped and redrawn."""
    wanted = set(chapters)
    starts = sorted(p for p, out in links.items() if out and chapter.get(p) in wanted)
    if not starts:
        return []
    out: list[Session] = []
    tries = 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        length = rng.choice(list(lengths))
        walk = [rng.choice(starts)]
        while len(walk) <= length:
            nxt = [p for p in links.get(walk[-1], ()) if p not in walk]
            if not nxt:
                break
            walk.append(rng.choice(nxt))
        if len(walk) == length + 1:
            out.append(Session(tuple(walk[:-1]), chapter.get(walk[0], ""), target=walk[-1]))
    return out


def query_sessions(
    members: Mapping[str, Sequence[str]],
    chapters: Sequence[str],
    headings: Callable[[str], Sequence[str]],
    titles: Mapping[str, str],
    n: int,
    rng: random.Random,
) -> list[Session]:
    """2 pages of a chapter plus a question about a third page T of the same chapter: one of T's section headings
    (never its title, and never a heading that merely repeats the title), as a visitor would type it."""
    cands: dict[str, list[tuple[str, list[str]]]] = {}
    for ch in chapters:
        if len(members[ch]) < 3:
            continue
        for p in members[ch]:
            t = titles.get(p, "").lower()
            hs = [h for h in headings(p) if h.lower() not in t and t not in h.lower()]
            if hs:
                cands.setdefault(ch, []).append((p, hs))
    pool = sorted(cands)
    out = []
    for _ in range(n if pool else 0):
        ch = rng.choice(pool)
        target, hs = rng.choice(cands[ch])
        read = rng.sample([p for p in members[ch] if p != target], 2)
        out.append(Session(tuple(read), ch, target=target, query=rng.choice(hs).lower()))
    return out


# ---------------------------------------------------------------- metrics


def precision_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Share of the k slots holding a relevant article; an empty slot (fewer than k suggestions) counts as a miss."""
    return sum(1 for a in ranked[:k] if a in relevant) / k


def hit_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return float(any(a in relevant for a in ranked[:k]))


def rank_metrics(ranked: Sequence[str], target: str, k: int) -> tuple[float, float]:
    """(HR@k, MRR@k) of one target."""
    for i, a in enumerate(ranked[:k]):
        if a == target:
            return 1.0, 1.0 / (i + 1)
    return 0.0, 0.0


def bootstrap_ci(values: Sequence[float], seed: int = 0, n_boot: int = 1000) -> tuple[float, float, float]:
    """(mean, 2.5th, 97.5th percentile of the bootstrap means) over sessions."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(1)  # (n_boot,)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(v.mean()), float(lo), float(hi)


def ratio_ci(a: Sequence[float], b: Sequence[float], seed: int = 0, n_boot: int = 1000) -> tuple[float, float, float]:
    """mean(a)/mean(b) with a paired bootstrap 95% CI (the same resampled sessions for both)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"ratio_ci needs two equal, non-empty lists, got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    ratios = x[idx].mean(1) / np.maximum(y[idx].mean(1), 1e-12)
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(x.mean() / max(y.mean(), 1e-12)), float(lo), float(hi)


def topical_ceiling(session: Session, members: Mapping[str, Sequence[str]], k: int) -> float:
    """Best P@k given the chapter's size: every unread page of the chapter, up to k."""
    unread = len(set(members[session.chapter]) - set(session.pages))
    return min(k, unread) / k


def drift_ceiling(session: Session, members: Mapping[str, Sequence[str]], never: Set[str], k: int) -> dict[str, float]:
    """Best shares on a drift session: every slot in B ("in B (newest)"), or one slot kept for A and the rest in B
    ("in B, one slot for A"), counting only pages the plugin may suggest (unread, not in `never`: hub pages)."""
    b = len(set(members[session.chapter]) - set(session.pages) - never)
    return {"in B (newest)": min(k, b) / k, "in B, one slot for A": min(k - 1, b) / k}


def walk_ceiling(session: Session, links: Mapping[str, Sequence[str]], k: int) -> float:
    """Best expected HR@k on a walk knowing the link graph: the walker picks uniformly among m unvisited links."""
    m = len([p for p in links.get(session.pages[-1], ()) if p not in session.pages])
    return min(k, m) / m if m else 0.0
