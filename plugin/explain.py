"""Why a suggestion was made: the session pages that drove it, and the one-line reason shown beside it.

The recommender asks this after ranking, per suggestion: which read pages (weighted by the intent's attention)
are most similar to the suggested article, and how to say that to the visitor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["drivers", "reason"]


def drivers(attention: np.ndarray, items: np.ndarray, article_vec: np.ndarray, labels: Sequence[str]) -> list[str]:
    """Session pages that drove this suggestion: attention weight times their similarity to it."""
    if len(labels) == 0:
        return []
    contrib = attention * np.maximum(items @ article_vec, 0.0)  # (L,) float32
    c = contrib.tolist()  # a session has a handful of pages: Python over them costs less than numpy's calls
    top = max(c)
    if top <= 0:
        return []
    # numpy compared the float32 contributions with 0.35 * top rounded to float32: the same threshold here
    floor = float(np.float32(0.35 * top))
    out: list[str] = []
    # best first; equal ones in session order (a reverse sort keeps ties in order), as argsort(-contrib) had them
    for j in sorted(range(len(c)), key=c.__getitem__, reverse=True):
        if c[j] < floor or len(out) == 2:
            break
        if labels[j] not in out:
            out.append(labels[j])
    return out


def reason(drivers: Sequence[str], query: str | None) -> str:
    read = [d for d in drivers if not d.startswith("your search")]
    searched = [d for d in drivers if d.startswith("your search")]
    parts = []
    if read:
        parts.append("because you read " + " and ".join(read))
    if searched:
        parts.append(("and " if parts else "because of ") + searched[0])
    if not parts:
        if not query:
            return "related to this session"
        short = " ".join(query.split())
        short = short if len(short) <= 48 else short[:47].rsplit(" ", 1)[0] + "…"
        return f"matches your question “{short}”"
    return " ".join(parts)
