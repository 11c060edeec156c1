"""The main content of one documentation page: its text, title, canonical url, in-text links, and whether it
is a hub (a table of contents rather than an article).

Structural extraction with lxml: documentation generators mark their chrome (Sphinx's `div.sphinxsidebar` and
`div.related`, Django's `div#hd`/`div.nav`, DocBook's `div.navheader`/`div.navfooter`, MkDocs' and Docusaurus'
`<nav>`/breadcrumbs/pagination), so removing it by selector keeps the whole body — code blocks, tables and
definition lists included. A general-purpose boilerplate remover (trafilatura) was compared on the Django and
PostgreSQL manuals (`bench/extraction_compare.py`): it drops section headings and parts of code/tables on these
pages, which is the text a documentation suggestion needs most (README, "Indexing a documentation site").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin

import lxml.html
from lxml import etree

__all__ = ["PageContent", "extract_page", "split_section_number"]

# Where the article is, most specific first. The first selector that matches a non-empty element wins.
_MAIN = (
    "div[itemprop='articleBody']",  # Sphinx themes (furo, sphinx-rtd-theme, pydata) mark the body like this
    "div.body[role='main']",  # Sphinx basic/alabaster/classic
    "#yui-main .yui-b",  # Django's documentation theme
    "article.md-content__inner",  # MkDocs Material
    "div.theme-doc-markdown",  # Docusaurus
    "[role='main']",  # MkDocs' own theme, many others
    "main article",
    "main",
    "article",
    "div.body",
)

# Site chrome inside or around the main content: navigation, sidebars, search boxes, permalinks.
_CHROME = ", ".join(
    (
        "script",
        "style",
        "noscript",
        "template",
        "form",
        "button",
        "nav",
        "aside",
        "iframe",
        "svg",
        "[role='navigation']",
        "[role='search']",
        "[role='banner']",
        "[role='contentinfo']",
        "div.sphinxsidebar",
        "div.related",
        "div#hd",
        "div#ft",
        "div.nav",
        "#global-nav",
        "#sidebar",
        "div.navheader",
        "div.navfooter",
        "div.searchbox",
        "#searchbox",
        ".breadcrumb",
        ".breadcrumbs",
        "[aria-label='breadcrumb']",
        "[aria-label='breadcrumbs']",
        ".headerlink",
        "a.anchor",
        "a.hash-link",
        "a.headeranchor",  # the ¶ / # permalinks beside headings
        ".md-sidebar",
        ".md-footer",
        ".md-source",
        ".md-header",
        ".md-content__button",
        ".pagination-nav",
        ".theme-doc-toc-desktop",
        ".theme-doc-toc-mobile",
        ".theme-doc-footer",
        ".theme-edit-this-page",
        ".theme-last-updated",
        ".theme-doc-version-badge",
        ".rst-footer-buttons",
        ".wy-breadcrumbs",
        ".prev-next-area",
        ".bd-sidebar",
    )
)

# Blocks that start a new line in the text; everything else flows inline.
_BLOCK = frozenset(
    (
        "p",
        "div",
        "section",
        "article",
        "main",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "blockquote",
        "table",
        "thead",
        "tbody",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "figure",
        "figcaption",
        "hr",
        "br",
        "pre",
        "header",
        "footer",
        "details",
        "summary",
        "caption",
    )
)
_CELL = frozenset(("td", "th"))
_ABSOLUTE = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")  # has a scheme or a host
_SITE = "http://site.invalid/"  # a stand-in origin, so urljoin can resolve and then drop relative hrefs
_SPACE = re.compile(r"[ \t\r\f\v\u00a0]+")
_WORD = re.compile(r"\w+")
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")
_SECTION_NUMBER = re.compile(r"^(?:[A-Z]\.)?\d+(?:\.\d+)*\.\s+")  # DocBook's "5.1. " / "F.3. " before a title

# A hub is a table of contents rather than an article. Generators mark their TOCs (Sphinx's toctree, DocBook's
# div.toc): a page whose marked TOC holds most of its links, with little prose besides, is a hub. A page with no
# marked TOC is a hub when it is nothing but links (one every _HUB_WORDS_PER_LINK words). Thresholds read off the
# Django and PostgreSQL manuals: TOC pages carry 20-250 words of introduction; articles that merely link a lot
# (a table of catalog columns, a list of settings) have a link every 10-25 words but no marked TOC.
# Pages a generator writes for navigation only: Sphinx's general and module indexes and its search page, DocBook's
# book index, MkDocs' search page. Not articles, whatever they are called.
_GENERATED = "#search-results, #mkdocs-search-results, table.indextable, div.index"
_TOC = "div.toc, div.toctree-wrapper, nav.toc, ul.toc, div.section-index"
_HUB_MIN_LINKS = 3
_HUB_MAX_INTRO_WORDS = 300
_HUB_WORDS_PER_LINK = 8


@dataclass(frozen=True)
class PageContent:
    title: str  # the page's own heading (h1) without a section number, else its <title> as written
    head_title: str  # the <title> as written
    text: str  # main content after its title; blocks on their own lines, code blocks keep their line breaks
    canonical: str  # href of <link rel="canonical">, "" when absent
    links: tuple[str, ...]  # site-relative paths the main content links to, in order, once each, no self-links
    hub: bool  # mostly links and little prose: a table of contents, not an article
    number: str = ""  # a DocBook section number taken off the h1 ("5.1"), "" when none
    has_h1: bool = False  # False: the title is the <title>, which often carries the site's name
    generated: bool = False  # a generated index or search page, not an article


def extract_page(html: str, page_path: str = "") -> PageContent:
    """Main content of one HTML page at `page_path` (site-relative, e.g. "topics/http/sessions.html"; links are
    resolved against it). Never raises on odd markup: a page lxml cannot parse gives empty text."""
    try:
        doc = lxml.html.document_fromstring(html.encode("utf-8"))
    except (etree.ParserError, ValueError):
        return PageContent("", "", "", "", (), False)

    head_title = _clean(doc.findtext(".//title") or "")
    canonical = ""
    for link in doc.iter("link"):
        if "canonical" in (link.get("rel") or "").lower().split():
            canonical = (link.get("href") or "").strip()
            break
    root = _main_element(doc)
    generated = bool(doc.cssselect(_GENERATED))
    for el in root.cssselect(_CHROME):
        _drop(el)
    for el in list(root.iter("header", "footer")):
        # Docusaurus and MkDocs Material put the page's own h1 in the article's <header>; any other header or
        # footer is the site's (logo, site name, copyright, "edit this page").
        if not (el.tag == "header" and _in_article(el) and any(True for _ in el.iter("h1"))):
            _drop(el)
    for el in root.cssselect(_TOC):
        if page_path and not _links(el, page_path):
            _drop(el)  # a TOC of this page's own sections only repeats the headings below it
    h1 = next((el for el in root.iter("h1")), None)
    h1_text = _clean(h1.text_content()) if h1 is not None else ""
    number, title = split_section_number(h1_text) if h1_text else ("", head_title)
    text = _render(root)
    first, _, rest = text.partition("\n\n")
    if first in (h1_text, head_title):
        text = rest  # the heading is the title, which every card and embedding already show first
    links = _links(root, page_path)
    hub = _is_hub(root, page_path, len(links), len(_WORD.findall(text)))
    return PageContent(title, head_title, text, canonical, links, hub, number, bool(h1_text), generated)


def split_section_number(title: str) -> tuple[str, str]:
    """("5.1", "Table Basics") from DocBook's "5.1. Table Basics"; ("", title) when there is no number."""
    m = _SECTION_NUMBER.match(title)
    if m and len(title) > m.end():
        return m.group(0).strip().rstrip("."), title[m.end() :]
    return "", title


