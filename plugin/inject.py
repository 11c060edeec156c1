"""Putting suggestions into an assistant's reply: Markdown, HTML, or a structured JSON payload.

Links already present in the reply are not suggested again. Article titles and snippets are data, never
markup: they are escaped for the target format, and only urls that pass `plugin.urls.safe_url` are emitted.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any, Literal

from .errors import ConfigError
from .suggestion import Suggestion
from .urls import safe_url

__all__ = ["FORMATS", "render", "inject_reply", "safe_url", "links_in"]

FORMATS = ("markdown", "html", "json")
HEADING = "Related articles"

_URL_RE = re.compile(r"(https?://[^\s<>\"')\]]+|(?<=\()/[^\s)]+(?=\))|href=\"([^\"]+)\")")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def links_in(reply: str) -> set[str]:
    found = set()
    for m in _URL_RE.finditer(reply or ""):
        found.add((m.group(2) or m.group(1)).rstrip(".,;:").rstrip("/"))
    return found


def _md_text(s: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", " ".join(s.split()))


def _new_ones(suggestions: Sequence[Suggestion], reply: str) -> list[Suggestion]:
    present = links_in(reply)
    out = []
    for s in suggestions:
        url = s.article.url.rstrip("/")
        if url and url in present:
            continue
        out.append(s)
    return out


def render(suggestions: Sequence[Suggestion], fmt: Literal["markdown", "html"] = "markdown") -> str:
    if not suggestions:
        return ""
    if fmt == "markdown":
        lines = [f"**{HEADING}**"]
        for s in suggestions:
            title = _md_text(s.article.title)
            url = safe_url(s.article.url)
            link = f"[{title}](<{url}>)" if url else title
            lines.append(f"- {link} — {_md_text(s.reason)}")
        return "\n".join(lines)
    if fmt == "html":
        items = []
        for s in suggestions:
            title = html.escape(s.article.title)
            url = safe_url(s.article.url)
            link = f'<a href="{html.escape(url, quote=True)}">{title}</a>' if url else title
            items.append(f"<li>{link} <small>{html.escape(s.reason)}</small></li>")
        return f'<aside class="suggestions"><h4>{HEADING}</h4><ul>{"".join(items)}</ul></aside>'
    raise ConfigError(f"unknown format {fmt!r}. Valid formats are: markdown, html")


def inject_reply(reply: str, suggestions: Sequence[Suggestion], fmt: str = "markdown") -> str | dict[str, Any]:
    """The reply with a suggestions block appended (json: {"reply", "suggestions"})."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}. Valid formats are: {', '.join(FORMATS)}")
    fresh = _new_ones(suggestions, reply)
    if fmt == "json":
        return {"reply": reply, "suggestions": [s.to_dict() for s in fresh]}
    block = render(fresh, fmt)  # type: ignore[arg-type]
    if not block:
        return reply
    sep = "\n\n" if fmt == "markdown" else "\n"
    return f"{reply.rstrip()}{sep}{block}"
