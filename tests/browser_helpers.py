"""What the browser tests share: Debian's Chromium driven by Playwright's Python package. Missing pieces skip
those tests locally and fail them in CI (see services.py)."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from services import unavailable

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "require_browser", "chromium"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def require_browser() -> None:
    """Call at module level: skips (or in CI fails) the module without Chromium, Playwright or uvicorn."""
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} not installed (apt-get install chromium)", module_level=True)
    for name in ("playwright.sync_api", "uvicorn"):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            unavailable(f"{exc.name} is not installed (pip install -e '.[dev]')", module_level=True)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright), closed on exit."""
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
