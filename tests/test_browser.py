"""End to end in real headless Chromium (Debian `chromium`, driven by Playwright's Python package).

A uvicorn server on 127.0.0.1 (free port, background thread) serves the demo site over a small KB with the
hashing encoder; the browser reads two pages, sees suggestions about them (and none it already read), asks
the assistant, clicks a suggestion and the click lands in the session and the event log. An article whose
title and text carry markup must render inert.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from net_helpers import free_port
from services import unavailable

CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.browser]

if not Path(CHROMIUM).exists():
    unavailable(f"{CHROMIUM} not installed (apt-get install chromium)", module_level=True)
try:
    import uvicorn
    from playwright import sync_api
except ImportError as exc:
    unavailable(f"{exc.name} is not installed (pip install -e '.[dev]')", module_level=True)

from plugin import Article, EventLog, HashingEncoder, SessionRecommender, SuggestSettings  # noqa: E402

from adapters.http import ServerSettings  # noqa: E402
from adapters.http.demo_site import create_demo_app  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
XSS_TITLE = 'Objects <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> serialize'
XSS_ARTICLE = Article(
    "xss-trap",
    XSS_TITLE,
    "https://kb.test/xss",
    "serialize objects json pickle dump load binary text <script>window.__xss=3</script>",
    tags=("data",),
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from conftest import TOPIC_ARTICLES

    tmp = tmp_path_factory.mktemp("site")
    rec = SessionRecommender.build(
        [*TOPIC_ARTICLES, XSS_ARTICLE],
        encoder=HashingEncoder(256),
        progress=False,
        settings=SuggestSettings(min_score=-1.0, mmr_lambda=1.0),
    )
    log = tmp / "events.jsonl"
    url, server, thread = serve_in_thread(create_demo_app(rec, settings=ServerSettings(event_log=log)))
    yield url, rec, log
    server.should_exit = True
    thread.join(timeout=10)


def serve_in_thread(app):
    """uvicorn serving `app` on a free 127.0.0.1 port in a daemon thread: (base url, server, thread)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1200, "height": 820})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.errors = errors  # type: ignore[attr-defined]
    yield pg
    ctx.close()


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#session-suggest-widget[data-state=ready]", state="attached", timeout=15_000)


def _cards(page, scope: str = ".ss-list") -> list[str]:
    return page.locator(f"{scope} .ss-card").evaluate_all("els => els.map(e => e.dataset.articleId)")


def _session_id(page) -> str:
    return page.evaluate("localStorage.getItem('session-suggest:sid')")


def test_read_ask_click(site, page, tmp_path):
    base, rec, log = site
    _open(page, f"{base}/docs/ser-json")
    assert page.locator(".ss-launcher").is_visible()
    assert page.locator(".ss-panel").is_visible()

    page.click("text=Demo docs")  # navigate through the site like a visitor: the index page
    page.wait_for_selector("#session-suggest-widget[data-state=ready]", state="attached", timeout=15_000)
    assert page.url == f"{base}/"
    _open(page, f"{base}/docs/ser-pickle")
    shown = _cards(page)
    assert len(shown) == 3
    assert not {"ser-json", "ser-pickle"} & set(shown), "suggested a page the visitor already read"
    assert all(a.startswith("ser-") or a == "xss-trap" for a in shown), f"off-topic suggestions {shown}"
    reasons = page.locator(".ss-list .ss-reason").all_inner_texts()
    assert any("because you read" in r for r in reasons), reasons

    page.fill(".ss-input", "how do I store python objects in a binary file")
    page.click(".ss-send")
    reply = page.locator(".ss-msg.ss-bot:not(.pending)").first
    reply.wait_for(timeout=15_000)
    assert "no AI model" in reply.locator(".ss-text").inner_text()
    assert reply.locator(".ss-by").inner_text().startswith("Answered by: extractive")
    inline = _cards(page, ".ss-inline")
    assert inline and not {"ser-json", "ser-pickle"} & set(inline)
    page.screenshot(path=str(tmp_path / "widget.png"))
    if os.environ.get("WIDGET_SCREENSHOT"):
        shutil.copy(tmp_path / "widget.png", os.environ["WIDGET_SCREENSHOT"])

    sid = _session_id(page)
    target = shown[0]
    with page.expect_navigation():
        page.locator(f'.ss-list .ss-card[data-article-id="{target}"]').click()
    assert page.url.endswith(f"/docs/{target}")
    page.wait_for_selector("#session-suggest-widget[data-state=ready]", state="attached", timeout=15_000)

    events = rec.events(sid)
    assert [e.article_id for e in events if e.kind == "page_view"] == ["ser-json", "ser-pickle", target]  # not the index
    clicks = [e for e in events if e.kind == "suggestion_click"]
    assert [(c.article_id, c.position) for c in clicks] == [(target, 0)]
    impressions = {e.article_id for e in events if e.kind == "suggestion_impression"}
    assert set(shown) <= impressions
    logged = [e for e in EventLog(log).iter_events() if e.session_id == rec.event_log.pseudonym(sid) and e.kind == "suggestion_click"]
    assert [e.article_id for e in logged] == [target]
    assert page.errors == []  # type: ignore[attr-defined]


