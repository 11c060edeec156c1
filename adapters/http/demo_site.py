"""The demo site: a small docs site generated on the fly from the KB, with the chat widget embedded.

Every KB article becomes `/docs/<article id>`; its page carries `<meta name="session-suggest:article-id">`
so the widget's page views link to the article, and suggestion links point at the local pages
(`article_url_template="/docs/{id}"`). All KB text is escaped: it is data, never markup.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from plugin import Article, SessionRecommender
from plugin.urls import safe_url

from .app import create_app, single_threaded_compute
from .settings import ServerSettings

__all__ = ["create_demo_app", "serve_demo", "DEMO_URL_TEMPLATE"]

logger = logging.getLogger(__name__)

DEMO_URL_TEMPLATE = "/docs/{id}"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
{meta}
<style>
 body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #1d2330; background: #fbfbfd; }}
 header {{ background: #1f3b57; color: #fff; padding: .7rem 1.5rem; }}
 header a {{ color: #fff; text-decoration: none; font-weight: 600; }}
 main {{ max-width: 46rem; margin: 1.5rem auto 6rem; padding: 0 1.5rem; }}
 pre {{ white-space: pre-wrap; font-size: .85rem; background: #f1f3f7; padding: 1rem; border-radius: 6px; }}
 ul.modules {{ columns: 2; padding-left: 1.2rem; }}
 .note {{ color: #5b6475; font-size: .9rem; }}
</style>
</head>
<body>
<header><a href="/">Python standard library — demo docs</a></header>
<main>
{body}
</main>
<script src="/static/widget.js" data-send-text="true" data-open="true" data-k="3"
        data-title="Ask the docs" defer></script>
</body>
</html>
"""


def _page(title: str, body: str, article_id: str | None = None) -> str:
    if article_id:
        meta = f'<meta name="session-suggest:article-id" content="{html.escape(article_id, quote=True)}">'
    else:  # the index is navigation, not reading: no page view
        meta = '<meta name="session-suggest:page-view" content="off">'
    return _PAGE.format(title=html.escape(title), meta=meta, body=body)


def _link(article: Article) -> str:
    href = DEMO_URL_TEMPLATE.format(id=quote(article.id, safe=""))
    return f'<a href="{html.escape(href, quote=True)}">{html.escape(article.title)}</a>'


def _index_page(rec: SessionRecommender) -> str:
    arts = sorted(rec.kb, key=lambda a: a.id)
    items = "\n".join(f"<li>{_link(a)}</li>" for a in arts)
    body = (
        "<h1>Demo docs</h1>"
        f'<p class="note">{len(arts)} pages generated from the knowledge base. Open a few: the assistant in the '
        "corner suggests what to read next from what you have read, and answers questions with suggestions "
        "attached.</p>"
        f'<ul class="modules">{items}</ul>'
    )
    return _page("Demo docs", body)


def _article_page(art: Article) -> str:
    source = ""
    url = safe_url(art.url)  # the KB's url is untrusted: never a javascript: link on this page
    if url:
        source = f'<p class="note">Original: <a href="{html.escape(url, quote=True)}">{html.escape(url)}</a></p>'
    body = f"<article><h1>{html.escape(art.title)}</h1>{source}<pre>{html.escape(art.text)}</pre></article>"
    return _page(art.title, body, art.id)


def create_demo_app(
    rec: SessionRecommender, *, settings: ServerSettings | None = None, responder: Any = None
) -> FastAPI:
    """The API plus the generated docs pages (suggestion links resolve to the local pages)."""
    settings = settings or ServerSettings()
    if settings.article_url_template is None:
        settings = settings.model_copy(update={"article_url_template": DEMO_URL_TEMPLATE})
    app = create_app(rec, settings=settings, responder=responder)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(_index_page(rec))

    @app.get("/docs/{article_id}", response_class=HTMLResponse, include_in_schema=False)
    async def article(article_id: str) -> HTMLResponse:
        return HTMLResponse(_article_page(rec.kb.get(article_id)))  # UnknownArticleError -> 404 JSON

    return app


def serve_demo(rec: SessionRecommender, host: str = "127.0.0.1", port: int = 8000, *, event_log: Path) -> int:
    """Serve the demo site with uvicorn (one process) until interrupted; impressions and clicks go to `event_log`.

    `python -m plugin demo` finds this function by entry point and passes the log in its demo cache: the site
    never imports the command line back (that made a cycle)."""
    single_threaded_compute()
    app = create_demo_app(rec, settings=ServerSettings(event_log=event_log))
    print(f"\nDemo site with the chat widget: http://{host}:{port}/   (Ctrl-C to stop)")
    print(
        f"Impressions and clicks go to {event_log}; see them with: python -m plugin report --log {event_log}\n",
        flush=True,
    )
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).run()
    return 0
