"""End to end in real headless Chromium (Debian `chromium`, driven by Playwright's Python package).

A uvicorn server on 127.0.0.1 (free port, background thread) serves the demo site over a small KB with the
hashing encoder; the browser reads two pages, sees suggestions about them (and none it already read), asks
the assistant, clicks a suggestion and the click lands in the session and the event log. An article whose
title and text carry markup must render inert.
"""

from __future__ import annotations

import os
import shutil

import pytest
from browser_helpers import chromium, require_browser
from net_helpers import files_in_thread, uvicorn_in_thread

pytestmark = [pytest.mark.browser]

require_browser()

from adapters.http import ServerSettings  # noqa: E402
from adapters.http.demo_site import create_demo_app  # noqa: E402
from plugin import Article, EventLog, HashingEncoder, SessionRecommender, SuggestSettings  # noqa: E402

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
    app = create_demo_app(rec, settings=ServerSettings(event_log=log))
    with uvicorn_in_thread(app) as base:
        yield base, rec, log


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


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
    gap = page.evaluate("""() => {
        const r = document.querySelector('#session-suggest-widget').shadowRoot;
        const log = r.querySelector('.ss-log').getBoundingClientRect();
        const asked = r.querySelector('.ss-msg.ss-user').getBoundingClientRect();
        return [asked.top - log.top, log.bottom - asked.bottom];
    }""")
    assert gap[0] >= 0 and gap[1] >= 0, gap  # the log shows the question, then as much of its answer as fits
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
    assert [e.article_id for e in events if e.kind == "page_view"] == [
        "ser-json",
        "ser-pickle",
        target,
    ]  # not the index
    clicks = [e for e in events if e.kind == "suggestion_click"]
    assert [(c.article_id, c.position) for c in clicks] == [(target, 0)]
    impressions = {e.article_id for e in events if e.kind == "suggestion_impression"}
    assert set(shown) <= impressions
    logged = [
        e
        for e in EventLog(log).iter_events()
        if e.session_id == rec.event_log.pseudonym(sid) and e.kind == "suggestion_click"
    ]
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


