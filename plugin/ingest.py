"""A folder of Markdown/HTML pages -> articles: which files are articles, their main content, clean titles and
the links between them.

A documentation build folder holds more than articles: Sphinx writes highlighted source listings (`_modules/`),
copies of the sources (`_sources/`), assets (`_static/`), a general index, a module index and a search page;
DocBook writes a book index. `DEFAULT_EXCLUDE` leaves those out; `include`/`exclude` patterns choose further
(e.g. `exclude=("releases/*",)` for Django's 270 release notes).

Patterns work like .gitignore lines: one without a "/" matches a file name at any depth (`README*`), one with
a "/" matches the path from the folder or from any subfolder on (`_static/*` matches `_static/x.js` and
`en/_static/x.js`), one starting with "/" only from the folder (`/search.html`); `*` matches across folders.

A file over `max_file_bytes` (default `DEFAULT_MAX_FILE_BYTES`, 20 MB: the largest page of Django's and
PostgreSQL's manuals is under 1 MB) is skipped and named in the summary and a warning, never read: a page is read
whole into memory and parsed into a tree several times its size, so one multi-gigabyte file dropped in the folder
took the indexer down.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import quote, urljoin

from .errors import ConfigError
from .html_extract import extract_page, split_section_number
from .knowledge_base import Article, _decode_utf8, _parse_time, check_articles

__all__ = ["DEFAULT_EXCLUDE", "DEFAULT_MAX_FILE_BYTES", "FolderScan", "scan_folder", "strip_site_affixes"]

logger = logging.getLogger(__name__)

PAGE_SUFFIXES = (".md", ".markdown", ".html", ".htm")

DEFAULT_EXCLUDE = (
    # Sphinx: highlighted source listings, copies of the sources, assets, the indexes and the search page
    "_modules/*",
    "_sources/*",
    "_static/*",
    "_images/*",
    "_downloads/*",
    # at the top only: "search.html" deeper down may be an article (Django's topics/db/search.html); pages that
    # are indexes or search pages by their markup are skipped wherever they are (see `html_extract`)
    "/genindex.html",
    "/genindex-*.html",
    "/py-modindex.html",
    "/search.html",
    "/404.html",
    # DocBook's index; assets of any static site; dot-folders
    "/bookindex.html",
    "assets/*",
    "node_modules/*",
    ".*",
    # Doxygen's and Javadoc's highlighted source listings; Javadoc's generated indexes, trees and "Uses of" pages
    "*_source.html",
    "src-html/*",
    "index-all.html",
    "index-files/*",
    "allclasses*.html",
    "allpackages-index.html",
    "overview-tree.html",
    "package-tree.html",
    "class-use/*",
    "deprecated-list.html",
    "help-doc.html",
    # repository files that sit beside the pages
    "README*",
    "LICENSE*",
    "CHANGELOG*",
)

_OUTSIDE = "links to files outside the folder"
DEFAULT_MAX_FILE_BYTES = 20 * 1024 * 1024
_WEB_URL = re.compile(r"^(?:https?://|/)[^\s]*$", re.I)
# " (" for Texinfo's "Node (Manual Title)" and Javadoc's "ArrayList (Java Platform SE 8 )": only an affix that a
# third of the folder's titles share is taken off, so a title's own parenthesis stays.
_AFFIX_SEPARATORS = (" — ", " – ", " | ", " - ", " · ", " :: ", ": ", " (")


@dataclass(frozen=True)
class FolderScan:
    articles: list[Article]
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason (the rule) -> relative paths

    def summary(self) -> str:
        """One line: how many articles, how many hubs, and what was skipped by which rule."""
        hubs = sum(1 for a in self.articles if a.meta.get("hub"))
        line = f"{len(self.articles)} articles ({hubs} hub/TOC pages: read, never suggested)"
        n = sum(len(v) for v in self.skipped.values())
        if n:
            rules = sorted(self.skipped.items(), key=lambda kv: (-len(kv[1]), kv[0]))
            line += f"; skipped {n} files: " + ", ".join(f"{len(v)} {reason}" for reason, v in rules)
        return line


def _matches(rel: str, pattern: str) -> bool:
    if "/" not in pattern:
        return fnmatchcase(rel.rsplit("/", 1)[-1], pattern)
    if pattern.startswith("/"):
        return fnmatchcase(rel, pattern[1:])
    parts = rel.split("/")
    return any(fnmatchcase("/".join(parts[i:]), pattern) for i in range(len(parts)))


def _skip_reason(rel: str, include: Sequence[str], exclude: Sequence[str], default_exclude: bool) -> str | None:
    if include and not any(_matches(rel, p) for p in include):
        return "outside --include"
    hit = next((p for p in exclude if _matches(rel, p)), None)
    if hit is not None:
        return f"--exclude {hit}"
    if default_exclude:
        hit = next((p for p in DEFAULT_EXCLUDE if _matches(rel, p)), None)
        if hit is not None:
            return hit
    return None


def scan_folder(
    root: str | os.PathLike[str],
    base_url: str = "",
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    default_exclude: bool = True,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> FolderScan:
    """Articles from the .md/.html files under `root`, with what was skipped and why. A folder that yields no
    article, or two with one id (front matter can set ids), is a `DataFormatError`. Files over `max_file_bytes`
    are skipped unread (the module's docstring says why)."""
    if max_file_bytes < 1:
        raise ConfigError(f"max_file_bytes must be a positive number of bytes, got {max_file_bytes}")
    too_big = f"larger than {_size(max_file_bytes)} (the size cap, --max-file-mb)"
    r = Path(root)
    real_root = r.resolve()
    skipped: dict[str, list[str]] = {}
    pages: list[tuple[Path, str]] = []
    for path in sorted(r.rglob("*")):
        if not (path.is_file() and path.suffix.lower() in PAGE_SUFFIXES):
            continue
        rel = path.relative_to(r).as_posix()
        # A link named `notes.md` may point at `~/.ssh/id_rsa` or another site's drafts: what it points to would
        # be served to every visitor as an article. Only files inside the folder are read (a link within it is
        # fine; rglob does not descend into linked folders).
        reason = _skip_reason(rel, include, exclude, default_exclude) if _inside(path, real_root) else _OUTSIDE
        if not reason and path.stat().st_size > max_file_bytes:
            reason = too_big
        if reason:
            skipped.setdefault(reason, []).append(rel)
        else:
            pages.append((path, rel))
    articles: list[Article] = []
    html_titles: dict[str, str] = {}  # id -> <title>, for pages without an h1 (their titles carry the site name)
    for path, rel in pages:
        art = _article_from_file(path, rel, base_url, html_titles, max_file_bytes, too_big)
        if isinstance(art, str):
            skipped.setdefault(art, []).append(rel)
        else:
            articles.append(art)
    articles = _clean_titles(articles, html_titles)
    articles = _resolve_links(articles)
    if skipped.get(too_big):
        big = skipped[too_big]
        logger.warning(
            "%s: skipped %d file(s) %s: %s%s", r, len(big), too_big, ", ".join(big[:10]), " …" if len(big) > 10 else ""
        )
    scan = FolderScan(articles, skipped)
    check_articles(scan.articles, f"{r} ({scan.summary()})")
    logger.info("%s: %s", r, scan.summary())
    return scan


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:g} MB" if n >= 1024 * 1024 else f"{n} bytes"