def _widget_markup_counts(page) -> list[int]:
    """img/script elements inside the widget's shadow root, and img elements anywhere in the document."""
    return page.evaluate(
        """() => {
            const root = document.querySelector('#session-suggest-widget').shadowRoot;
            return [root.querySelectorAll('img, script').length, document.querySelectorAll('img').length];
        }"""
    )


def test_markup_in_kb_renders_inert(site, page):
    base, rec, _ = site
    _open(page, f"{base}/docs/ser-json")
    _open(page, f"{base}/docs/ser-pickle")  # the trap is not read here, so it can be suggested
    cards = _cards(page)
    assert "xss-trap" in cards, f"the trap article should be suggested for this session, got {cards}"
    card = page.locator('.ss-list .ss-card[data-article-id="xss-trap"]').inner_text()
    assert "<img src=x onerror=" in card and "<script>" in card  # shown as text

    # The chat answer quotes the trap article (its title and text, markup included), again as text.
    page.fill(".ss-input", "objects serialize text script onerror img")
    page.click(".ss-send")
    reply = page.locator(".ss-msg.ss-bot:not(.pending)").first
    reply.wait_for(timeout=15_000)
    text = reply.locator(".ss-text").inner_text()
    assert "<img src=x onerror=" in text and "<script>window.__xss=3</script>" in text, text
    page.wait_for_timeout(300)  # an injected <img src=x onerror=...> would have fired by now
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert _widget_markup_counts(page) == [0, 0]
    assert page.errors == []  # type: ignore[attr-defined]


def test_markup_in_kb_renders_inert_on_its_own_page(site, page):
    base, _, _ = site
    _open(page, f"{base}/docs/xss-trap")
    assert "<img src=x onerror=" in page.locator("h1").inner_text()
    page.wait_for_timeout(300)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert _widget_markup_counts(page) == [0, 0]
    assert page.errors == []  # type: ignore[attr-defined]


@pytest.fixture
def other_site(site):
    """A site owner's page on another origin that embeds the widget with the one tag (text opt-in)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    api = site[0]
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>Our networking notes</title></head>
<body><main><h1>Networking notes</h1><p>How we open a tcp socket, connect, send and receive over the
network, and wrap the socket in tls with a certificate.</p></main>
<script src="{api}/static/widget.js" data-send-text="true" data-open="true" data-k="2" defer></script>
</body></html>""".encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/notes"
    server.shutdown()
    server.server_close()


def test_one_tag_on_another_origin_sends_text_on_opt_in(site, other_site, page):
    _, rec, _ = site
    page.goto(other_site)
    page.wait_for_selector("#session-suggest-widget[data-state=ready]", state="attached", timeout=15_000)
    shown = _cards(page)
    assert len(shown) == 2 and all(a.startswith("net-") for a in shown), shown  # from the page's own text
    sid = page.evaluate("localStorage.getItem('session-suggest:sid')")
    (view,) = [e for e in rec.events(sid) if e.kind == "page_view"]
    assert view.url == other_site and view.title == "Our networking notes" and "tcp socket" in view.text
    assert view.article_id is None
    assert page.errors == []  # type: ignore[attr-defined]
