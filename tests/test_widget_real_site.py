"""The widget on a site nobody here wrote: Django's documentation from Debian (`python-django-doc`, ~690 static
pages with their own, non-responsive theme), copied at test time with the one tag injected into every page and
served on one port, the API (the hardened app) on another port: cross-origin, as on a customer's site.

Driven in Chromium at 1280×800 and as a phone (390×844, touch, 3× pixels): the launcher and the panel lie inside
the visual viewport (what the visitor sees), the cards render whole, a click lands on the right page, the widget
logs no console errors, and a page view with the panel open costs at most 3 API requests with no preflight.
Django's docs are never copied into the repository; the KB is built from a few dozen of those pages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import chromium, require_browser
from net_helpers import files_in_thread, free_port, uvicorn_in_thread
from services import unavailable

pytestmark = [pytest.mark.browser]

require_browser()

from adapters.http import ServerSettings  # noqa: E402
from adapters.http.hardened import create_hardened_app  # noqa: E402
from plugin import Encoder, HashingEncoder, SessionRecommender, SuggestSettings, load_articles  # noqa: E402

DJANGO_DOCS = Path(os.environ.get("DJANGO_DOCS", "/usr/share/doc/python-django-doc/html"))
KB_SECTIONS = ("topics/db", "ref/models")  # 30 pages: the KB the suggestions come from
FIRST, SECOND = "topics/db/models.html", "topics/db/queries.html"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Mobile Safari/537.36",
}
READY = "#session-suggest-widget:is([data-state=ready],[data-state=empty],[data-state=error])"


def _copy_with_tag(src: Path, dst: Path, tag: str) -> int:
    """Copy the docs (symlinks into /usr/share/javascript followed) with `tag` before </body> of every page."""
    shutil.copytree(
        src, dst, symlinks=False, ignore_dangling_symlinks=True, ignore=shutil.ignore_patterns("_sources", "_images")
    )
    pages = 0
    for page in dst.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        if "</body>" in html:
            page.write_text(html.replace("</body>", tag + "\n</body>", 1), encoding="utf-8")
            pages += 1
    return pages


@dataclasses.dataclass
class DjangoSite:
    site: str  # the docs copy, with the tag
    api: str  # the hardened API, another origin
    rec: SessionRecommender
    hits: list[tuple[str, str]]  # (method, path) of every request the API received, in order


@contextlib.contextmanager
def serve_django_docs(
    docs: Path, work: Path, tag_attrs: str = 'data-open="true" data-k="3"', encoder: Encoder | None = None
) -> Iterator[DjangoSite]:
    """Django's docs copied under `work` with the widget tag, and the API over a KB of KB_SECTIONS, both served.
    The KB goes through the plugin's own ingestion (`load_articles`: main content, clean titles); `encoder`
    defaults to the hashing one (bench/screenshots.py passes MiniLM)."""
    site_port, api_port = free_port(), free_port()
    site, api = f"http://127.0.0.1:{site_port}", f"http://127.0.0.1:{api_port}"
    root = work / "html"
    assert _copy_with_tag(docs, root, f'<script src="{api}/static/widget.js" {tag_attrs} defer></script>') > 600
    articles = load_articles(docs, base_url=site, include=[f"{section}/*" for section in KB_SECTIONS])
    rec = SessionRecommender.build(
        articles, encoder=encoder or HashingEncoder(512), progress=False, settings=SuggestSettings(min_score=-1.0)
    )
    app = create_hardened_app(rec, secrets="s" * 48, settings=ServerSettings())
    # CORS preflights never reach the page's request events (Chromium's network service answers them), so
    # requests are counted where they arrive.
    hits: list[tuple[str, str]] = []

    async def recorded(scope, receive, send):
        if scope["type"] == "http":
            hits.append((scope["method"], scope["path"]))
        await app(scope, receive, send)

    with files_in_thread(root, port=site_port), uvicorn_in_thread(recorded, port=api_port):
        yield DjangoSite(site, api, rec, hits)


@pytest.fixture(scope="module")
def django_site(tmp_path_factory):
    if not (DJANGO_DOCS / "index.html").exists():
        unavailable(f"Django's docs are not at {DJANGO_DOCS} (apt-get install python-django-doc)", module_level=False)
    with serve_django_docs(
        DJANGO_DOCS,
        tmp_path_factory.mktemp("django-docs"),
        'data-open="true" data-k="3" data-title="Ask the Django docs"',
    ) as served:
        yield served


@contextlib.contextmanager
def _tab(browser, **context):
    """A page in a fresh browsing context (own storage, so its own visitor), closed on exit."""
    ctx = browser.new_context(**context)
    try:
        yield ctx, ctx.new_page()
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


GEOMETRY = """() => {
    const root = document.querySelector('#session-suggest-widget').shadowRoot;
    const rect = el => { const b = el.getBoundingClientRect();
                         return {left: b.left, top: b.top, right: b.right, bottom: b.bottom, width: b.width, height: b.height}; };
    const vv = window.visualViewport;
    const shown = el => !!el && getComputedStyle(el).display !== 'none' && !el.closest('[hidden]');
    return {
        vv: {left: vv.offsetLeft, top: vv.offsetTop, right: vv.offsetLeft + vv.width, bottom: vv.offsetTop + vv.height,
             width: vv.width, height: vv.height, scale: vv.scale},
        layoutWidth: document.documentElement.scrollWidth,
        launcher: shown(root.querySelector('.ss-launcher')) ? rect(root.querySelector('.ss-launcher')) : null,
        panel: shown(root.querySelector('.ss-panel')) ? rect(root.querySelector('.ss-panel')) : null,
        cards: [...root.querySelectorAll('.ss-list .ss-card')].map(c => ({
            rect: rect(c), href: c.href, id: c.dataset.articleId,
            title: c.querySelector('.ss-card-title').textContent,
            snippet: c.querySelector('.ss-snippet') ? c.querySelector('.ss-snippet').textContent : '',
            snippetHeight: c.querySelector('.ss-snippet') ? c.querySelector('.ss-snippet').getBoundingClientRect().height : 0,
            snippetLine: c.querySelector('.ss-snippet') ? parseFloat(getComputedStyle(c.querySelector('.ss-snippet')).lineHeight) || 0 : 0,
            reason: c.querySelector('.ss-reason') ? c.querySelector('.ss-reason').textContent : ''})),
    };
}"""

SLACK = 1.0  # px: sub-pixel rounding of transformed boxes


def in_view(box: dict | None, vv: dict) -> bool:
    """Whether a box (getBoundingClientRect) lies inside the visual viewport `vv` (both from GEOMETRY)."""
    return (
        box is not None
        and box["width"] > 0
        and box["height"] > 0
        and box["left"] >= vv["left"] - SLACK
        and box["top"] >= vv["top"] - SLACK
        and box["right"] <= vv["right"] + SLACK
        and box["bottom"] <= vv["bottom"] + SLACK
    )


def _inside(box: dict | None, vv: dict, what: str) -> None:
    assert in_view(box, vv), f"{what} {box} is not shown inside the visible viewport {vv}"


def _visit(page, url: str, hits: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Open url, wait for the widget and for the network to settle; the API requests (preflights included) that
    this page view made."""
    before = len(hits)
    page.goto(url)
    page.wait_for_selector(READY, state="attached", timeout=15_000)
    page.wait_for_load_state("networkidle")
    return [(method, path) for method, path in hits[before:] if path.startswith("/v1/")]


