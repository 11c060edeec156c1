"""Semi-synthetic visitor sessions: random walks along a site's in-text links (no real visitor made them).

Real click logs of a documentation site are rarely public, but its link graph is: a reader mostly moves by
the links in the text. A walk here is one visit, built so that models can be told apart:

* **popular entry pages**: a visit starts on page p with probability proportional to 1 / rank(p)^s (Zipf,
  s = `entry_zipf`), pages ranked by in-degree, so the pages the site links to most are where visits start;
* **link choice**: from page c the next page is one of c's unvisited out-links j, with weight
  (in-degree(j) + 1)^`link_popularity` / (position of the link in c's text + 1)^`position_decay`
  (popular targets and early links are clicked more);
* **topic drift**: with probability `drift` a step jumps instead to a page drawn like an entry page
  (the reader changes subject mid-visit);
* **noise clicks**: with probability `noise` a step goes to any unvisited page, uniformly;
* **variable length**: after the first `min_length` pages a visit ends after each page with probability
  `stop` (a geometric tail, mean min_length + (1 - stop) / stop), at most `max_length` pages.

Pages are not revisited within a visit (a reader going back does not load a new page). With no unvisited
out-link left, the link share of the step goes to drift. `next_distribution` is the exact law of the next
page given the visit so far: ranking by it is the walks' own ceiling for next-page prediction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["LinkGraph", "WalkConfig", "WalkGenerator"]


@dataclass(frozen=True)
class WalkConfig:
    entry_zipf: float = 1.0
    link_popularity: float = 0.5
    position_decay: float = 0.5
    drift: float = 0.1
    noise: float = 0.05
    stop: float = 0.3
    min_length: int = 2
    max_length: int = 20

    def __post_init__(self) -> None:
        for name in ("drift", "noise", "stop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"WalkConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.drift + self.noise >= 1.0:
            raise ConfigError("WalkConfig.drift + noise must leave some probability to following links (< 1)")
        if not 1 <= self.min_length <= self.max_length:
            raise ConfigError(
                f"WalkConfig needs 1 <= min_length <= max_length, got {self.min_length}, {self.max_length}"
            )


@dataclass(frozen=True)
class LinkGraph:
    """Pages and their in-text links: links[i] are page i's out-links in the order they appear in its text."""

    ids: tuple[str, ...]
    links: tuple[tuple[int, ...], ...]

    @classmethod
    def from_mapping(cls, links: Mapping[str, Sequence[str]]) -> LinkGraph:
        """{page id: linked page ids in text order}; links to pages outside the mapping, self-links and repeats
        are dropped."""
        ids = tuple(links)
        pos = {p: i for i, p in enumerate(ids)}
        out = []
        for p in ids:
            seen: dict[int, None] = {}
            for q in links[p]:
                j = pos.get(q)
                if j is not None and q != p:
                    seen.setdefault(j, None)
            out.append(tuple(seen))
        return cls(ids, tuple(out))

    def in_degree(self) -> np.ndarray:
        deg = np.zeros(len(self.ids), dtype=np.int64)  # (N,)
        for out in self.links:
            deg[list(out)] += 1
        return deg


class WalkGenerator:
    def __init__(self, graph: LinkGraph, config: WalkConfig | None = None) -> None:
        if len(graph.ids) < 2:
            raise ConfigError("a link graph needs at least two pages to walk on")
        self.graph = graph
        self.config = cfg = config or WalkConfig()
        n = len(graph.ids)
        deg = graph.in_degree()
        rank = np.empty(n, dtype=np.float64)  # (N,) 1 = most linked-to
        rank[np.argsort(-deg, kind="stable")] = np.arange(1, n + 1)
        self.entry = rank**-cfg.entry_zipf  # (N,) unnormalised
        self.entry /= self.entry.sum()
        self._link_weights = [
            (deg[list(out)] + 1.0) ** cfg.link_popularity / (np.arange(len(out)) + 1.0) ** cfg.position_decay
            for out in graph.links
        ]

    def next_distribution(self, prefix: Sequence[int]) -> np.ndarray:
        """(N,) probability of each page being the next one after the visit `prefix` (page indices, oldest
        first); 0 on pages already visited."""
        cfg = self.config
        n = len(self.graph.ids)
        open_ = np.ones(n, dtype=bool)  # (N,) not yet visited
        open_[list(prefix)] = False
        if not open_.any():
            raise ConfigError("the visit has seen every page; there is no next page")
        p = np.zeros(n, dtype=np.float64)  # (N,)
        out = np.asarray(self.graph.links[prefix[-1]], dtype=np.int64)
        w = self._link_weights[prefix[-1]] * open_[out] if out.size else np.zeros(0)
        follow = 1.0 - cfg.drift - cfg.noise
        drift = cfg.drift
        if w.sum() > 0:
            np.add.at(p, out, follow * w / w.sum())
        else:
            drift += follow  # a dead end: the reader goes elsewhere
        entry = self.entry * open_
        p += drift * entry / entry.sum()
        p += cfg.noise * open_ / open_.sum()
        return p

    def walk(self, rng: np.random.Generator) -> list[int]:
        cfg = self.config
        n = len(self.graph.ids)
        visit = [int(rng.choice(n, p=self.entry))]
        while len(visit) < min(cfg.max_length, n):
            if len(visit) >= cfg.min_length and rng.random() < cfg.stop:
                break
            visit.append(int(rng.choice(n, p=self.next_distribution(visit))))
        return visit

    def walks(self, count: int, seed: int = 0) -> list[list[str]]:
        """`count` visits as page-id lists (seeded, reproducible)."""
        rng = np.random.default_rng(seed)
        return [[self.graph.ids[i] for i in self.walk(rng)] for _ in range(count)]
