"""Retake the README's widget screenshots with the code of this working tree.

    python bench/screenshots.py [--out docs] [--only demo|django] [--django-docs /usr/share/doc/python-django-doc/html]
                                [--demo-cache DIR] [--encoder minilm|hashing]

- docs/widget.png: the demo site (`python -m plugin demo`: the stdlib-docs KB, cached where the demo caches it)
  at 1200×820; the visitor reads json, then pickle, and asks "how do I store python objects in a file".
- docs/widget-desktop.png, docs/widget-phone.png: Django's documentation from Debian's python-django-doc, served
  with the widget tag injected (the real-site test suite's `serve_django_docs`: a copy in a temporary folder,
  nothing enters the repository), over a KB of the 30 pages under topics/db and ref/models built through the
  plugin's own ingestion (`plugin.load_articles`); at 1280×800 and as a 390×844 phone, after reading "Making
  queries" and then "QuerySet API reference".

Both use the packaged all-MiniLM-L6-v2 by default, as a real deployment would. Chromium is Debian's
(/usr/bin/chromium), driven by Playwright; PNGs are written at CSS pixel size to keep them small.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import test_widget_real_site as site_tests  # noqa: E402
from browser_helpers import chromium  # noqa: E402
from net_helpers import uvicorn_in_thread  # noqa: E402

from plugin import HashingEncoder, SentenceTransformerEncoder  # noqa: E402

READ_FIRST, READ_SECOND = "topics/db/queries.html", "ref/models/querysets.html"
DEMO_READS = ("json", "pickle")
DEMO_QUESTION = "how do I store python objects in a file"
DEMO_VIEWPORT = {"viewport": {"width": 1200, "height": 820}}
DEMO_READY = "#session-suggest-widget[data-state=ready]"

logger = logging.getLogger("screenshots")


def demo_shot(browser, out: Path, cache: Path | None, encoder: str) -> Path:
    """docs/widget.png: the demo site after two reads and one question."""
    from adapters.http.demo_site import create_demo_app
    from plugin.cli import build_demo_recommender

    rec = build_demo_recommender(cache, encoder=encoder)
    path = out / "widget.png"
    with uvicorn_in_thread(create_demo_app(rec)) as base, site_tests._tab(browser, **DEMO_VIEWPORT) as (_, page):
        for article in DEMO_READS:
            page.goto(f"{base}/docs/{article}")
            page.wait_for_selector(DEMO_READY, state="attached", timeout=30_000)
            page.wait_for_load_state("networkidle")
        page.fill(".ss-input", DEMO_QUESTION)
        page.click(".ss-send")
        page.locator(".ss-msg.ss-bot:not(.pending)").first.wait_for(timeout=30_000)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)  # the log's scroll to the question is animated
        page.screenshot(path=str(path))
    return path


def django_shots(browser, out: Path, docs: Path, encoder) -> list[Path]:
    """docs/widget-desktop.png and docs/widget-phone.png: the widget on Django's docs."""
    paths = []
    with (
        tempfile.TemporaryDirectory() as work,
        site_tests.serve_django_docs(
            docs, Path(work), 'data-open="true" data-k="3" data-title="Ask the Django docs"', encoder=encoder
        ) as served,
    ):
        for kind, context in (("desktop", site_tests.DESKTOP), ("phone", site_tests.PHONE)):
            with site_tests._tab(browser, **context) as (_, page):
                site_tests._visit(page, f"{served.site}/{READ_FIRST}", served.hits)
                site_tests._visit(page, f"{served.site}/{READ_SECOND}", served.hits)
                cards = page.evaluate(site_tests.GEOMETRY)["cards"]
                logger.info("%s cards: %s", kind, [(c["title"], c["snippet"][:40], c["reason"]) for c in cards])
                path = out / f"widget-{kind}.png"
                page.screenshot(path=str(path), scale="css")
                paths.append(path)
    return paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--only", choices=("demo", "django"), default=None)
    ap.add_argument("--django-docs", type=Path, default=site_tests.DJANGO_DOCS)
    ap.add_argument(
        "--demo-cache",
        type=Path,
        default=None,
        help="the demo index cache, as `python -m plugin demo --cache` (default: the demo's own)",
    )
    ap.add_argument("--encoder", choices=("minilm", "hashing"), default="minilm")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with chromium() as browser:
        if args.only in (None, "demo"):
            written.append(demo_shot(browser, args.out, args.demo_cache, args.encoder))
        if args.only in (None, "django"):
            encoder = SentenceTransformerEncoder() if args.encoder == "minilm" else HashingEncoder(512)
            written += django_shots(browser, args.out, args.django_docs, encoder)
    for p in written:
        print(f"{p}  {p.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
