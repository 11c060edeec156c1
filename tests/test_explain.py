"""explain.drivers against the straightforward numpy version it replaced (known answers on random sessions)."""

from __future__ import annotations

import numpy as np

from plugin import explain


def _reference(attention, items, article_vec, labels):
    if len(labels) == 0:
        return []
    contrib = attention * np.maximum(items @ article_vec, 0.0)
    top = float(contrib.max())
    if top <= 0:
        return []
    out = []
    for j in np.argsort(-contrib, kind="stable"):
        if contrib[j] < 0.35 * top or len(out) == 2:
            break
        if labels[j] not in out:
            out.append(labels[j])
    return out


def test_drivers_equal_the_numpy_reference_including_ties_and_the_threshold():
    rng = np.random.default_rng(1)
    seen = set()
    for t in range(3000):
        n = int(rng.integers(1, 8))
        items = rng.standard_normal((n, 8)).astype(np.float32)
        vec = rng.standard_normal(8).astype(np.float32)
        attention = rng.random(n).astype(np.float32)
        if t % 3 == 0:  # every page alike: ties everywhere, broken by position
            attention[:] = attention[0]
            items[:] = items[0]
        if t % 5 == 0:  # one page at exactly 0.35 of another's contribution
            items[-1] = items[0] * np.float32(0.35)
            attention[-1] = attention[0]
        labels = [f"page {int(x)}" for x in rng.integers(0, 4, n)]
        got = explain.drivers(attention, items, vec, labels)
        assert got == _reference(attention, items, vec, labels)
        seen.add(len(got))
    assert seen == {0, 1, 2}  # the cases: no driver, one, two


def test_drivers_known_answer():
    items = np.eye(3, dtype=np.float32)
    attention = np.array([0.2, 0.5, 0.3], dtype=np.float32)
    vec = np.array([1.0, 0.1, 1.0], dtype=np.float32)  # contributions 0.2, 0.05, 0.3
    assert explain.drivers(attention, items, vec, ["a", "b", "c"]) == ["c", "a"]
    assert explain.drivers(attention, items, -vec, ["a", "b", "c"]) == []
