"""The widget on Django's docs (Debian's python-django-doc), before and after, measured in the same run.

    python bench/widget_requests.py [--docs /usr/share/doc/python-django-doc/html] [--before 6c265e4]

For the widget of this working tree and, with --before, the widget files of that git commit (served by the same
API), it copies the docs with the tag injected (into a temporary folder: nothing enters the repository), serves
them and the hardened API on two 127.0.0.1 ports, and drives Chromium at 1280×800 and as a 390×844 phone
through two page views with the panel open. It prints, per widget and size, the API requests of the first page
view (a new visitor) and of the second, the CORS preflights among them (counted where they arrive: Chromium
never shows them to the page), and whether the panel (open) and the launcher (closed) lie inside the visual
viewport. Uses the real-site test suite's helpers (tests/test_widget_real_site.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import adapters.http.app as http_app  # noqa: E402
import test_widget_real_site as site_tests  # noqa: E402
from adapters.http import ServerSettings  # noqa: E402
from adapters.http.hardened import create_hardened_app  # noqa: E402
from browser_helpers import chromium  # noqa: E402
from net_helpers import files_in_thread, free_port, uvicorn_in_thread  # noqa: E402
from plugin import HashingEncoder, SessionRecommender, SuggestSettings  # noqa: E402
from plugin.knowledge_base import iter_folder  # noqa: E402


def _inside(box: dict | None, vv: dict) -> bool:
    return box is not None and box["left"] >= vv["left"] - 1 and box["top"] >= vv["top"] - 1 \
        and box["right"] <= vv["right"] + 1 and box["bottom"] <= vv["bottom"] + 1


def measure(static_dir: Path, docs: Path, browser, work: Path) -> dict:
    http_app.STATIC_DIR = static_dir  # create_app mounts whatever folder this names
    site_port, api_port = free_port(), free_port()
    site, api = f"http://127.0.0.1:{site_port}", f"http://127.0.0.1:{api_port}"
    root = Path(tempfile.mkdtemp(dir=work)) / "html"
    site_tests._copy_with_tag(docs, root, f'<script src="{api}/static/widget.js" data-open="true" data-k="3" defer></script>')
    articles = [dataclasses.replace(a, id=f"{section}/{a.id}") for section in site_tests.KB_SECTIONS
                for a in iter_folder(docs / section, base_url=f"{site}/{section}")]
    rec = SessionRecommender.build(articles, encoder=HashingEncoder(512), progress=False,
                                   settings=SuggestSettings(min_score=-1.0))
    inner = create_hardened_app(rec, secrets="s" * 48, settings=ServerSettings())
    hits: list[tuple[str, str]] = []

    async def app(scope, receive, send):
        if scope["type"] == "http":
            hits.append((scope["method"], scope["path"]))
        await inner(scope, receive, send)

    out = {}
    with files_in_thread(root, port=site_port), uvicorn_in_thread(app, port=api_port):
        for size, context in (("1280x800", site_tests.DESKTOP), ("390x844 phone", site_tests.PHONE)):
            with site_tests._tab(browser, **context) as (_, page):
                first = site_tests._visit(page, f"{site}/{site_tests.FIRST}", hits)
                second = site_tests._visit(page, f"{site}/{site_tests.SECOND}", hits)
                geo = page.evaluate(site_tests.GEOMETRY)
                page.evaluate("document.querySelector('#session-suggest-widget').shadowRoot.querySelector('.ss-close').click()")
                page.wait_for_timeout(100)
                closed = page.evaluate(site_tests.GEOMETRY)
                out[size] = {
                    "first view: requests (preflights)": f"{len(first)} ({sum(m == 'OPTIONS' for m, _ in first)})",
                    "later view: requests (preflights)": f"{len(second)} ({sum(m == 'OPTIONS' for m, _ in second)})",
                    "panel in view": _inside(geo["panel"], geo["vv"]),
                    "launcher in view": _inside(closed["launcher"], closed["vv"]),
                }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=Path, default=site_tests.DJANGO_DOCS)
    ap.add_argument("--before", default=None, help="git commit whose widget files to measure too")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        work = Path(tmp)
        widgets = {}
        if args.before:
            old = work / "before-static"
            old.mkdir()
            for name in ("widget.js", "widget.css"):
                text = subprocess.run(["git", "-C", str(ROOT), "show", f"{args.before}:adapters/static/{name}"],
                                      check=True, capture_output=True, text=True).stdout
                (old / name).write_text(text, encoding="utf-8")
            widgets[f"widget at {args.before}"] = old
        widgets["widget in this tree"] = ROOT / "adapters" / "static"
        for label, static in widgets.items():
            print(label, json.dumps(measure(static, args.docs, browser, work), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
