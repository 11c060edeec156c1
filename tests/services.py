"""External services some tests need (redis-server, Chromium, Debian's documentation packages). Locally a
missing one skips those tests with a reason; in CI (`SESSION_SUGGEST_REQUIRE_SERVICES=1`, set by .ci/run) it fails them instead, so a broken
install can never pass as a green run with the Redis or browser tests silently skipped."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRED = os.environ.get("SESSION_SUGGEST_REQUIRE_SERVICES") == "1"


def unavailable(reason: str, *, module_level: bool = False) -> NoReturn:
    if REQUIRED:
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)
