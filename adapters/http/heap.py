"""A serving worker's start-up objects kept out of the cyclic garbage collector's scans.

A worker keeps what it built at start-up for its whole life: the knowledge base's articles, BM25's vocabulary, the
index's metadata, the app's routes and schemas (~106,000 container objects in the demo KB's worker). CPython's full
collection (generation 2) visits every tracked object each time it runs, and it runs every few tens of seconds
under the wrk mix once the bounded caches turn over; the worker answers nothing meanwhile. `gc.freeze()` after
start-up moves those objects to a permanent generation that no collection visits, so a full collection scans only
what was allocated since (the caches' entries, the requests in flight). BENCHMARKS.md, production load, round 9,
has the pauses before and after.

Objects in the permanent generation are still freed by reference counting, but a reference cycle among them is
never collected. A worker's start-up objects hold cycles (a `SessionRecommender` is freed only by the collector),
so when a `ReloadingRecommender` swaps in a new index version the old one would stay in memory for good; the
HTTP factories therefore pass `refreeze_after_swap` to it, which thaws the heap once the old version is no longer
in use, collects it, and freezes again.

SESSION_SUGGEST_GC_FREEZE=0 turns all of this off (the collector then scans everything, as before).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from plugin.errors import ConfigError

__all__ = ["ENV_GC_FREEZE", "gc_freeze_setting", "freeze_startup_heap", "refreeze_after_swap"]

logger = logging.getLogger(__name__)

ENV_GC_FREEZE = "SESSION_SUGGEST_GC_FREEZE"
# A request pins the version it started with until it ends (milliseconds); a streamed reply could take longer.
_RELEASE_TRIES = 30
_RELEASE_WAIT_S = 1.0


def gc_freeze_setting(environ: Mapping[str, str] | None = None) -> bool:
    """Whether SESSION_SUGGEST_GC_FREEZE asks for the start-up heap to be frozen (default 1: yes; 0: no)."""
    raw = (os.environ if environ is None else environ).get(ENV_GC_FREEZE, "").strip()
    if raw in ("", "1"):
        return True
    if raw == "0":
        return False
    raise ConfigError(f"{ENV_GC_FREEZE} must be 1 (freeze the start-up heap, the default) or 0 (do not), got {raw!r}")


def freeze_startup_heap(environ: Mapping[str, str] | None = None) -> bool:
    """Collect once, then freeze every object the worker holds (call it last in the worker's start-up, once the
    app and its recommender are built and warm). Returns whether it froze."""
    if not gc_freeze_setting(environ):
        return False
    gc.collect()  # start-up's garbage is collected now, not frozen with the rest
    gc.freeze()
    logger.debug("froze %d start-up objects out of the garbage collector's scans", gc.get_freeze_count())
    return True


def refreeze_after_swap(old: Any) -> None:
    """Called by a `ReloadingRecommender` after it swapped `old` out: when the heap is frozen, wait in a thread until
    no request uses `old` any more, then thaw, collect it, and freeze again (a frozen cycle is never collected)."""
    if gc.get_freeze_count() == 0:
        return
    ref = weakref.ref(old)
    del old
    threading.Thread(target=_collect_when_released, args=(ref,), name="session-suggest-refreeze", daemon=True).start()


def _collect_when_released(ref: weakref.ref[Any]) -> None:
    for _ in range(_RELEASE_TRIES):
        time.sleep(_RELEASE_WAIT_S)  # first: the requests still running on the old version end meanwhile
        gc.unfreeze()
        gc.collect()
        released = ref() is None
        gc.freeze()
        if released:
            return
    logger.warning("the previous index version is still in use after %d s; it stays in memory", _RELEASE_TRIES)
