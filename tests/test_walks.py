"""The semi-synthetic walk generator: its next-page law is a distribution over unvisited pages that follows
the links, popular entry pages come first, and visits are reproducible and of variable length."""

from __future__ import annotations

import pytest

from plugin import ConfigError
from plugin.models.walks import LinkGraph, WalkConfig, WalkGenerator

# Page "hub" is linked from everywhere; "a" links to b then c (b first in its text).
LINKS = {"hub": ["a"], "a": ["b", "c", "a", "nowhere"], "b": ["hub", "c"], "c": ["hub"], "d": ["hub"]}


def test_graph_drops_self_links_and_links_off_the_site():
    g = LinkGraph.from_mapping(LINKS)
    assert g.links[g.ids.index("a")] == (g.ids.index("b"), g.ids.index("c"))
    assert g.in_degree()[g.ids.index("hub")] == 3


def test_next_page_law():
    cfg = WalkConfig(drift=0.1, noise=0.1, position_decay=1.0, link_popularity=0.0)
    gen = WalkGenerator(LinkGraph.from_mapping(LINKS), cfg)
    ix = gen.graph.ids.index
    p = gen.next_distribution([ix("hub"), ix("a")])
    assert p.sum() == pytest.approx(1.0)
    assert p[ix("hub")] == 0 and p[ix("a")] == 0  # no revisits
    # b is the first link in a's text, c the second: weights 1 and 1/2 of the 0.8 that follows links
    assert p[ix("b")] > p[ix("c")] > p[ix("d")] > 0
    dead_end = gen.next_distribution([ix("a"), ix("c"), ix("hub")])  # hub's only link, a, is read: drift takes over
    assert dead_end.sum() == pytest.approx(1.0) and dead_end[ix("b")] > 0


def test_walks_are_seeded_start_on_popular_pages_and_vary_in_length():
    gen = WalkGenerator(LinkGraph.from_mapping(LINKS), WalkConfig(stop=0.5, max_length=4))
    walks = gen.walks(400, seed=7)
    assert walks == gen.walks(400, seed=7)
    starts = [w[0] for w in walks]
    assert starts.count("hub") > starts.count("d")  # Zipf by in-degree
    assert {len(w) for w in walks} == {2, 3, 4}
    assert all(len(set(w)) == len(w) for w in walks)


def test_bad_config_names_the_problem():
    with pytest.raises(ConfigError, match="drift"):
        WalkConfig(drift=1.5)
    with pytest.raises(ConfigError, match="following links"):
        WalkConfig(drift=0.6, noise=0.5)
    with pytest.raises(ConfigError, match="two pages"):
        WalkGenerator(LinkGraph.from_mapping({"x": []}))
