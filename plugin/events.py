"""What a visitor does in a session: one immutable event per page view, article open, search or suggestion."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

from .errors import InvalidEventError

__all__ = ["EVENT_KINDS", "INTENT_KINDS", "CLICK_KINDS", "Event", "make_event", "short_title", "well_formed"]

EVENT_KINDS = ("page_view", "article_open", "search", "suggestion_impression", "suggestion_click")
# Kinds that say something about what the visitor wants; impressions only say what we showed.
INTENT_KINDS = frozenset({"page_view", "article_open", "search", "suggestion_click"})
# Kinds that put the visitor on an article: the items of a training session. An impression is not a click.
CLICK_KINDS = frozenset({"page_view", "article_open", "suggestion_click"})
_SURROGATE = re.compile("[\ud800-\udfff]")


def well_formed(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, as a UTF-8 decoder replaces a bad byte. JSON's "\\ud800"
    escape decodes to one, and no UTF-8 encoder writes it: left in a page title or a KB article, it fails every
    response, log line and store write that carries it. (ASCII and encodable text, nearly all, is checked in C.)"""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def short_title(title: str) -> str:
    """ "json — JSON encoder and decoder" reads better in a reason as "json"."""
    short = re.split(r"\s+[—|–]\s+|\s+-\s+", title.strip(), maxsplit=1)[0]
    return short if len(short) <= 60 else short[:59] + "…"


@dataclass(frozen=True)
class Event:
    session_id: str
    kind: str
    ts: float
    event_id: str
    url: str | None = None
    title: str | None = None
    text: str | None = None
    article_id: str | None = None
    query: str | None = None
    position: int | None = None  # rank of a shown/clicked suggestion
    meta: dict[str, Any] = field(default_factory=dict)
    # Set on the stored form of a page whose text was moved to the session's content store (`slim`): the hash
    # of the content it had, by which that text and its vector are found.
    content_ref: str | None = None

    @property
    def key(self) -> str:
        """What the event is about: article id, else url, else the search query."""
        return self.article_id or self.url or f"search:{self.query}"

    def content(self) -> str:
        """The text that represents this event when it is embedded."""
        if self.kind == "search":
            return self.query or ""
        parts = [p for p in (self.title, self.text) if p]
        return "\n".join(parts) if parts else (self.url or "")

    def content_hash(self) -> str:
        """Names the content: the same page text read in two sessions has one hash (kept by `slim`)."""
        if self.content_ref is not None:
            return self.content_ref
        return hashlib.sha256(self.content().encode("utf-8")).hexdigest()

    def slim(self) -> Event:
        """The event as a session store keeps it: without its page text, which lives once per content hash
        beside the session (so reading a session costs the same whatever its pages held)."""
        if self.text is None:
            return self
        return replace(self, text=None, content_ref=self.content_hash())

    def seen_keys(self) -> tuple[str, ...]:
        """What this event puts on the visitor's "already seen" list: 'a:' + article id and 'u:' + url of a visit."""
        if self.kind not in CLICK_KINDS:  # a page the visitor was on, not a search or an impression
            return ()
        return tuple(
            k for k in (f"a:{self.article_id}" if self.article_id else None, f"u:{self.url}" if self.url else None) if k
        )

    def label(self) -> str:
        """A short human name for reasons ("because you read …")."""
        if self.kind == "search":
            return f"your search “{self.query}”"
        if self.title:
            return short_title(self.title)
        return self.url or self.article_id or "a page"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        if cls is Event and _REQUIRED <= data.keys() <= _FIELDS:
            # a stored record, field for field: filled in directly at a third of the constructor's cost (a session
            # store decodes a long session's 20 context events on every suggestion; Event has no __post_init__)
            event = object.__new__(Event)
            event.__dict__.update(_DEFAULTS)
            event.__dict__["meta"] = {}
            event.__dict__.update(data)
            return event
        try:
            return cls(**data)
        except TypeError as exc:
            raise InvalidEventError(f"not an event record: {exc}") from None


_FIELDS = frozenset(f.name for f in fields(Event))
_REQUIRED = frozenset(f.name for f in fields(Event) if f.default is MISSING and f.default_factory is MISSING)
_DEFAULTS = {f.name: f.default for f in fields(Event) if f.default is not MISSING}


def _clean_text(value: str | bytes | None, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        # Documented fallback: undecodable bytes become U+FFFD rather than losing the event.
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        raise InvalidEventError(f"{name} must be a string, got {type(value).__name__}")
    value = well_formed(value.replace("\x00", "")).strip()
    if not value:
        return None
    return value[:limit]


def make_event(
    session_id: str,
    kind: str = "page_view",
    *,
    url: str | bytes | None = None,
    title: str | bytes | None = None,
    text: str | bytes | None = None,
    article_id: str | None = None,
    query: str | bytes | None = None,
    position: int | None = None,
    event_id: str | None = None,
    ts: float | None = None,
    max_text_chars: int = 20_000,
    max_title_chars: int = 500,
    max_url_chars: int = 2048,
    meta: dict[str, Any] | None = None,
) -> Event:
    """Validate and normalise one event; raise InvalidEventError saying what is missing."""
    if not isinstance(session_id, str) or not session_id.strip():
        raise InvalidEventError("session_id must be a non-empty string")
    if kind not in EVENT_KINDS:
        raise InvalidEventError(f"unknown event kind {kind!r}. Valid kinds are: {', '.join(EVENT_KINDS)}")
    url_c = _clean_text(url, "url", max_url_chars)
    title_c = _clean_text(title, "title", max_title_chars)
    text_c = _clean_text(text, "text", max_text_chars)
    query_c = _clean_text(query, "query", max_title_chars)
    if article_id is not None and (not isinstance(article_id, str) or not article_id.strip()):
        raise InvalidEventError("article_id must be a non-empty string when given")
    if kind == "search" and not query_c:
        raise InvalidEventError("a 'search' event needs a non-empty query")
    if kind in ("page_view", "article_open") and not (url_c or title_c or article_id or text_c):
        raise InvalidEventError(f"a {kind!r} event needs at least one of url, title, text or article_id")
    if kind.startswith("suggestion_") and not (article_id or url_c):
        raise InvalidEventError(f"a {kind!r} event needs the suggested article_id or url")
    if position is not None and (not isinstance(position, int) or position < 0):
        raise InvalidEventError("position must be a non-negative integer")
    return Event(
        session_id=session_id,
        kind=kind,
        ts=time.time() if ts is None else float(ts),
        event_id=event_id or uuid.uuid4().hex,
        url=url_c,
        title=title_c,
        text=text_c,
        article_id=article_id,
        query=query_c,
        position=position,
        meta=dict(meta or {}),
    )