def _inside(path: Path, real_root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(real_root)
    except (OSError, RuntimeError):  # a link loop
        return False


def _url_for(rel: str, base_url: str) -> str:
    """The page's url: its path under the folder, percent-encoded. A file name is not a url: `a?b.html`,
    `a#b.html` and `%2e%2e%2fx.html` named another page (a query, a fragment, `../x.html` to a server that decodes
    it), and `a b.html` a url the policy refuses. What browsers leave raw in a path stays raw (`c++.html`), so a
    visitor's url still finds the page; not ':' (a first segment `javascript:x.html` would read as a scheme), ';'
    (path parameters, which logs cut) or "'"."""
    path = quote(rel, safe="/!$&()*+,=@~")
    return base_url.rstrip("/") + "/" + path if base_url else path


def _article_from_file(
    path: Path, rel: str, base_url: str, html_titles: dict[str, str], max_bytes: int, too_big: str
) -> Article | str:
    """The article in this file, or why the file holds none (`too_big` if it holds more than `max_bytes`)."""
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)  # bounded: the file may have grown since it was listed
    if len(data) > max_bytes:
        return too_big
    raw = _decode_utf8(data, path)
    url = _url_for(rel, base_url)
    if path.suffix.lower() in (".html", ".htm"):
        page = extract_page(raw, rel)
        if page.generated:
            return "generated index/search pages"
        if not page.text.strip():
            return "without text"
        meta: dict[str, object] = {"links": list(page.links)}
        if page.hub:
            meta["hub"] = True
        if page.number:
            meta["number"] = page.number
        canonical = urljoin(url, page.canonical) if base_url and page.canonical else page.canonical
        if canonical and _WEB_URL.match(canonical):  # a page's markup is untrusted: no javascript: or data: urls
            meta["canonical"] = canonical
        if not page.has_h1 and page.title:
            html_titles[rel] = page.title
        return Article(id=rel, title=page.title or path.stem, url=url, text=page.text, meta=meta)
    meta_fm, body = _front_matter(raw)
    m = re.search(r"^#\s+(.+)$", body, flags=re.M)
    title = meta_fm.get("title") or (m.group(1).strip() if m else path.stem.replace("-", " ").replace("_", " "))
    tags = tuple(t.strip() for t in meta_fm.get("tags", "").strip("[]").split(",") if t.strip())
    return Article(
        id=meta_fm.get("id") or rel,
        title=title,
        url=meta_fm.get("url") or url,
        text=body,
        tags=tags,
        locale=meta_fm.get("locale") or None,
        updated_at=_parse_time(meta_fm.get("updated_at") or path.stat().st_mtime, str(path)),
    )


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---", 4)
    if end < 0:
        return {}, text
    meta = {}
    for line in text[4:end].splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            meta[k.strip()] = v.strip().strip("\"'")
    return meta, text[end + 4 :].lstrip("\n")