def _is_hub(root: lxml.html.HtmlElement, page_path: str, internal_links: int, words: int) -> bool:
    if internal_links < _HUB_MIN_LINKS:
        return False
    toc_links = toc_words = 0
    for el in root.cssselect(_TOC):
        toc_links += len(_links(el, page_path))  # a TOC of this page's own sections does not count
        toc_words += len(_WORD.findall(el.text_content()))
    if toc_links >= _HUB_MIN_LINKS and 2 * toc_links >= internal_links and words - toc_words <= _HUB_MAX_INTRO_WORDS:
        return True
    return words <= _HUB_WORDS_PER_LINK * internal_links


def _main_element(doc: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    for sel in _MAIN:
        for el in doc.cssselect(sel):
            if _clean(el.text_content()):
                return el
    body = doc.find("body")
    return body if body is not None else doc


def _in_article(el: lxml.html.HtmlElement) -> bool:
    return any(a.tag == "article" for a in el.iterancestors())


def _drop(el: lxml.html.HtmlElement) -> None:
    """Remove an element but keep the text that follows it (lxml stores that on the element as .tail)."""
    parent = el.getparent()
    if parent is None:
        return
    tail = el.tail
    prev = el.getprevious()
    if tail:
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(el)


def _clean(s: str) -> str:
    return " ".join(s.split())


def _render(root: lxml.html.HtmlElement) -> str:
    """Text with one line per block and blank lines between paragraphs; <pre> keeps its lines and indentation."""
    out: list[str] = []
    code: list[str] = []

    def walk(el: lxml.html.HtmlElement) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag == "pre":
            code.append(el.text_content().strip("\n"))
            out.append(f"\n\n\x00{len(code) - 1}\x00\n\n")  # a placeholder, so whitespace clean-up skips code
        else:
            block = tag in _BLOCK
            if block:
                out.append("\n")
            if el.text and tag:
                out.append(el.text.replace("\n", " "))  # source line breaks are spaces in HTML
            for child in el:
                walk(child)
            if tag in _CELL:
                out.append(" | ")
            if block:
                out.append("\n")
        if el.tail:
            out.append(el.tail.replace("\n", " "))

    walk(root)
    lines = (_SPACE.sub(" ", line).strip().strip("|").strip() for line in "".join(out).split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return _PLACEHOLDER.sub(lambda m: code[int(m.group(1))], text)


def _links(root: lxml.html.HtmlElement, page_path: str) -> tuple[str, ...]:
    """Site-relative paths of the pages this content links to, in order, once each; links off the site (a
    ticket tracker, an RFC) and to this same page are not site structure and are left out."""
    base = _SITE + page_path.lstrip("/")
    seen: dict[str, None] = {}
    for a in root.iter("a"):
        href = (a.get("href") or "").strip()
        if not href or href.startswith("#") or _ABSOLUTE.match(href):
            continue
        target = urldefrag(urljoin(base, href)).url.split("?", 1)[0]
        if not target.startswith(_SITE):
            continue
        rel = target[len(_SITE) :]
        if rel != page_path.lstrip("/"):
            seen.setdefault(rel, None)
    return tuple(seen)
