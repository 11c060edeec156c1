"""The url policy: which article urls may leave the plugin.

A KB, a page or a visitor can put any string in a url field. Only two kinds are ever emitted — in a
suggestion's JSON, a rendered link, a tool artifact, a retriever Document, the demo site — because only
these cannot run code when a browser follows them:

  * absolute http(s) urls with a host: `https://kb.example/json`;
  * relative references with no scheme: `/docs/json` (site-relative) or `guide/json.html` (path-relative).

Everything else is refused: `javascript:`, `data:`, `vbscript:` and every other scheme in any case;
protocol-relative `//evil.example` (it leaves the site); backslashes (browsers read `/\\evil` as `//evil`);
whitespace, control, invisible or bidi-control characters anywhere (browsers drop tabs and newlines, so
`java\\tscript:` is `javascript:`; a soft hyphen vanishes from a host; U+202E reverses how a link reads); user info
(`https://kb.example@evil.example/` shows one host and opens another, and `https://user:pass@host` hands every
visitor a password); parentheses that do not balance (written into Markdown as `[title](url)` — by a chat UI or
by a model citing the tool's data — `https://kb.example/a)[x](javascript:…)` would end the link early and open a
`javascript:` one); and urls whose HTML-entity- or percent-decoded form is refused (`javascript&#58;…`,
`%6Aavascript:…`), because a consumer that decodes once before writing the link would make them live.

`safe_url` is the check for every output; `checked_article` is the one call ingestion makes: it keeps the
article and drops only its url, with a warning that names the article.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from .knowledge_base import Article

__all__ = ["safe_url", "is_safe_url", "checked_article", "logged_url", "ALLOWED_SCHEMES"]

logger = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("http", "https")
# Characters that browsers strip or reinterpret inside a url, that close an attribute or a Markdown link, or that
# are invisible or reorder how the url is displayed: every default-ignorable code point of Unicode (soft hyphen,
# zero-width, bidi and other format controls, variation selectors, Hangul fillers, tags; IDNA drops several of
# them from a host).
_UNSAFE_CHARS = re.compile(
    r"[\s<>\"'`\\\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    r"\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    r"\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


def _parens_balance(url: str) -> bool:
    """Whether every ')' closes an earlier '(' and every '(' is closed: then a Markdown link written around the
    url, `[title](url)`, ends where the url does (CommonMark allows balanced parentheses in a destination)."""
    depth = 0
    for ch in url:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _scheme_ok(url: str) -> bool:
    """Whether a url (as a browser would read it) is http(s) with a host or a relative reference on this site."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return False
    if parts.scheme:
        return (
            parts.scheme.lower() in ALLOWED_SCHEMES
            and url[len(parts.scheme) : len(parts.scheme) + 3] == "://"
            and bool(parts.netloc)
            and "@" not in parts.netloc  # user info: a credential, or a host shown that is not the one opened
        )
    if url.startswith("//"):  # protocol-relative: another host
        return False
    # No scheme, so no colon before the first slash: some parsers would read one there (`javascript%3A`).
    first = re.split(r"[/?#]", url, maxsplit=1)[0]
    return ":" not in first


def is_safe_url(url: str | None) -> bool:
    """Whether `url` (already stripped) may be emitted: http(s) with a host, or a scheme-less relative reference.
    Its HTML-entity- and percent-decoded forms, read the way a browser reads them, must not name another
    scheme or host either."""
    if not url or _UNSAFE_CHARS.search(url) or not _scheme_ok(url) or not _parens_balance(url):
        return False
    for form in {html.unescape(url), unquote(url), unquote(html.unescape(url))} - {url}:
        as_browser_reads = _UNSAFE_CHARS.sub("", form.replace("\\", "/")).strip()
        if not _scheme_ok(as_browser_reads):
            return False
    return True


def safe_url(url: str | None) -> str:
    """The url (surrounding whitespace removed) if it may be emitted, else ''."""
    u = (url or "").strip()
    return u if is_safe_url(u) else ""


# user info after a scheme's "//": everything up to the last '@' before the path (a password may hold '@')
_USER_INFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*:)?//[^/?#]*@")


def logged_url(url: str) -> str:
    """The url as a log may keep it: without query string, fragment, path parameters or user info, any of which
    can carry a credential (a reset token, a signed link's signature, `;jsessionid=`, `user:pass@`). Done on the
    string, not by a url parser, so that no malformed url is ever logged whole."""
    cut = re.split(r"[?#;]", url, maxsplit=1)[0]
    return _USER_INFO.sub(lambda m: (m.group(1) or "") + "//" + m.group(0).rsplit("@", 1)[1], cut)


def checked_article(article: Article) -> Article:
    """The article as ingestion should keep it: unchanged when its url is allowed, otherwise the same article
    without a url (its text still answers questions; only the link could hurt), with a warning."""
    if not article.url:
        return article
    clean = safe_url(article.url)
    if clean == article.url:
        return article
    if not clean:
        logger.warning(
            "article %r: url %r dropped; only http(s) urls with a host and site-relative urls are allowed "
            "(the article is kept without a link)",
            article.id,
            logged_url(article.url)[:80],  # a refused url may hold a password (`https://user:pass@host`)
        )
    return replace(article, url=clean)
