"""The articles that can be suggested, and how they are read from JSONL files or folders of Markdown/HTML."""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import DataFormatError, UnknownArticleError, shown
from .events import well_formed
from .urls import checked_article

__all__ = ["Article", "KnowledgeBase", "load_articles", "normalize_url"]

_REQUIRED = ("id", "title")
# (field, accepted JSON types, as an error message says them); tags are checked on their own
_FIELD_TYPES: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("id", (str, int), "a string"),
    ("title", (str, int, float), "a string"),
    ("url", str, "a string"),
    ("text", str, "a string"),
    ("tags", (str, list, tuple), "a string or a list of strings"),
    ("locale", str, "a string such as 'en'"),
    ("meta", dict, "a JSON object"),
)


# In a title or a snippet (one line of display text on every card, link and reason): control characters, which
# break a line or ring a terminal, and the bidi embeddings, overrides and isolates, which reorder how the rest of the
# line is drawn (a title ending in U+202E "moc.evil//:sptth" reads as a url, and the override runs on into the cards
# after it). Marks (LRM, RLM, ALM) and joiners, which right-to-left and joined scripts need, stay.
_LINE_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_INDEX_PAGE = re.compile(r"(^|/)index(?:\.html?)?$", re.I)
_PAGE_SUFFIX = re.compile(r"\.html?$", re.I)


def normalize_url(url: str) -> str:
    """Compare urls the way a static site serves them: scheme, host case, fragment, trailing slash and a final
    `index.html`/`index` do not matter ("https://X/a/", "http://x/a/index.html#s" and "x/a" are one page)."""
    u = url.strip().split("#", 1)[0]
    u = re.sub(r"^https?://", "", u, flags=re.I)
    path, q, query = u.partition("?")
    if "/" in path:
        host, rest = path.split("/", 1)
        path = host.lower() + "/" + rest
    else:
        path = path.lower()
    path = _INDEX_PAGE.sub(r"\1", path).rstrip("/")
    return f"{path}?{query}" if q and query else path


def _loose_url(url: str) -> str:
    """A second, looser key: without the query string (Sphinx's `?highlight=…`, tracking parameters) and without
    `.html` (hosts that serve `/a/b.html` as `/a/b`)."""
    return _PAGE_SUFFIX.sub("", normalize_url(url).split("?", 1)[0])


