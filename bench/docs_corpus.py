"""A documentation site as a benchmark corpus: its pages as the plugin ingests them, plus ground truth read from
the site's own structure.

- Chapters: the tables of contents. Starting at the root TOC page (Sphinx `contents.html`, DocBook `index.html`),
  every TOC block (`div.toc` in DocBook, `div.toctree-wrapper` in Sphinx) is read, nesting of its lists giving
  parent -> child; each page found is read in turn (breadth first, so a page keeps its shallowest place). A
  top-level entry whose children are all leaves (PostgreSQL's Preface, Django's FAQ) is one chapter; a top-level
  entry with deeper structure (a DocBook part, Django's "Using Django") is a hub whose children are the chapters.
  Pages above chapter level are hubs and belong to no chapter.
- Links: in-text hyperlinks between pages, read from the page body with navigation (headers, footers, sidebars,
  TOC blocks) removed.

Nothing is copied: the installed docs are read where they are (paths come from the caller).
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from lxml import html as lxml_html

from plugin import Article, load_articles

__all__ = ["DocsCorpus", "TocTree", "read_toc", "chapters_of", "content_links", "load_corpus", "section_headings"]

_TOC_XPATH = (
    "//div[contains(concat(' ', normalize-space(@class), ' '), ' toc ')]"
    " | //div[contains(concat(' ', normalize-space(@class), ' '), ' toctree-wrapper ')]"
)
# Navigation chrome of DocBook XSL and Sphinx themes (Django's uses div#hd / div#ft / div.nav / #sidebar).
_NAV_XPATH = (
    "//div[contains(concat(' ', normalize-space(@class), ' '), ' navheader ')]"
    " | //div[contains(concat(' ', normalize-space(@class), ' '), ' navfooter ')]"
    " | //div[contains(concat(' ', normalize-space(@class), ' '), ' sphinxsidebar ')]"
    " | //div[contains(concat(' ', normalize-space(@class), ' '), ' related ')]"
    " | //div[contains(concat(' ', normalize-space(@class), ' '), ' nav ')]"
    " | //*[@id='hd'] | //*[@id='ft'] | //*[@id='sidebar'] | //nav | //header | //footer | //head"
)
_LIST_TAGS = {"ul", "ol", "dl"}
_HEADING_XPATH = "//h2 | //h3"
_BORING_HEADINGS = {
    "note",
    "notes",
    "see also",
    "examples",
    "example",
    "description",
    "parameters",
    "synopsis",
    "table of contents",
    "warning",
    "tip",
    "compatibility",
    "outputs",
    "notes:",
}


def _parse(path: Path):
    return lxml_html.fromstring(path.read_bytes())


def _target(href: str | None, page: str) -> str | None:
    """The site-relative file a link points to (fragment and query dropped), None for off-site links."""
    if not href:
        return None
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(parts.path)))
    if path.startswith("..") or not path.lower().endswith((".html", ".htm")):
        return None
    return path


@dataclass(frozen=True)
class TocTree:
    root: str
    parent: dict[str, str]  # page -> the page whose TOC lists it (root has none)
    order: tuple[str, ...]  # pages in the order the crawl placed them (root first)

    def children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {p: [] for p in self.order}
        for page in self.order:
            if page in self.parent:
                out[self.parent[page]].append(page)
        return out

    def depth(self, page: str) -> int:
        d = 0
        while page in self.parent:
            page = self.parent[page]
            d += 1
        return d


def _toc_entries(doc, page: str) -> Iterable[tuple[str, str]]:
    """(child, parent) pairs from one page's TOC blocks; list nesting gives the parent within the block."""
    for block in doc.xpath(_TOC_XPATH):
        stack: list[tuple[int, str]] = []  # (list depth, page) of the open ancestors
        for a in block.iter("a"):
            target = _target(a.get("href"), page)
            if target is None:
                continue
            depth = sum(1 for anc in a.iterancestors() if anc.tag in _LIST_TAGS and _inside(anc, block))
            while stack and stack[-1][0] >= depth:
                stack.pop()
            parent = stack[-1][1] if stack else page
            if target != parent and target != page:
                yield target, parent
                stack.append((depth, target))
            # an anchor into the parent's own page (a section of it) opens no new level


def _inside(node, block) -> bool:
    while node is not None:
        if node is block:
            return True
        node = node.getparent()
    return False


def read_toc(root_dir: str | Path, start: str) -> TocTree:
    """Crawl the TOC blocks breadth first from `start` (a file relative to root_dir)."""
    root = Path(root_dir)
    parent: dict[str, str] = {}
    order = [start]
    placed = {start}
    queue = deque([start])
    while queue:
        page = queue.popleft()
        path = root / page
        if not path.is_file():
            continue
        for child, par in _toc_entries(_parse(path), page):
            if child in placed or not (root / child).is_file():
                continue
            placed.add(child)
            parent[child] = par
            order.append(child)
            queue.append(child)
    return TocTree(start, parent, tuple(order))