@pytest.fixture(params=["desktop", "phone"])
def visitor(request, browser, django_site):
    """A browsing context at desktop or phone size; `.widget_errors` collects the console errors that come from
    the widget or its API (a failed request, a CORS refusal, an exception in widget.js), not the site's own."""
    api = django_site.api
    with _tab(browser, **(DESKTOP if request.param == "desktop" else PHONE)) as (_, page):
        page.widget_errors = []  # type: ignore[attr-defined]

        def on_console(msg):
            where = (msg.location or {}).get("url", "")
            if msg.type == "error" and (where.startswith(api) or api in msg.text or "session-suggest" in msg.text):
                page.widget_errors.append(f"{msg.text} ({where})")  # type: ignore[attr-defined]

        def on_page_error(exc):
            if "widget.js" in (exc.stack or "") or "session-suggest" in str(exc):
                page.widget_errors.append(str(exc))  # type: ignore[attr-defined]

        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        page.kind = request.param  # type: ignore[attr-defined]
        yield page


def test_widget_is_in_view_cards_whole_few_requests_and_clicks_land(django_site, visitor):
    site, rec, hits = django_site.site, django_site.rec, django_site.hits
    page = visitor
    first = _visit(page, f"{site}/{FIRST}", hits)
    second = _visit(page, f"{site}/{SECOND}", hits)

    # At most 3 API requests per page view (the first one creates the session), and no CORS preflight.
    for label, reqs in (("first", first), ("second", second)):
        assert len(reqs) <= 3 and not [r for r in reqs if r[0] == "OPTIONS"], f"{label} page view: {reqs}"
    assert [m for m, _ in first] == ["POST", "POST", "POST"] and first[0][1] == "/v1/sessions", first
    assert len(second) == 2 and all(p.endswith("/events/batch") for _, p in second), second

    geo = page.evaluate(GEOMETRY)
    vv = geo["vv"]
    if page.kind == "phone":  # type: ignore[attr-defined]
        # Django's theme is not responsive: the phone lays it out ~1000 px wide, far more than it shows.
        assert geo["layoutWidth"] > vv["width"] * 2, geo
        # The open panel is a full-width bottom sheet of the visible area, and it leaves the top in view.
        assert abs(geo["panel"]["width"] - vv["width"]) <= SLACK and abs(geo["panel"]["bottom"] - vv["bottom"]) <= SLACK
        assert geo["panel"]["top"] > vv["top"] + vv["height"] * 0.2, geo["panel"]
    else:
        assert geo["panel"]["width"] == pytest.approx(400, abs=SLACK) and geo["launcher"] is not None
        _inside(geo["launcher"], vv, "launcher")
    _inside(geo["panel"], vv, "panel")

    # Three cards, each whole inside the panel: a title, a snippet on one line, the reason.
    cards = geo["cards"]
    assert len(cards) == 3, cards
    for c in cards:
        _inside(c["rect"], geo["panel"], f"card {c['id']}")
        assert c["title"].strip() and c["snippet"].strip() and c["reason"].startswith("because you read"), c
        assert "\n" not in c["snippet"] and c["snippetHeight"] <= c["snippetLine"] * 1.2, c
        assert c["href"].startswith(f"{site}/") and c["id"] not in (FIRST, SECOND), c

    # Scrolled far down and right on the wide page, the widget follows what the visitor sees.
    page.evaluate("window.scrollTo(document.documentElement.scrollWidth, document.documentElement.scrollHeight / 2)")
    page.wait_for_timeout(200)
    geo = page.evaluate(GEOMETRY)
    _inside(geo["panel"], geo["vv"], "panel after scrolling")

    # Closed, the launcher is in view too; it opens the panel again.
    page.get_by_role("button", name="Close").click()
    geo = page.evaluate(GEOMETRY)
    assert geo["panel"] is None
    _inside(geo["launcher"], geo["vv"], "launcher after closing")
    page.get_by_role("button", name="Ask the Django docs").click()
    assert page.evaluate(GEOMETRY)["panel"] is not None

    # A click lands on the suggested page, and the session records the click and the new page view.
    target = cards[0]
    sid = page.evaluate("localStorage.getItem('session-suggest:sid')")
    with page.expect_navigation():
        page.locator(f'.ss-list .ss-card[data-article-id="{target["id"]}"]').click()
    assert page.url == target["href"]
    page.wait_for_selector(READY, state="attached", timeout=15_000)
    page.wait_for_load_state("networkidle")
    events = rec.events(sid)
    assert [e.article_id for e in events if e.kind == "page_view"] == [
        f"topics/db/{FIRST.split('/')[-1]}",
        f"topics/db/{SECOND.split('/')[-1]}",
        target["id"],
    ]
    assert [(e.article_id, e.position) for e in events if e.kind == "suggestion_click"] == [(target["id"], 0)]
    shown = {e.article_id for e in events if e.kind == "suggestion_impression"}
    assert {c["id"] for c in cards} <= shown
    assert page.widget_errors == []  # type: ignore[attr-defined]

    shots = os.environ.get("WIDGET_SCREENSHOTS")
    if shots:
        page.screenshot(path=str(Path(shots) / f"widget-{page.kind}.png"), scale="css")  # type: ignore[attr-defined]


