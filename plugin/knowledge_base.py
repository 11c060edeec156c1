"""The articles that can be suggested, and how they are read from JSONL files or folders of Markdown/HTML."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .errors import DataFormatError, UnknownArticleError, shown
from .urls import checked_article

__all__ = ["Article", "KnowledgeBase", "load_articles", "normalize_url"]

_REQUIRED = ("id", "title")


def normalize_url(url: str) -> str:
    """Compare urls without scheme noise, fragment, query-less trailing slash or case in the host."""
    u = url.strip().split("#", 1)[0]
    u = re.sub(r"^https?://", "", u, flags=re.I)
    if "/" in u:
        host, rest = u.split("/", 1)
        u = host.lower() + "/" + rest
    else:
        u = u.lower()
    return u.rstrip("/")


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

    def embed_text(self) -> str:
        return f"{self.title}\n{self.text}" if self.text else self.title

    def snippet(self, chars: int = 160) -> str:
        body = " ".join(self.text.split())
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
        tags = data.get("tags") or ()
        if isinstance(tags, str):
            tags = (tags,)
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
    elif isinstance(value, (int, float)):
        dt = datetime.fromtimestamp(float(value), tz=timezone.utc)
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise DataFormatError(f"{where}: updated_at {value!r} is not ISO-8601 or a unix time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class KnowledgeBase:
    """Articles by id, with a url -> id lookup."""

    def __init__(self, articles: Iterable[Article] = ()) -> None:
        self._by_id: dict[str, Article] = {}
        self._by_url: dict[str, str] = {}
        for a in articles:
            self.upsert(a)

    def upsert(self, article: Article) -> None:
        article = checked_article(article)  # the url policy, at ingest: an unsafe url is dropped with a warning
        old = self._by_id.get(article.id)
        if old is not None and old.url:
            self._drop_url(old)
        self._by_id[article.id] = article
        if article.url:
            self._by_url[normalize_url(article.url)] = article.id

    def remove(self, article_id: str) -> Article:
        art = self._by_id.pop(article_id, None)
        if art is None:
            raise UnknownArticleError(f"no article with id {shown(article_id)}")
        if art.url:
            self._drop_url(art)
        return art

    def _drop_url(self, article: Article) -> None:
        """Forget the url -> id link only if it is this article's (two articles may share a url)."""
        key = normalize_url(article.url)
        if self._by_url.get(key) == article.id:
            del self._by_url[key]

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
        aid = self._by_url.get(normalize_url(id_or_url))
        return self._by_id.get(aid) if aid else None

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
    raw = path.read_bytes()
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
        yield Article.from_dict(data, where=f"{p}:{n}")


class _HTMLText(HTMLParser):
    _SKIP = {"script", "style", "nav", "header", "footer", "noscript"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.h1 = ""
        self.parts: list[str] = []
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            if self._stack.pop() == tag:
                break

    def handle_data(self, data: str) -> None:
        if any(t in self._SKIP for t in self._stack):
            return
        cur = self._stack[-1] if self._stack else ""
        if cur == "title":
            self.title += data
        elif cur == "h1" and not self.h1:
            self.h1 = data.strip()
        if cur != "title":
            self.parts.append(data)


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


def _article_from_file(path: Path, root: Path, base_url: str) -> Article:
    rel = path.relative_to(root).as_posix()
    raw = _read_utf8(path)
    url = base_url.rstrip("/") + "/" + rel if base_url else rel
    if path.suffix.lower() in (".html", ".htm"):
        parser = _HTMLText()
        parser.feed(raw)
        title = (parser.title or parser.h1 or path.stem).strip()
        body = re.sub(r"\s+", " ", " ".join(parser.parts)).strip()
        return Article(id=rel, title=title, url=url, text=body)  # the parser already decoded entities
    meta, body = _front_matter(raw)
    m = re.search(r"^#\s+(.+)$", body, flags=re.M)
    title = meta.get("title") or (m.group(1).strip() if m else path.stem.replace("-", " ").replace("_", " "))
    tags = tuple(t.strip() for t in meta.get("tags", "").strip("[]").split(",") if t.strip())
    return Article(
        id=meta.get("id") or rel,
        title=title,
        url=meta.get("url") or url,
        text=body,
        tags=tags,
        locale=meta.get("locale") or None,
        updated_at=_parse_time(meta.get("updated_at") or path.stat().st_mtime, str(path)),
    )


def iter_folder(root: str | os.PathLike[str], base_url: str = "") -> Iterator[Article]:
    r = Path(root)
    for path in sorted(r.rglob("*")):
        if path.is_file() and path.suffix.lower() in (".md", ".markdown", ".html", ".htm"):
            yield _article_from_file(path, r, base_url)


def load_articles(source: str | os.PathLike[str], base_url: str = "") -> list[Article]:
    """Articles from a .jsonl file or a folder of .md/.html files; duplicate ids are an error."""
    p = Path(source)
    if p.is_dir():
        arts = list(iter_folder(p, base_url))
    elif p.is_file() and p.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        arts = list(iter_jsonl(p))
    elif not p.exists():
        raise DataFormatError(f"knowledge-base source {p} does not exist")
    else:
        raise DataFormatError(f"cannot read {p}: give a .jsonl file or a folder of .md/.html files")
    seen: set[str] = set()
    for a in arts:
        if a.id in seen:
            raise DataFormatError(f"duplicate article id {a.id!r} in {p}")
        seen.add(a.id)
    if not arts:
        raise DataFormatError(f"no articles found in {p}")
    return arts

