"""What the tool, retriever and middleware share: finding the session of a run, and one index version per call."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from plugin import ReloadingRecommender, SessionRecommender

from ..session_ref import SessionRef

__all__ = ["session_id_from", "one_version"]

# `configurable` keys that name the plugin session, most specific first. The thread id is what a
# LangGraph checkpointer already keys a conversation by, so by default one conversation is one session.
SESSION_KEYS = ("session_id", "thread_id")


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, SessionRef):  # its text is a digest: the id travels beside it
        return value.session_id.strip() or None
    s = str(value).strip()
    return s or None


def session_id_from(config: Mapping[str, Any] | None, runtime: Any = None) -> str | None:
    """The plugin session of this run, or None when the run carries none.

    Looks at `config["configurable"]["session_id"]`, then `["thread_id"]`, then the thread id LangGraph
    records on the runtime of the running node. An `adapters.session_ref.SessionRef` there gives its id (its text
    is only a digest of it).
    """
    configurable = (config or {}).get("configurable") or {}
    for key in SESSION_KEYS:
        sid = _clean(configurable.get(key))
        if sid:
            return sid
    if runtime is not None:
        info = getattr(runtime, "execution_info", None)
        sid = _clean(getattr(info, "thread_id", None))
        if sid:
            return sid
    return None


def one_version(rec: SessionRecommender | ReloadingRecommender) -> AbstractContextManager[SessionRecommender]:
    """The recommender to use for one call: a hot-reloading handle is pinned, so the session read, the search
    and the impressions recorded all see the same index version even if a new one is swapped in meanwhile."""
    if isinstance(rec, ReloadingRecommender):
        return rec.pinned()
    return nullcontext(rec)
