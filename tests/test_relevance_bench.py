"""The relevance benchmark's pure pieces: TOC parsing on small synthetic sites, sampling, metrics, CIs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench import relevance_protocols as rp
from bench.docs_corpus import chapters_of, content_links, load_corpus, read_toc, section_headings

NAV = '<div class="navheader"><a href="index.html">Home</a> <a href="{nxt}">Next</a></div>'


def _page(title: str, body: str, nav_next: str = "index.html") -> str:
    return (
        f"<html><head><title>{title}</title></head><body>{NAV.format(nxt=nav_next)}"
        f"<div class='chapter'><h1>{title}</h1>{body}</div>"
        f"<div class='navfooter'><a href='{nav_next}'>Next</a></div></body></html>"
    )


def _docbook_site(root: Path) -> None:
    """index -> part I (hub) -> chapters 1, 2 (each with sections); a preface of leaf sections."""
    files = {
        "index.html": _page(
            "Manual",
            "<div class='toc'><dl class='toc'>"
            "<dt><a href='preface.html'>Preface</a></dt><dd><dl>"
            "<dt><a href='pre-a.html'>1. What</a></dt><dt><a href='pre-b.html'>2. History</a></dt>"
            "</dl></dd>"
            "<dt><a href='part1.html'>I. Part</a></dt><dd><dl>"
            "<dt><a href='ch1.html'>1. Alpha</a></dt><dt><a href='ch2.html'>2. Beta</a></dt>"
            "</dl></dd></dl></div>",
        ),
        "preface.html": _page("Preface", "<p>About.</p>"),
        "pre-a.html": _page("What", "<p>what is it</p>"),
        "pre-b.html": _page("History", "<p>history</p>"),
        "part1.html": _page(
            "Part",
            "<div class='toc'><dl><dt><a href='ch1.html'>1. Alpha</a></dt>"
            "<dt><a href='ch2.html'>2. Beta</a></dt></dl></div>",
        ),
        "ch1.html": _page(
            "Alpha",
            "<div class='toc'><dl><dt><a href='ch1-s1.html'>1.1 One</a></dt><dd><dl>"
            "<dt><a href='ch1-s1.html#x'>1.1.1 anchor</a></dt></dl></dd>"
            "<dt><a href='ch1-s2.html'>1.2 Two</a></dt></dl></div><p>Alpha intro.</p>",
        ),
        "ch1-s1.html": _page(
            "One",
            "<p>See <a href='ch2-s1.html#q'>beta one</a> and "
            "<a href='ch1-s2.html'>two</a>.</p><h2>1.1.1. Check Constraints</h2><h2>Note</h2>",
            nav_next="ch1-s2.html",
        ),
        "ch1-s2.html": _page("Two", "<p>text <a href='http://example.com/x.html'>ext</a></p>"),
        "ch2.html": _page("Beta", "<div class='toc'><dl><dt><a href='ch2-s1.html'>2.1 Beta one</a></dt></dl></div>"),
        "ch2-s1.html": _page("Beta one", "<p>back to <a href='ch1-s1.html'>one</a></p>"),
    }
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")


def _sphinx_site(root: Path) -> None:
    """contents -> topics/index (hub: children with children) -> topics/db/index (chapter) -> pages."""
    (root / "topics" / "db").mkdir(parents=True)
    toc = (
        "<div class='toctree-wrapper compound'><ul>"
        "<li class='toctree-l1'><a href='topics/index.html'>Using</a><ul>"
        "<li class='toctree-l2'><a href='topics/db/index.html'>Databases</a><ul>"
        "<li class='toctree-l3'><a href='topics/db/models.html'>Models</a></li>"
        "<li class='toctree-l3'><a href='topics/db/models.html#fields'>Fields</a></li>"
        "</ul></li><li class='toctree-l2'><a href='topics/install.html'>Install</a></li></ul></li>"
        "<li class='toctree-l1'><a href='faq.html'>FAQ</a></li></ul></div>"
    )
    (root / "contents.html").write_text(_page("Contents", toc), encoding="utf-8")
    (root / "faq.html").write_text(_page("FAQ", "<p>questions</p>"), encoding="utf-8")
    (root / "topics" / "index.html").write_text(_page("Using", "<p>x</p>"), encoding="utf-8")
    (root / "topics" / "install.html").write_text(_page("Install", "<p>pip</p>"), encoding="utf-8")
    (root / "topics" / "db" / "index.html").write_text(
        _page(
            "Databases",
            "<div class='toctree-wrapper'><ul><li><a href='models.html'>Models</a></li>"
            "<li><a href='queries.html'>Queries</a></li></ul></div>",
        ),
        encoding="utf-8",
    )
    (root / "topics" / "db" / "models.html").write_text(
        _page("Models", "<p>see <a href='queries.html?highlight=x'>queries</a> <a href='../install.html'>i</a></p>"),
        encoding="utf-8",
    )
    (root / "topics" / "db" / "queries.html").write_text(_page("Queries", "<p>q</p>"), encoding="utf-8")


def test_docbook_toc_gives_parts_as_hubs_and_chapters_with_their_sections(tmp_path: Path) -> None:
    _docbook_site(tmp_path)
    tree = read_toc(tmp_path, "index.html")
    assert tree.parent["ch1-s1.html"] == "ch1.html"
    assert tree.parent["ch1.html"] == "part1.html"
    assert tree.parent["pre-a.html"] == "preface.html"
    chapter, hubs = chapters_of(tree)
    assert hubs == {"index.html", "part1.html"}
    assert chapter["ch1-s2.html"] == chapter["ch1.html"] == "ch1.html"
    assert chapter["ch2-s1.html"] == "ch2.html"
    assert chapter["pre-b.html"] == "preface.html"  # a top-level entry of leaves is one chapter
    assert "part1.html" not in chapter


def test_sphinx_toctree_nesting_and_deeper_index_pages(tmp_path: Path) -> None:
    _sphinx_site(tmp_path)
    tree = read_toc(tmp_path, "contents.html")
    assert tree.parent["topics/db/models.html"] == "topics/db/index.html"
    assert tree.parent["topics/db/queries.html"] == "topics/db/index.html"  # found on the chapter's own page
    chapter, hubs = chapters_of(tree)
    assert hubs == {"contents.html", "topics/index.html"}
    assert chapter["topics/db/queries.html"] == "topics/db/index.html"
    assert chapter["topics/install.html"] == "topics/install.html"
    assert chapter["faq.html"] == "faq.html"


def test_content_links_skip_navigation_toc_offsite_and_fragments(tmp_path: Path) -> None:
    _docbook_site(tmp_path)
    assert content_links(tmp_path / "ch1-s1.html", "ch1-s1.html") == ["ch2-s1.html", "ch1-s2.html"]
    assert content_links(tmp_path / "ch1-s2.html", "ch1-s2.html") == []  # nav "Next" and off-site link dropped
    assert content_links(tmp_path / "ch1.html", "ch1.html") == []  # TOC links are structure, not text links
    _sphinx_site(tmp_path)
    assert content_links(tmp_path / "topics/db/models.html", "topics/db/models.html") == [
        "topics/db/queries.html",
        "topics/install.html",
    ]


def test_section_headings_strip_numbers_and_boilerplate(tmp_path: Path) -> None:
    _docbook_site(tmp_path)
    assert section_headings(tmp_path / "ch1-s1.html") == ["Check Constraints"]


def test_load_corpus_maps_articles_to_chapters_and_links(tmp_path: Path) -> None:
    _docbook_site(tmp_path)
    c = load_corpus(tmp_path, name="tiny")
    assert c.members()["ch1.html"] == ["ch1-s1.html", "ch1-s2.html", "ch1.html"]
    assert c.links["ch1-s1.html"] == ("ch2-s1.html", "ch1-s2.html")
    assert c.hubs == {"index.html", "part1.html"}


MEMBERS = {"a": ["a1", "a2", "a3", "a4"], "b": ["b1", "b2", "b3"], "c": ["c1", "c2", "c3", "c4", "c5"], "d": ["d1"]}


def test_split_is_seeded_disjoint_and_drops_small_chapters() -> None:
    tune, rep = rp.split_chapters(MEMBERS, seed=3)
    assert set(tune) | set(rep) == {"a", "b", "c"} and not set(tune) & set(rep)
    assert (tune, rep) == rp.split_chapters(MEMBERS, seed=3)


def test_topical_and_drift_sessions_respect_chapters() -> None:
    s2 = rp.topical_sessions(MEMBERS, ["a", "b", "c"], 3, 200, random.Random(0))
    assert len(s2) == 200
    for s in s2:
        assert len(set(s.pages)) == 3 and set(s.pages) <= set(MEMBERS[s.chapter])
    assert s2 == rp.topical_sessions(MEMBERS, ["a", "b", "c"], 3, 200, random.Random(0))
    assert {s.chapter for s in s2} == {"a", "c"}  # b has 3 pages: a 3-page session would leave nothing to suggest
    for s in rp.drift_sessions(MEMBERS, ["a", "b", "c"], 100, random.Random(1)):
        assert s.earlier != s.chapter
        assert set(s.pages[:2]) <= set(MEMBERS[s.earlier]) and s.pages[2] in MEMBERS[s.chapter]


def test_walks_follow_links_without_revisits() -> None:
    links = {"a1": ["a2", "b1"], "a2": ["a1", "a3"], "a3": ["b1"], "b1": ["a1", "a3"]}
    chapter = {"a1": "a", "a2": "a", "a3": "a", "b1": "b"}
    walks = rp.walk_sessions(links, chapter, ["a"], (2, 3), 50, random.Random(0))
    assert len(walks) == 50
    for s in walks:
        path = list(s.pages) + [s.target]
        assert len(set(path)) == len(path) and chapter[path[0]] == "a"
        assert all(nxt in links[cur] for cur, nxt in zip(path, path[1:]))


def test_query_sessions_never_use_the_target_title() -> None:
    titles = {p: p.upper() for ps in MEMBERS.values() for p in ps}
    heads = {"a1": ["A1 overview", "Check constraints"], "a2": ["A2"], "c3": ["Joins"]}
    sess = rp.query_sessions(MEMBERS, ["a", "b", "c"], lambda p: heads.get(p, []), titles, 100, random.Random(0))
    assert {s.target for s in sess} == {"a1", "c3"}  # a2's only heading repeats its title
    for s in sess:
        assert s.query in ("check constraints", "joins") and s.target not in s.pages
        assert set(s.pages) <= set(MEMBERS[s.chapter])


def test_metrics() -> None:
    assert rp.precision_at(["x", "a1"], {"a1", "a2"}, 5) == pytest.approx(0.2)  # missing slots are misses
    assert rp.hit_at(["x", "y"], {"a1"}, 5) == 0.0
    assert rp.rank_metrics(["x", "t", "y"], "t", 5) == (1.0, 0.5)
    assert rp.rank_metrics(["x"] * 5 + ["t"], "t", 5) == (0.0, 0.0)
    s = rp.Session(("a1", "a2"), "a")
    assert rp.topical_ceiling(s, MEMBERS, 5) == pytest.approx(0.4)
    assert rp.walk_ceiling(rp.Session(("a2", "a1"), "a", target="b1"), {"a1": ["a2", "b1", "c1"]}, 1) == pytest.approx(
        0.5
    )


def test_bootstrap_intervals() -> None:
    vals = [0.0, 1.0] * 200
    m, lo, hi = rp.bootstrap_ci(vals, seed=0)
    assert m == pytest.approx(0.5) and lo < 0.5 < hi and hi - lo < 0.15
    m2, lo2, hi2 = rp.bootstrap_ci(vals[:40], seed=0)
    assert hi2 - lo2 > hi - lo  # fewer sessions, wider interval
    r, rlo, rhi = rp.ratio_ci([1.0, 1.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5], seed=0)
    assert r == pytest.approx(1.5) and rlo <= r <= rhi
    with pytest.raises(ValueError):
        rp.ratio_ci([1.0], [1.0, 2.0])