def _embedding_page(api: str, title: str, body: str, **tag: str) -> str:
    attrs = " ".join(f'data-{k.replace("_", "-")}="{v}"' for k, v in tag.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>
<body>{body}
<script src="{api}/static/widget.js" {attrs} defer></script>
</body></html>"""


@pytest.fixture
def other_site(site, tmp_path):
    """A site owner's pages on another origin that embed the widget with the one tag."""
    api = site[0]
    (tmp_path / "notes.html").write_text(
        _embedding_page(
            api,
            "Our networking notes",
            """<main><h1>Networking notes</h1><p>How we open a tcp socket, connect, send and receive over the
network, and wrap the socket in tls with a certificate.</p></main>""",
            send_text="true",
            open="true",
            k="2",
        ),
        encoding="utf-8",
    )
    # A stylesheet that would wreck a naive widget: tiny root font, every div transformed (a transformed
    # ancestor captures position:fixed), huge margins.
    (tmp_path / "hostile.html").write_text(
        _embedding_page(
            api,
            "Hostile styles",
            """<style>html { font-size: 6px } div { transform: translateX(300px) scale(.4); filter: blur(0);
margin: 900px; display: block !important } button { font-size: 40px !important }</style>
<main><h1>Sockets</h1><p>tcp socket network tls certificate</p></main>""",
            send_text="true",
            open="true",
            k="2",
        ),
        encoding="utf-8",
    )
    # A site that declares it is light only: the widget is light too, whatever the visitor's system prefers.
    (tmp_path / "light.html").write_text(
        _embedding_page(
            api,
            "Light only",
            '<meta name="color-scheme" content="light"><main><p>tcp socket</p></main>',
            send_text="true",
            open="true",
        ),
        encoding="utf-8",
    )
    # A site with a strict Content-Security-Policy (no inline script or style) and the hostile styles above as
    # its own stylesheet: the one tag must work there without a single violation.
    (tmp_path / "hostile.css").write_text(
        "html { font-size: 6px } div { transform: translateX(300px) scale(.4); filter: blur(0); margin: 900px;"
        " display: block !important } button { font-size: 40px !important }",
        encoding="utf-8",
    )
    csp = f"default-src 'none'; script-src {api}; style-src 'self' {api}; connect-src {api}"
    (tmp_path / "strict.html").write_text(
        f"""<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}"><title>Strict policy</title>
<link rel="stylesheet" href="hostile.css"></head>
<body><main><h1>Sockets</h1><p>tcp socket network tls certificate</p></main>
<script src="{api}/static/widget.js" data-send-text="true" data-open="true" data-k="2" defer></script>
</body></html>""",
        encoding="utf-8",
    )
    with files_in_thread(tmp_path) as base:
        yield base


def test_one_tag_on_another_origin_sends_text_on_opt_in(site, other_site, page):
    _, rec, _ = site
    page.goto(f"{other_site}/notes.html")
    page.wait_for_selector("#session-suggest-widget[data-state=ready]", state="attached", timeout=15_000)
    shown = _cards(page)
    assert len(shown) == 2 and all(a.startswith("net-") for a in shown), shown  # from the page's own text
    sid = page.evaluate("localStorage.getItem('session-suggest:sid')")
    (view,) = [e for e in rec.events(sid) if e.kind == "page_view"]
    assert view.url == f"{other_site}/notes.html" and view.title == "Our networking notes"
    # the text went to the session's page contents (the stored event keeps its hash)
    assert "tcp socket" in rec.store.contents(sid, [view.content_ref])[view.content_ref].text
    assert view.article_id is None
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_cut_at_a_length_limit_never_splits_a_character(site, page, tmp_path):
    """The widget cuts a page's title at 500 and its text at 20,000 UTF-16 units: a cut through an emoji kept half
    of it, which JSON.stringify writes as a lone "\\ud83d" and the server refuses (422): the page view was lost and
    the visitor saw no suggestions."""
    api, rec, _ = site
    filler = ("tcp socket network tls certificate " * 600)[:19_999].rstrip() + "x"
    filler = filler + "y" * (19_999 - len(filler))
    (tmp_path / "long.html").write_text(
        _embedding_page(
            api, "t" * 499 + "\U0001f600 tail", f"<main><p>{filler}\U0001f600 more</p></main>", send_text="true"
        ),
        encoding="utf-8",
    )
    with files_in_thread(tmp_path) as base:
        page.goto(f"{base}/long.html")
        widget = page.wait_for_selector("#session-suggest-widget:not([data-state=loading])", state="attached")
        assert widget.get_attribute("data-state") == "ready"
    (view,) = [e for e in rec.events(_session_id(page)) if e.kind == "page_view"]
    assert view.title == "t" * 499
    stored = rec.store.contents(_session_id(page), [view.content_ref])[view.content_ref].text
    assert stored and filler.startswith(stored)  # the text arrived (the store keeps its first few thousand)
    assert page.errors == []  # type: ignore[attr-defined]


def test_page_styles_cannot_move_or_shrink_the_widget(site, other_site, page):
    page.goto(f"{other_site}/hostile.html")
    page.wait_for_selector("#session-suggest-widget[data-state=ready]", state="attached", timeout=15_000)
    box = page.evaluate("""() => {
        const r = document.querySelector('#session-suggest-widget').shadowRoot;
        const b = r.querySelector('.ss-panel').getBoundingClientRect();
        return {left: b.left, top: b.top, right: b.right, bottom: b.bottom, width: b.width,
                font: getComputedStyle(r.querySelector('.ss-send')).fontSize, w: innerWidth, h: innerHeight};
    }""")
    assert box["left"] >= 0 and box["top"] >= 0 and box["right"] <= box["w"] and box["bottom"] <= box["h"], box
    assert box["width"] == 400 and box["font"] == "14px", box  # px sizes: the page's root font size is not ours
    assert len(_cards(page)) == 2
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_site_with_a_strict_content_security_policy_runs_the_widget_without_violations(site, other_site, page):
    """Sites that forbid inline script and style (the safest policy) list the API's origin and nothing else: the
    widget then sets its styles through the CSSOM only, so nothing is blocked and the hostile page styles still
    cannot move it."""
    page.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI), true);"
    )
    page.goto(f"{other_site}/strict.html")
    page.wait_for_selector("#session-suggest-widget[data-state=ready]", state="attached", timeout=15_000)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__csp") == []
    box = page.evaluate("""() => {
        const host = document.querySelector('#session-suggest-widget');
        const r = host.shadowRoot;
        const b = r.querySelector('.ss-panel').getBoundingClientRect();
        return {left: b.left, top: b.top, right: b.right, bottom: b.bottom, width: b.width, w: innerWidth,
                h: innerHeight, hostTransform: getComputedStyle(host).transform,
                visible: getComputedStyle(r.querySelector('.ss-frame')).visibility};
    }""")
    assert box["hostTransform"] == "none" and box["visible"] == "visible", box
    assert box["left"] >= 0 and box["top"] >= 0 and box["right"] <= box["w"] and box["bottom"] <= box["h"], box
    assert box["width"] == 400, box
    assert len(_cards(page)) == 2
    assert page.errors == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("page_name", "scheme"), [("notes.html", "dark"), ("light.html", "light")])
def test_colour_scheme_follows_the_visitor_unless_the_site_declares_one(site, other_site, browser, page_name, scheme):
    ctx = browser.new_context(color_scheme="dark")
    try:
        pg = ctx.new_page()
        pg.goto(f"{other_site}/{page_name}")
        pg.wait_for_selector("#session-suggest-widget[data-state=ready]", state="attached", timeout=15_000)
        frame = "document.querySelector('#session-suggest-widget').shadowRoot.querySelector('.ss-frame')"
        assert pg.evaluate(f"{frame}.dataset.scheme") == scheme
    finally:
        ctx.close()