def strip_site_affixes(titles: Sequence[str], min_share: float = 0.3) -> list[str]:
    """Titles without the site name the site puts on every page ("Sessions — Django 3.2 documentation",
    "PostgreSQL: Documentation: 15: CREATE TABLE"): an affix ending/starting at a separator that at least
    `min_share` of the titles (and at least 3) share is taken off. A title that is nothing but the affix stays."""
    prefixes: Counter[str] = Counter()
    suffixes: Counter[str] = Counter()
    for t in titles:
        pre, suf = set(), set()
        for sep in _AFFIX_SEPARATORS:
            for m in re.finditer(re.escape(sep), t):
                pre.add(t[: m.end()])
                suf.add(t[m.start() :])
        prefixes.update(pre)
        suffixes.update(suf)
    need = max(3, min_share * len(titles))
    common_pre = sorted((p for p, n in prefixes.items() if n >= need), key=len, reverse=True)
    common_suf = sorted((s for s, n in suffixes.items() if n >= need), key=len, reverse=True)
    out = []
    for t in titles:
        s = t
        p = next((p for p in common_pre if s.startswith(p) and len(s) > len(p)), None)
        if p:
            s = s[len(p) :]
        x = next((x for x in common_suf if s.endswith(x) and len(s) > len(x)), None)
        if x:
            s = s[: -len(x)]
        out.append(s.strip() or t)
    return out


def _clean_titles(articles: list[Article], html_titles: dict[str, str]) -> list[Article]:
    if not html_titles:
        return articles
    ids = list(html_titles)
    clean = dict(zip(ids, strip_site_affixes([html_titles[i] for i in ids])))
    out = []
    for a in articles:
        if a.id in clean:
            number, title = split_section_number(clean[a.id])
            meta = {**a.meta, "number": number} if number else a.meta
            a = replace(a, title=title, meta=meta)
        out.append(a)
    return out


def _resolve_links(articles: list[Article]) -> list[Article]:
    """Keep only links to articles of this folder, as their ids ("dir/" and "dir/index.html" are one page)."""
    ids = {a.id for a in articles}
    out = []
    for a in articles:
        links = a.meta.get("links")
        if links is None:
            out.append(a)
            continue
        resolved: dict[str, None] = {}
        for link in links:
            target = _as_id(str(link), ids)
            if target is not None and target != a.id:
                resolved.setdefault(target, None)
        out.append(replace(a, meta={**a.meta, "links": list(resolved)}))
    return out


def _as_id(link: str, ids: set[str]) -> str | None:
    if link in ids:
        return link
    stem = link.rstrip("/")
    for cand in (f"{stem}/index.html" if stem else "index.html", f"{stem}.html", f"{stem}/index.htm"):
        if cand in ids:
            return cand
    return None
