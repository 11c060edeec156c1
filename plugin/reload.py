"""Hot reload: a recommender that follows a versioned index folder while it serves.

`python -m plugin index` and `train-intent` (any `SessionRecommender.save`) commit a new version of the
folder (`plugin.versions`). A `ReloadingRecommender` notices it by reading the folder's CURRENT file (at most
every `check_interval` seconds, when it is used), loads the new version off the request path (a background
thread), and swaps one reference: requests already running finish on the version they started with, the
next ones get the new one, and none fails or waits. Sessions live in the session store, which every version
shares, so visitors keep their history across the swap.

It stands in for a `SessionRecommender` (attributes and methods are the current version's). A caller that
makes several calls for one request and needs them to see one version holds `pinned()` around them; the HTTP
app does so for every request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from .encoder import Encoder
from .errors import ConfigError, DimensionMismatchError, PluginError
from .recommender import SessionRecommender
from .versions import current_version

__all__ = ["ReloadingRecommender"]

logger = logging.getLogger(__name__)

# After a version fails to load, it is tried again after this long (a newer version is tried at once).
_RETRY_FAILED_AFTER_S = 30.0


class ReloadingRecommender:
    """A `SessionRecommender` over `directory` that picks up newly committed versions without a restart.

    check_interval: seconds between looks at the folder's CURRENT file (None: only when `check()` is
        called). background: load a new version in a thread (serving), or in the caller (scripts, tests).
    encoder, **kwargs: as for `SessionRecommender.load`; the session store, session settings and event log
        are carried from each version to the next, and so is the sentence-transformer when the new version
        was built with the same one.
    on_swap: called with the version just swapped out, after the swap (in the loading thread; requests may still
        be finishing on it). A serving process whose heap is frozen out of the garbage collector's scans uses it
        to have the old version collected (`adapters.http.heap`). Its errors are logged, never raised.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        encoder: Encoder | None = None,
        check_interval: float | None = 0.5,
        background: bool = True,
        on_swap: Callable[[SessionRecommender], None] | None = None,
        **kwargs: Any,
    ) -> None:
        if check_interval is not None and check_interval < 0:
            raise ConfigError(
                f"check_interval must be >= 0 seconds or None (no automatic checks), got {check_interval}"
            )
        state = {
            "_directory": Path(directory),
            "_encoder": encoder,
            "_kwargs": kwargs,
            "_interval": check_interval,
            "_background": background,
            "_on_swap": on_swap,
            "_lock": threading.Lock(),  # one load at a time; guards the fields below
            "_loading": False,
            "_next_check": time.monotonic() + (check_interval or 0.0),
            "_failed": None,  # (version, monotonic time) of the last failed load
            "_overrides": {},  # attributes set on the handle, re-applied to every later version
            "_pinned": ContextVar(f"session-suggest-pinned-{id(self)}", default=None),
            "reloads": 0,
        }
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_current", SessionRecommender.load(directory, encoder=encoder, **kwargs))

    # ------------------------------------------------------------ standing in for the recommender

    @property
    def current(self) -> SessionRecommender:
        """The version this call should use: the pinned one inside `pinned()`, else the newest loaded."""
        pinned = self._pinned.get()
        if pinned is not None:
            return pinned
        if self._interval is not None and time.monotonic() >= self._next_check:
            self._poll()
        return self._current

    def __getattr__(self, name: str) -> Any:  # only called for names the handle itself does not have
        if name.startswith("_"):  # the handle's own state (e.g. while copying it) is never forwarded
            raise AttributeError(name)
        return getattr(self.current, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # e.g. create_app sets `event_log`: it must reach the recommender that tracks, now and after a swap
        with self._lock:
            self._overrides[name] = value
            setattr(self._current, name, value)

    def __repr__(self) -> str:
        return f"ReloadingRecommender({str(self._directory)!r}, version={self._current.version!r})"

    @contextmanager
    def pinned(self) -> Iterator[SessionRecommender]:
        """Every use of this handle inside the block (in this thread or task, and in threads it hands work to
        with a copied context) sees the same version, even if a new one is swapped in meanwhile."""
        token = self._pinned.set(self.current)
        try:
            yield self._pinned.get()
        finally:
            self._pinned.reset(token)

    # ------------------------------------------------------------ following the folder

    def check(self) -> bool:
        """Look at the folder now and, if a newer version is committed, load it in this thread and swap it
        in. Returns whether it swapped. Load errors propagate (the old version keeps serving)."""
        version = current_version(self._directory)
        with self._lock:
            if self._loading or version is None or version == self._current.version:
                return False
            object.__setattr__(self, "_loading", True)
        try:
            return self._load_and_swap()
        finally:
            object.__setattr__(self, "_loading", False)

    def _poll(self) -> None:
        now = time.monotonic()
        object.__setattr__(self, "_next_check", now + self._interval)
        try:
            version = current_version(self._directory)
        except PluginError:
            logger.warning(
                "cannot read the version of %s; serving version %s",
                self._directory,
                self._current.version,
                exc_info=True,
            )
            return
        if version is None or version == self._current.version:
            return
        failed = self._failed
        if failed is not None and failed[0] == version and now - failed[1] < _RETRY_FAILED_AFTER_S:
            return
        with self._lock:
            if self._loading:
                return
            object.__setattr__(self, "_loading", True)
        if self._background:
            threading.Thread(
                target=self._reload_logged, args=(version,), name="session-suggest-reload", daemon=True
            ).start()
        else:
            self._reload_logged(version)

    def _reload_logged(self, version: str) -> None:
        try:
            self._load_and_swap()
        except Exception:  # a bad version must not take serving down: keep the old one, say why
            object.__setattr__(self, "_failed", (version, time.monotonic()))
            logger.exception(
                "could not load the new version of %s; still serving version %s", self._directory, self._current.version
            )
        finally:
            object.__setattr__(self, "_loading", False)

    def _load_and_swap(self) -> bool:
        old = self._current
        carried = {"store": old.store, "session_settings": old.session_settings, "event_log": old.event_log}
        kwargs = {**self._kwargs, **carried}
        encoder = self._encoder
        if encoder is None:
            try:  # the same model as now: reuse it (building a sentence-transformer takes seconds)
                new = SessionRecommender.load(self._directory, encoder=old.encoder.inner, **kwargs)
            except (ConfigError, DimensionMismatchError):  # built with another encoder
                new = SessionRecommender.load(self._directory, **kwargs)
        else:
            new = SessionRecommender.load(self._directory, encoder=encoder, **kwargs)
        if new.version == old.version:
            return False
        new.warm()  # here, in the loading thread: not on the first request the new version serves
        if new.encoder.name == old.encoder.name:
            new.page_encoder = old.page_encoder  # visitors' pages embedded so far stay embedded
        with self._lock:
            for name, value in self._overrides.items():
                setattr(new, name, value)
            object.__setattr__(self, "_current", new)  # the swap: one reference assignment
            object.__setattr__(self, "reloads", self.reloads + 1)
            object.__setattr__(self, "_failed", None)
        logger.info("now serving version %s of %s (%d articles)", new.version, self._directory, len(new.kb))
        if self._on_swap is not None:
            try:
                self._on_swap(old)
            except Exception:  # the new version serves either way
                logger.exception("on_swap failed after swapping in version %s", new.version)
        return True