def test_pinch_zoom_keeps_the_widget_in_view_and_its_size(django_site, browser):
    site, hits = django_site.site, django_site.hits
    with _tab(browser, **PHONE) as (ctx, page):
        _visit(page, f"{site}/{FIRST}", hits)
        before = page.evaluate(GEOMETRY)
        cdp = ctx.new_cdp_session(page)
        cdp.send("Emulation.setPageScaleFactor", {"pageScaleFactor": 2.5})  # the visitor zooms in to read
        page.wait_for_function("Math.abs(window.visualViewport.scale - 2.5) < 0.01")
        page.evaluate("window.scrollTo(300, 900)")
        page.wait_for_timeout(200)
        geo = page.evaluate(GEOMETRY)
        vv = geo["vv"]
        assert vv["scale"] == pytest.approx(2.5, abs=0.01)
        _inside(geo["panel"], vv, "panel when zoomed in")
        # Same size on screen as before the zoom: CSS size times the zoom is what the visitor sees.
        assert geo["panel"]["width"] * vv["scale"] == pytest.approx(
            before["panel"]["width"] * before["vv"]["scale"], abs=2
        )


def test_keyboard_and_screen_reader(django_site, browser):
    site, hits = django_site.site, django_site.hits
    with _tab(browser, **DESKTOP) as (ctx, page):
        _visit(page, f"{site}/{FIRST}", hits)
        active = (
            "() => { const r = document.querySelector('#session-suggest-widget').shadowRoot; "
            "const a = r.activeElement; return a ? (a.getAttribute('aria-label') || a.className) : null; }"
        )
        dialog = page.get_by_role("dialog", name="Ask the Django docs")
        launcher = page.get_by_role("button", name="Ask the Django docs")
        assert dialog.is_visible() and launcher.get_attribute("aria-expanded") == "true"
        assert page.evaluate(active) is None  # opened on load: it did not take the focus from the page
        assert page.get_by_role("textbox", name="Your question").is_visible()

        page.get_by_role("textbox", name="Your question").focus()
        page.keyboard.press("Escape")  # closes, and the focus goes back where the panel came from
        assert not dialog.is_visible() and launcher.get_attribute("aria-expanded") == "false"
        assert page.evaluate(active) == "ss-launcher"
        page.keyboard.press("Enter")  # the launcher reopens it and the focus moves into it
        assert dialog.is_visible() and page.evaluate(active) == "ss-panel"
        order = []
        for _ in range(5):
            page.keyboard.press("Tab")
            order.append(page.evaluate(active))
        assert order[:3] == ["Move to the other side", "Close", "ss-h ss-toggle"], order
        assert order[3:] == ["ss-card"] * 2, order
        launcher.focus()
        page.keyboard.press("Escape")  # also from the launcher
        assert not dialog.is_visible() and page.evaluate(active) == "ss-launcher"
        launcher.click()

        side = (
            "() => document.querySelector('#session-suggest-widget').shadowRoot.querySelector('.ss-frame').dataset.side"
        )
        page.get_by_role("button", name="Move to the other side").click()  # off the page's own corner
        assert page.evaluate(side) == "left"
        geo = page.evaluate(GEOMETRY)
        assert geo["panel"]["left"] < 100 and geo["launcher"]["left"] < 100, geo
        _visit(page, f"{site}/{SECOND}", hits)
        assert page.evaluate(side) == "left"  # remembered on the next page


@pytest.mark.parametrize(("scheme", "dark"), [("dark", True), ("light", False)])
def test_follows_the_visitors_colour_scheme(django_site, browser, scheme, dark):
    site, hits = django_site.site, django_site.hits
    with _tab(browser, color_scheme=scheme, **DESKTOP) as (ctx, page):
        _visit(page, f"{site}/{FIRST}", hits)
        rgb = page.evaluate("""() => getComputedStyle(document.querySelector('#session-suggest-widget').shadowRoot
                                .querySelector('.ss-panel')).backgroundColor""")
        r, g, b = (int(x) for x in re.findall(r"\d+", rgb)[:3])
        assert ((r + g + b) / 3 < 80) is dark, rgb