@functools.lru_cache(maxsize=8_192)
def _url_keys(url: str) -> tuple[str, str]:
    """Both lookup keys of a url, remembered: every suggestion looks up each page of the session's context
    again, and the two regex passes were half of a 20-page suggestion's time (issue #13 profile). 8,192 urls
    hold every live session's recent pages on a busy site; a larger bound only grew a worker's memory for an
    hour of traffic with new urls (65,536 entries of up to 2 kB urls each, issue #13 item 2's RSS)."""
    return normalize_url(url), _loose_url(url)


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    url: str = ""
    text: str = ""
    tags: tuple[str, ...] = ()
    locale: str | None = None
    updated_at: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        # Lone surrogates become U+FFFD (`events.well_formed`): one hostile KB record must not turn every answer
        # citing it into an error. Here, not at ingest, so that the id the index holds is the id the KB holds.
        for name in ("id", "title", "url", "text", "locale"):
            value = getattr(self, name)
            if isinstance(value, str) and (clean := well_formed(value)) is not value:
                object.__setattr__(self, name, clean)
        if isinstance(self.title, str) and _LINE_CONTROLS.search(self.title):
            object.__setattr__(self, "title", " ".join(_LINE_CONTROLS.sub(" ", self.title).split()))
        tags = tuple(well_formed(t) if isinstance(t, str) else t for t in self.tags)
        if any(a is not b for a, b in zip(tags, self.tags)):
            object.__setattr__(self, "tags", tags)

    def embed_text(self) -> str:
        return f"{self.title}\n{self.text}" if self.text else self.title

    def snippet(self, chars: int = 160) -> str:
        body = " ".join(_LINE_CONTROLS.sub(" ", self.text).split())
        return body if len(body) <= chars else body[: chars - 1].rsplit(" ", 1)[0] + "…"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tags"] = list(self.tags)
        d["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "record") -> Article:
        if not isinstance(data, dict):
            raise DataFormatError(f"{where}: expected a JSON object, got {type(data).__name__}")
        missing = [k for k in _REQUIRED if not str(data.get(k) or "").strip()]
        if missing:
            raise DataFormatError(f"{where}: article is missing required field(s) {missing}; needs id and title")
        unknown = set(data) - {"id", "title", "url", "text", "tags", "locale", "updated_at", "meta"}
        if unknown:
            raise DataFormatError(
                f"{where}: unknown article field(s) {sorted(unknown)}; "
                "valid fields are id, title, url, text, tags, locale, updated_at, meta"
            )
        # Each field of the type it says, or an error naming the record: a list coerced to "['x']" became a title,
        # and a `"meta": [1]` or `"tags": 5` failed with a TypeError that named no line.
        for name, kinds, expected in _FIELD_TYPES:
            value = data.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
                raise DataFormatError(f"{where}: {name} must be {expected}, got {shown(value)}")
        tags = data.get("tags") or ()
        if isinstance(tags, str):
            tags = (tags,)
        if any(isinstance(t, bool) or not isinstance(t, (str, int)) for t in tags):
            raise DataFormatError(f"{where}: tags must be a string or a list of strings, got {shown(tags)}")
        return cls(
            id=str(data["id"]).strip(),
            title=str(data["title"]).strip(),
            url=str(data.get("url") or "").strip(),
            text=str(data.get("text") or ""),
            tags=tuple(str(t) for t in tags),
            locale=data.get("locale") or None,
            updated_at=_parse_time(data.get("updated_at"), where),
            meta=dict(data.get("meta") or {}),
        )


def _parse_time(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, bool):
        raise DataFormatError(f"{where}: updated_at {value!r} is not ISO-8601 or a unix time")
    elif isinstance(value, (int, float)):
        try:
            dt = datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, ValueError, OSError):  # NaN, infinity, or beyond the platform's time_t
            raise DataFormatError(f"{where}: updated_at {value!r} is not a unix time this platform holds") from None
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise DataFormatError(f"{where}: updated_at {value!r} is not ISO-8601 or a unix time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _page_urls(article: Article) -> list[str]:
    """The urls a browser may show for this article: its own and the page's `<link rel="canonical">`."""
    urls = [article.url] if article.url else []
    canonical = article.meta.get("canonical")
    if isinstance(canonical, str) and canonical.strip():
        urls.append(canonical)
    return urls


class KnowledgeBase:
    """Articles by id, with a url -> id lookup (exact, then without query string and `.html`)."""

    def __init__(self, articles: Iterable[Article] = ()) -> None:
        self._by_id: dict[str, Article] = {}
        self._by_url: dict[str, str] = {}
        self._by_loose_url: dict[str, str] = {}
        for a in articles:
            self.upsert(a)

    def upsert(self, article: Article) -> None:
        article = checked_article(article)  # the url policy, at ingest: an unsafe url is dropped with a warning
        old = self._by_id.get(article.id)
        if old is not None:
            self._drop_urls(old)
        self._by_id[article.id] = article
        for n, url in enumerate(_page_urls(article)):
            for table, key in ((self._by_url, normalize_url(url)), (self._by_loose_url, _loose_url(url))):
                # An article's own url always names it; a canonical only names it where no article's own url is
                # that url. A page's markup is untrusted: `<link rel="canonical" href="/pricing.html">` on one page
                # took another article's url over, and every view of that article was tracked as the claimant.
                if (n == 0 and article.url) or not self._owns(table, key):
                    table[key] = article.id

    def remove(self, article_id: str) -> Article:
        art = self._by_id.pop(article_id, None)
        if art is None:
            raise UnknownArticleError(f"no article with id {shown(article_id)}")
        self._drop_urls(art)
        return art

    def _owns(self, table: dict[str, str], key: str) -> bool:
        """Whether `key` is the own url (not a canonical) of the article it now names."""
        holder = self._by_id.get(table.get(key, ""))
        if holder is None or not holder.url:
            return False
        return key in (normalize_url(holder.url), _loose_url(holder.url))

    def _drop_urls(self, article: Article) -> None:
        """Forget the url -> id links only where they are this article's (two articles may share a url)."""
        for url in _page_urls(article):
            for table, key in ((self._by_url, normalize_url(url)), (self._by_loose_url, _loose_url(url))):
                if table.get(key) == article.id:
                    del table[key]

    def get(self, article_id: str) -> Article:
        try:
            return self._by_id[article_id]
        except KeyError:
            raise UnknownArticleError(f"no article with id {shown(article_id)} in the knowledge base") from None

    def find(self, id_or_url: str | None) -> Article | None:
        """The article with this id or url, else None (pages outside the KB are normal)."""
        if not id_or_url:
            return None
        if id_or_url in self._by_id:
            return self._by_id[id_or_url]
        exact, loose = _url_keys(id_or_url)
        aid = self._by_url.get(exact) or self._by_loose_url.get(loose)
        return self._by_id.get(aid) if aid else None

    def find_many(self, ids_or_urls: Sequence[str]) -> list[Article | None]:
        """`find` of each, in order; ids are looked up in one pass (a suggestion's candidate pool is ids), only the
        rest as urls."""
        out: list[Article | None] = list(map(self._by_id.get, ids_or_urls))
        for i in [i for i, a in enumerate(out) if a is None]:
            out[i] = self.find(ids_or_urls[i])
        return out

    def resolve(self, id_or_url: str) -> Article:
        art = self.find(id_or_url)
        if art is None:
            raise UnknownArticleError(f"{shown(id_or_url)} is neither an article id nor a known article url")
        return art

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Article]:
        return iter(self._by_id.values())

    def ids(self) -> list[str]:
        return list(self._by_id)


