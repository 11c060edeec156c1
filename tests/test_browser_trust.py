"""Hostile urls and titles in the KB, in real headless Chromium: every link on the demo site and in the widget
(suggestion cards, chat answers, their sources) is clicked, and nothing executes.

The KB is built through ingestion (which drops the unsafe urls) and then the hostile records are put back
behind its back, as an index saved before the url policy would hold them: the output check alone must hold.
Two servers: the demo site (links to its own /docs pages) and an API whose suggestions link to the KB's urls
(an empty url template), where every chip a site draws inherits what the url field says.
"""

from __future__ import annotations

import contextlib
from urllib.parse import urlsplit

import pytest
from browser_helpers import require_browser
from net_helpers import uvicorn_in_thread

require_browser()

from playwright import sync_api  # noqa: E402

# The Chromium fixture is test_browser's.
from test_browser import browser  # noqa: E402, F401  (fixture)

from adapters.http import ServerSettings
from adapters.http.demo_site import create_demo_app
from plugin import Article, HashingEncoder, SessionRecommender, SuggestSettings
from plugin.urls import is_safe_url

pytestmark = [pytest.mark.browser]

TEXT = "json serialize objects dumps loads text binary"
HOSTILE = [
    Article("h-js", 'JSON <img src=x onerror="window.__xss=11"> tips', "javascript:window.__xss=1;alert(1)", TEXT),
    Article("h-case", "Serialize </a><script>window.__xss=12</script> objects", "JaVaScRiPt:window.__xss=2", TEXT),
    Article("h-data", 'Objects " onmouseover="window.__xss=13" x="', "data:text/html,<script>alert(3)</script>", TEXT),
    Article("h-proto", "JSON [click](javascript:window.__xss=14) dumps", "//evil.test/steal", TEXT),
    Article("h-entity", "JSON &lt;b&gt; entities", "javascript&#58;window.__xss=4", TEXT),
    Article("h-space", "JSON loads spaced", " java\tscript:window.__xss=5", TEXT),
    Article("h-vb", "JSON vbscript", "vbscript:msgbox(1)", TEXT),
    Article("h-slash", "JSON backslash", "/\\evil.test/x", TEXT),
    Article("h-pct", "JSON percent", "%6Aavascript:window.__xss=6", TEXT),
    Article("h-userinfo", "JSON user info", "https://kb.test@evil.test/steal", TEXT),
    Article("h-paren", "JSON paren", "/docs/x)[y](javascript:window.__xss=7)", TEXT),
]


@pytest.fixture(scope="module")
def sites():
    from conftest import TOPIC_ARTICLES

    rec = SessionRecommender.build(
        [*TOPIC_ARTICLES, *HOSTILE],
        encoder=HashingEncoder(256),
        progress=False,
        settings=SuggestSettings(min_score=-1.0, mmr_lambda=1.0),
    )
    assert all(rec.kb.get(a.id).url == "" for a in HOSTILE)  # ingestion dropped every one
    for a in HOSTILE:  # ... and now a KB that never passed ingestion holds them
        rec.kb._by_id[a.id] = a
    with contextlib.ExitStack() as stack:
        demo = stack.enter_context(uvicorn_in_thread(create_demo_app(rec)))
        kb_links = stack.enter_context(
            uvicorn_in_thread(create_demo_app(rec, settings=ServerSettings(article_url_template="")))
        )
        yield [demo, kb_links]


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = ctx.new_page()
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    # Nothing leaves the machine: other hosts get a stub page (a followed external link is fine, not a script).
    pg.route(
        "**/*",
        lambda route: (
            route.continue_()
            if urlsplit(route.request.url).hostname == "127.0.0.1"
            else route.fulfill(status=200, body="external", content_type="text/plain")
        ),
    )
    pg.dialogs = dialogs  # type: ignore[attr-defined]
    # Each page load is a new visitor: otherwise the hostile articles, once read or clicked, are not suggested.
    pg.add_init_script("try { localStorage.clear(); } catch (e) {}")
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.errors = errors  # type: ignore[attr-defined]
    yield pg
    ctx.close()


def _load(page, url: str, ask: str | None) -> None:
    page.goto(url)
    page.wait_for_selector("#session-suggest-widget[data-state=ready]", state="attached", timeout=15_000)
    if ask:
        page.fill(".ss-input", ask)
        page.click(".ss-send")
        page.locator(".ss-msg.ss-bot:not(.pending)").first.wait_for(timeout=15_000)
    page.wait_for_timeout(150)


def _hrefs(page) -> list[str | None]:
    """Every anchor's href attribute, the widget's shadow DOM included (Playwright's css pierces it)."""
    return page.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")


def _settled_eval(page, script: str):
    """Evaluate once the page stops navigating (a card click navigates after its click event is sent)."""
    for _ in range(20):
        page.wait_for_load_state("load")
        try:
            return page.evaluate(script)
        except sync_api.Error as exc:
            if "context was destroyed" not in str(exc) and "navigat" not in str(exc):
                raise
            page.wait_for_timeout(200)
    raise AssertionError(f"{page.url} kept navigating")


def _nothing_ran(page) -> None:
    assert _settled_eval(page, "typeof window.__xss") == "undefined"
    assert page.dialogs == []  # type: ignore[attr-defined]
    assert urlsplit(page.url).scheme in ("http", "https"), page.url


@pytest.mark.parametrize("which", [0, 1], ids=["demo-pages", "kb-urls"])
def test_every_link_is_safe_and_clicking_it_runs_nothing(sites, page, which):
    base = sites[which]
    clicked = 0
    views = [(f"{base}/docs/{a.id}", None) for a in HOSTILE[:4]] + [(f"{base}/docs/h-pct", "json dumps and loads")]
    for url, ask in views:
        _load(page, url, ask)
        hrefs = _hrefs(page)
        cards = page.locator(".ss-card").evaluate_all("els => els.map(e => e.dataset.articleId)")
        assert any(c.startswith("h-") for c in cards), cards  # hostile articles are among the suggestions
        assert all(h is None or is_safe_url(h) for h in hrefs), hrefs
        assert not any(h and ("script" in h.lower() or h.startswith("data:")) for h in hrefs), hrefs
        for i in range(len(hrefs)):
            _load(page, url, ask)
            link = page.locator("a").nth(i)
            if not link.is_visible():
                continue
            link.click()
            page.wait_for_timeout(400)
            _nothing_ran(page)
            clicked += 1
    assert clicked >= 15
    assert page.errors == []  # type: ignore[attr-defined]


def test_index_titles_are_text_and_their_links_are_local(sites, page):
    base = sites[0]
    page.goto(f"{base}/")
    for a in HOSTILE:
        link = page.locator(f'a[href="/docs/{a.id}"]')
        assert link.inner_text() == a.title  # markup shown as text
    page.wait_for_timeout(200)
    _nothing_ran(page)
    assert page.evaluate("document.querySelectorAll('main img, main script').length") == 0
