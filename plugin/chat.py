"""The chat path: which suggestions go with an assistant's reply, decided in one place.

Every chat surface — the HTTP chat endpoint, the LangChain middleware and tool — calls `suggest_for_reply`, so
they cannot drift apart again. The policy, in order:

1. the frequency cap: at most `max_per_session` suggestion blocks from this source per session, none within
   `min_interval_s` of the last one, and (when the caller counts replies) none until `min_replies_between`
   plain replies have passed;
2. exclusions: what the visitor already read or clicked (the recommender's `exclude_seen`), what the reply
   already links, what the caller names (the article a reply was taken from), and — only when
   `exclude_shown` — every article this session was already shown. Shown-but-not-opened articles are
   otherwise allowed back: a relevant article shown once and ignored may be exactly what is asked for later;
3. one bound on k, `MAX_K`, for every surface;
4. the query (the visitor's message) is cut to `max_query_chars` (`truncate_query` says so in its result);
5. impressions are recorded, one batch per block, so the cap and reports can count them;
6. it never raises: a failure is logged and the reply goes out without suggestions.

Only a policy with a cap (`max_per_session`, `min_interval_s`) or `exclude_shown` reads the whole session (every
earlier block and impression); any other reads the same bounded context as a GET of suggestions, so its cost does
not grow with what the visitor has read.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .errors import ConfigError, EmptySessionError
from .inject import links_in
from .session_store import SessionContext
from .suggestion import Suggestion

if TYPE_CHECKING:
    from .events import Event
    from .recommender import SessionRecommender
    from .reload import ReloadingRecommender

__all__ = [
    "MAX_K",
    "MAX_QUERY_CHARS",
    "ChatPolicy",
    "ChatSuggestions",
    "check_k",
    "suggest_for_reply",
    "truncate_query",
    "shown_ids",
]

logger = logging.getLogger(__name__)

MAX_K = 20  # most suggestions any surface returns at once (HTTP, tool, middleware, retriever)
MAX_QUERY_CHARS = 500  # longer queries are cut: more text only dilutes the query embedding


def check_k(k: int, upper: int = MAX_K) -> int:
    """k itself if 1 <= k <= upper, else ConfigError naming the range."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= upper:
        raise ConfigError(f"k must be an integer between 1 and {upper}, got {k!r}")
    return k


def truncate_query(text: str | None, limit: int = MAX_QUERY_CHARS) -> tuple[str | None, bool]:
    """The query with whitespace collapsed and cut to `limit` characters (at a word when one is near), and
    whether it was cut. None for an empty query."""
    q = " ".join((text or "").split())
    if not q:
        return None, False
    if len(q) <= limit:
        return q, False
    cut = q[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.8 else cut), True


@dataclass(frozen=True)
class ChatPolicy:
    """How suggestions accompany replies on one chat surface."""

    k: int = 3
    min_score: float | None = None  # relevance floor; None uses the recommender's
    # weight of the visitor's message against the session's reading intent; None: the recommender's tuned
    # SuggestSettings.query_weight (a hard-coded number here would silently override the tuning)
    query_weight: float | None = None
    max_per_session: int | None = None  # suggestion blocks per session; None: no cap
    min_interval_s: float = 0.0  # seconds between two blocks in a session
    min_replies_between: int = 0  # plain replies required after a reply that had a block
    exclude_shown: bool = False  # also leave out everything already shown to the session
    record_impressions: bool = True  # False when the client reports what the visitor actually saw
    max_query_chars: int = MAX_QUERY_CHARS
    locale: str | None = None
    tags: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_k(self.k)
        if self.max_per_session is not None and self.max_per_session < 0:
            raise ConfigError(f"max_per_session must be >= 0 or None, got {self.max_per_session}")
        if self.min_interval_s < 0 or self.min_replies_between < 0:
            raise ConfigError("min_interval_s and min_replies_between must be >= 0")
        if self.query_weight is not None and not 0.0 <= self.query_weight <= 1.0:
            raise ConfigError(f"query_weight must be between 0 and 1, got {self.query_weight}")
        if self.max_query_chars < 1:
            raise ConfigError(f"max_query_chars must be >= 1, got {self.max_query_chars}")


@dataclass(frozen=True)
class ChatSuggestions:
    suggestions: tuple[Suggestion, ...] = ()
    batch: str | None = None  # id of the recorded impression batch
    skipped: str | None = None  # why there are none: capped, empty_session, error (None: nothing passed)
    query_truncated: bool = False


