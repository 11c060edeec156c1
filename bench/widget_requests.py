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
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import test_widget_real_site as site_tests  # noqa: E402
from browser_helpers import chromium  # noqa: E402

import adapters.http.app as http_app  # noqa: E402


def measure(static_dir: Path, docs: Path, browser, work: Path) -> dict:
    http_app.STATIC_DIR = static_dir  # create_app mounts whatever folder this names
    out = {}
    with site_tests.serve_django_docs(docs, Path(tempfile.mkdtemp(dir=work))) as served:
        site, hits = served.site, served.hits
        for size, context in (("1280x800", site_tests.DESKTOP), ("390x844 phone", site_tests.PHONE)):
            with site_tests._tab(browser, **context) as (_, page):
                first = site_tests._visit(page, f"{site}/{site_tests.FIRST}", hits)
                second = site_tests._visit(page, f"{site}/{site_tests.SECOND}", hits)
                geo = page.evaluate(site_tests.GEOMETRY)
                page.evaluate(
                    "document.querySelector('#session-suggest-widget').shadowRoot.querySelector('.ss-close').click()"
                )
                page.wait_for_timeout(100)
                closed = page.evaluate(site_tests.GEOMETRY)
                out[size] = {
                    "first view: requests (preflights)": f"{len(first)} ({sum(m == 'OPTIONS' for m, _ in first)})",
                    "later view: requests (preflights)": f"{len(second)} ({sum(m == 'OPTIONS' for m, _ in second)})",
                    "panel in view": site_tests.in_view(geo["panel"], geo["vv"]),
                    "launcher in view": site_tests.in_view(closed["launcher"], closed["vv"]),
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
                text = subprocess.run(
                    ["git", "-C", str(ROOT), "show", f"{args.before}:adapters/static/{name}"],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                (old / name).write_text(text, encoding="utf-8")
            widgets[f"widget at {args.before}"] = old
        widgets["widget in this tree"] = ROOT / "adapters" / "static"
        for label, static in widgets.items():
            print(label, json.dumps(measure(static, args.docs, browser, work), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
