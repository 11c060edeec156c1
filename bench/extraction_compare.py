"""Main-content extraction on real documentation: this project's structural extractor (lxml, by generator markup)
against trafilatura (a maintained general-purpose boilerplate remover), same pages, same checks.

Each method's output is what gets embedded: the page's title, then its text. Checks per page, from the raw HTML: code blocks kept (<pre>: its first line appears in the text), table cells kept
(cells of content tables; DocBook's navigation tables excluded), section headings kept (h2/h3 in Sphinx
`div.section` / DocBook `div.sect*`/`refsect*`), and theme chrome left in (strings of the site's navigation that
are never article text). Needs `pip install trafilatura` (not a dependency of the package).

    python bench/extraction_compare.py /usr/share/doc/python-django-doc/html /usr/share/doc/postgresql-doc-15/html
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import lxml.html
from tqdm import tqdm

from plugin.html_extract import extract_page
from plugin.ingest import DEFAULT_EXCLUDE, _matches

CHROME = (
    "Quick search",
    "« previous",
    "Previous topic",
    "Next topic",
    "Table of contents",
    "Last update:",
    "Prev Up",
    "Up Next",
    "Home Next",
    "Navigation header",
)


def squash(s: str) -> str:
    return " ".join(s.split())


def references(html: str) -> tuple[list[str], list[str], list[str]]:
    doc = lxml.html.document_fromstring(html.encode("utf-8"))
    pres = [squash(ln) for pre in doc.iter("pre") for ln in pre.text_content().split("\n")[:3] if squash(ln)][:50]
    pres = [p for p in pres if len(p) > 8]
    cells = [
        squash(td.text_content())
        for t in doc.iter("table")
        if not (t.get("summary") or "").startswith("Navigation")
        for td in t.iter("td")
    ]
    cells = [c for c in cells if len(c) > 3][:100]
    heads = [
        squash(h.text_content()).rstrip("¶")
        for h in doc.xpath(
            "//div[contains(@class,'section') or starts-with(@class,'sect') or starts-with(@class,'refsect')]/*[self::h2 or self::h3]"
            " | //div[contains(@class,'section') or starts-with(@class,'sect') or starts-with(@class,'refsect')]/div/div/div/*[self::h2 or self::h3]"
        )
    ]
    return pres, cells, [h for h in heads if h]


def score(text: str, refs: tuple[list[str], list[str], list[str]]) -> tuple[list[float], int]:
    flat = squash(text)
    kept = [sum(r in flat for r in rs) / len(rs) if rs else float("nan") for rs in refs]
    return kept, sum(c in text or c in flat for c in CHROME)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+")
    p.add_argument("--pages", type=int, default=200, help="pages sampled per folder (seeded)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import trafilatura

    def structural(html: str, rel: str) -> str:
        page = extract_page(html, rel)
        return f"{page.title}\n{page.text}"

    def general(html: str, rel: str) -> str:
        out = trafilatura.extract(
            html,
            include_tables=True,
            include_comments=False,
            favor_recall=True,
            with_metadata=True,
            output_format="json",
        )
        data = json.loads(out) if out else {}
        return f"{data.get('title') or ''}\n{data.get('text') or ''}"

    methods = {"structural (lxml, this project)": structural, "trafilatura (favor_recall, tables)": general}
    print("| corpus | method | code blocks kept | table cells kept | headings kept | pages with chrome | chars | s |")
    print("|---|---|---|---|---|---|---|---|")
    for folder in args.folders:
        root = Path(folder)
        files = sorted(
            f
            for f in root.rglob("*.html")
            if not any(_matches(f.relative_to(root).as_posix(), pat) for pat in DEFAULT_EXCLUDE)
        )
        files = random.Random(args.seed).sample(files, min(args.pages, len(files)))
        pages = [(f.read_text(encoding="utf-8"), f.relative_to(root).as_posix()) for f in files]
        refs = [references(h) for h, _ in pages]
        for name, fn in methods.items():
            sums, counts, chrome, chars = [0.0, 0.0, 0.0], [0, 0, 0], 0, 0
            t0 = time.perf_counter()
            for (html, rel), ref in tqdm(list(zip(pages, refs)), desc=name[:12], leave=False):
                text = fn(html, rel)
                kept, c = score(text, ref)
                chrome += c > 0
                chars += len(text)
                for i, k in enumerate(kept):
                    if k == k:  # not NaN: the page has such elements
                        sums[i] += k
                        counts[i] += 1
            dt = time.perf_counter() - t0
            cells = " | ".join(f"{100 * s / max(n, 1):.1f}% ({n} pages)" for s, n in zip(sums, counts))
            print(f"| {root.parent.name} | {name} | {cells} | {chrome}/{len(pages)} | {chars:,} | {dt:.1f} |")


if __name__ == "__main__":
    main()