def shown_ids(events: Sequence[Event]) -> list[str]:
    """Article ids already shown to the session (suggestion impressions), first shown first."""
    out: list[str] = []
    for e in events:
        if e.kind == "suggestion_impression" and e.article_id and e.article_id not in out:
            out.append(e.article_id)
    return out


def _reads_history(policy: ChatPolicy) -> bool:
    """Whether the policy needs the session's earlier suggestion blocks (caps) or impressions (exclude_shown)."""
    return policy.exclude_shown or policy.max_per_session is not None or policy.min_interval_s > 0


def _capped(
    events: Sequence[Event], policy: ChatPolicy, source: str, now: float, replies_since_last: int | None
) -> bool:
    batches: dict[str, float] = {}
    for e in events:
        if e.kind == "suggestion_impression" and e.meta.get("source") == source and e.meta.get("batch"):
            batch = str(e.meta["batch"])
            batches[batch] = max(batches.get(batch, 0.0), e.ts)
    if policy.max_per_session is not None and len(batches) >= policy.max_per_session:
        return True
    if batches and policy.min_interval_s > 0 and now - max(batches.values()) < policy.min_interval_s:
        return True
    return replies_since_last is not None and replies_since_last < policy.min_replies_between


def suggest_for_reply(
    rec: SessionRecommender | ReloadingRecommender,
    session_id: str,
    reply: str,
    *,
    policy: ChatPolicy,
    source: str,
    query: str | None = None,
    k: int | None = None,
    exclude: Sequence[str] = (),
    replies_since_last: int | None = None,
    clock: Callable[[], float] = time.time,
) -> ChatSuggestions:
    """Suggestions to show with `reply` in this session (see the module docstring for the policy).

    `source` names the surface ("chat", "middleware", "tool") in impressions
    and in the cap; `replies_since_last` is how many plain replies followed the last block (None: unknown).
    Never raises."""
    try:
        n = check_k(policy.k if k is None else k)
        now = clock()
        if _reads_history(policy):
            # the caps count the session's earlier blocks, and exclude_shown needs every impression: the whole
            # session is read, and the suggestion reads its context from that one read, not a second one
            events: Sequence[Event] = rec.events(session_id)
            context = SessionContext.from_events(events, rec.settings.max_context_events)
        else:
            # nothing here needs more than the newest events: the same bounded read as GET suggestions, so a
            # reply costs the same however long the session (issue #13: 1.49x for 190 events on Redis before)
            events = ()
            context = rec.context(session_id)
        if _capped(events, policy, source, now, replies_since_last):
            return ChatSuggestions(skipped="capped")
        linked = links_in(reply)
        excluded = set(exclude)
        excluded.update(a.id for a in (rec.kb.find(u) for u in linked) if a is not None)
        if policy.exclude_shown:
            excluded.update(shown_ids(events))
        q, cut = truncate_query(query, policy.max_query_chars)
        try:
            found = rec.suggest(
                session_id,
                n,
                context=context,
                exclude=sorted(excluded),
                query=q,
                query_weight=policy.query_weight,
                min_score=policy.min_score,
                locale=policy.locale,
                tags=list(policy.tags) if policy.tags else None,
            )
        except EmptySessionError:  # nothing read and nothing asked: nothing to suggest, not a failure
            return ChatSuggestions(skipped="empty_session", query_truncated=cut)
        # a url the reply links but the KB knows under another spelling
        fresh = [s for s in found if not (s.article.url and s.article.url.rstrip("/") in linked)]
        # Reasons quote the question back ("matches your question “…”"); beside the answer to it, that is noise.
        chosen = tuple(
            replace(s, reason="related to your question", rank=i)
            if s.reason.startswith("matches your question")
            else replace(s, rank=i)
            for i, s in enumerate(fresh)
        )
        batch = None
        if chosen and policy.record_impressions:
            batch = uuid.uuid4().hex
            for s in chosen:
                rec.track(
                    session_id,
                    "suggestion_impression",
                    article_id=s.article.id,
                    url=s.article.url or None,
                    position=s.rank,
                    ts=now,
                    meta={"source": source, "batch": batch},
                )
        return ChatSuggestions(chosen, batch, None, cut)
    except Exception:  # the chat path never breaks a reply
        logger.warning("suggestions skipped for session %s…", str(session_id)[:8], exc_info=True)
        return ChatSuggestions(skipped="error")
