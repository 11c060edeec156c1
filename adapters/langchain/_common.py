"""What the tool, retriever and middleware share: finding the session of a run, and reading back what was
already suggested in it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugin import SessionRecommender

__all__ = ["session_id_from", "suggested_ids"]

# `configurable` keys that name the plugin session, most specific first. The thread id is what a
# LangGraph checkpointer already keys a conversation by, so by default one conversation is one session.
SESSION_KEYS = ("session_id", "thread_id")


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return s or None


def session_id_from(config: Mapping[str, Any] | None, runtime: Any = None) -> str | None:
    """The plugin session of this run, or None when the run carries none.

    Looks at `config["configurable"]["session_id"]`, then `["thread_id"]`, then the thread id LangGraph
    records on the runtime of the running node.
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


def suggested_ids(rec: SessionRecommender, session_id: str) -> list[str]:
    """Article ids already shown to this session as suggestions (tool results or injected blocks)."""
    out: list[str] = []
    for e in rec.events(session_id):
        if e.kind != "suggestion_impression":
            continue
        aid = e.article_id
        if aid is None:
            art = rec.kb.find(e.url)
            aid = art.id if art is not None else None
        if aid is not None and aid not in out:
            out.append(aid)
    return out