def chapters_of(tree: TocTree) -> tuple[dict[str, str], set[str]]:
    """(page -> chapter page, hub pages). See the module docstring for the rule."""
    kids = tree.children()
    chapter_roots: list[str] = []
    hubs = {tree.root}
    for top in kids[tree.root]:
        if kids[top] and any(kids[c] for c in kids[top]):
            hubs.add(top)
            chapter_roots.extend(kids[top])
        else:
            chapter_roots.append(top)
    chapter: dict[str, str] = {}
    for ch in chapter_roots:
        todo = [ch]
        while todo:
            p = todo.pop()
            chapter[p] = ch
            todo.extend(kids[p])
    return chapter, hubs


def content_links(path: Path, page: str) -> list[str]:
    """Pages this page links to from its text (navigation and TOC blocks removed), first occurrence order."""
    doc = _parse(path)
    for node in doc.xpath(_NAV_XPATH + " | " + _TOC_XPATH):
        if node.getparent() is not None:
            node.getparent().remove(node)
    out: list[str] = []
    for a in doc.iter("a"):
        t = _target(a.get("href"), page)
        if t is not None and t != page and t not in out:
            out.append(t)
    return out


def section_headings(path: Path) -> list[str]:
    """The page's h2/h3 section headings, numbering and permalink marks stripped (queries for protocol d)."""
    doc = _parse(path)
    for node in doc.xpath(_NAV_XPATH + " | " + _TOC_XPATH):
        if node.getparent() is not None:
            node.getparent().remove(node)
    out = []
    for h in doc.xpath(_HEADING_XPATH):
        text = " ".join(h.text_content().replace("¶", " ").split())
        words = text.split()
        while words and (
            words[0].rstrip(".").replace(".", "").isdigit()
            or words[0].rstrip(".").isupper()
            and len(words[0].rstrip(".")) <= 4
            and words[0].rstrip(".").replace("I", "").replace("V", "").replace("X", "") == ""
        ):
            words = words[1:]  # "5.4.1." or "II." section numbers
        text = " ".join(words)
        if len(text) >= 4 and text.lower().strip(":") not in _BORING_HEADINGS and text not in out:
            out.append(text)
    return out


@dataclass(frozen=True)
class DocsCorpus:
    name: str
    root: Path
    articles: list[Article]
    chapter: dict[str, str]  # article id -> chapter id (the chapter's root page); pages outside chapters absent
    chapter_title: dict[str, str]
    hubs: frozenset[str]  # article ids above chapter level
    links: dict[str, tuple[str, ...]] = field(default_factory=dict)  # article id -> linked article ids (in-text)

    def members(self) -> dict[str, list[str]]:
        """chapter -> its article ids, in article order."""
        out: dict[str, list[str]] = {}
        for a in self.articles:
            ch = self.chapter.get(a.id)
            if ch is not None:
                out.setdefault(ch, []).append(a.id)
        return out


def _start_page(root: Path) -> str:
    for name in ("contents.html", "index.html"):
        p = root / name
        if p.is_file() and _parse(p).xpath(_TOC_XPATH):
            return name
    raise FileNotFoundError(f"{root}: no contents.html or index.html with a table of contents")


def _article_page(article: Article, root: Path, base_url: str) -> str:
    """The file an ingested article came from: its id when that is a relative path, else its url's path."""
    if (root / article.id).is_file():
        return article.id
    url = article.url[len(base_url) :] if base_url and article.url.startswith(base_url) else article.url
    path = urlsplit(url).path.lstrip("/")
    if not path or path.endswith("/"):
        path += "index.html"
    return path


def load_corpus(root_dir: str | Path, name: str | None = None, base_url: str = "") -> DocsCorpus:
    """Articles through the plugin's own ingestion, chapters from the TOC, in-text links between articles."""
    root = Path(root_dir)
    articles = load_articles(root, base_url)
    tree = read_toc(root, _start_page(root))
    chapter_of_page, hub_pages = chapters_of(tree)
    page_of = {a.id: _article_page(a, root, base_url) for a in articles}
    id_of_page = {p: aid for aid, p in page_of.items()}
    chapter = {
        aid: id_of_page.get(chapter_of_page[p], chapter_of_page[p])
        for aid, p in page_of.items()
        if p in chapter_of_page
    }
    titles = {a.id: a.title for a in articles}
    chapter_title = {ch: titles.get(ch, ch) for ch in set(chapter.values())}
    links: dict[str, tuple[str, ...]] = {}
    for aid, page in page_of.items():
        if (root / page).is_file():
            linked = [id_of_page[t] for t in content_links(root / page, page) if t in id_of_page]
            links[aid] = tuple(t for t in linked if t != aid)
    hubs = frozenset(id_of_page[p] for p in hub_pages if p in id_of_page)
    return DocsCorpus(name or root.name, root, articles, chapter, chapter_title, hubs, links)