# ---------------------------------------------------------------- ingestion


def _read_utf8(path: Path) -> str:
    return _decode_utf8(path.read_bytes(), path)


def _decode_utf8(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{path} is not valid UTF-8 (byte {exc.start}); re-encode it as UTF-8 before indexing"
        ) from None


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[Article]:
    p = Path(path)
    for n, line in enumerate(_read_utf8(p).splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{p}:{n}: invalid JSON ({exc.msg})") from None
        except RecursionError:
            raise DataFormatError(f"{p}:{n}: JSON nested too deep for an article record") from None
        yield Article.from_dict(data, where=f"{p}:{n}")


def load_articles(
    source: str | os.PathLike[str],
    base_url: str = "",
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    default_exclude: bool = True,
    max_file_bytes: int | None = None,
) -> list[Article]:
    """Articles from a .jsonl file or a folder of .md/.html files; duplicate ids are an error.

    For a folder, `include`/`exclude` glob patterns choose the files, and non-article pages (source listings,
    indexes, search pages, assets: `plugin.ingest.DEFAULT_EXCLUDE`) are skipped unless `default_exclude=False`,
    and so are files over `max_file_bytes` (None: `plugin.ingest.DEFAULT_MAX_FILE_BYTES`, 20 MB).
    """
    p = Path(source)
    if p.is_dir():
        from .ingest import DEFAULT_MAX_FILE_BYTES, scan_folder  # ingest builds on this module's Article

        cap = DEFAULT_MAX_FILE_BYTES if max_file_bytes is None else max_file_bytes
        scan = scan_folder(
            p, base_url, include=include, exclude=exclude, default_exclude=default_exclude, max_file_bytes=cap
        )
        return scan.articles
    if p.is_file() and p.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        arts = list(iter_jsonl(p))
    elif not p.exists():
        raise DataFormatError(f"knowledge-base source {p} does not exist")
    else:
        raise DataFormatError(f"cannot read {p}: give a .jsonl file or a folder of .md/.html files")
    check_articles(arts, p)
    return arts


def check_articles(articles: Sequence[Article], source: object) -> None:
    """A knowledge base read from `source` must hold at least one article and no id twice."""
    seen: set[str] = set()
    for a in articles:
        if a.id in seen:
            raise DataFormatError(f"duplicate article id {a.id!r} in {source}")
        seen.add(a.id)
    if not articles:
        raise DataFormatError(f"no articles found in {source}")
