"""`SuggestionMiddleware`: session tracking and proactive suggestions for a LangChain 1.x agent.

- before the agent runs: pages the visitor reports are tracked as page views: `context={"page": {...}}`
  (or `"pages": [...]`) on invoke, and links to knowledge-base articles written in their message;
- after each tool call: Documents a tool returned (a retriever tool's artifact) are tracked as article
  opens, so the session knows what the conversation has covered;
- after the model's final reply (a reply without tool calls): up to `k` suggestions are appended with
  `plugin.inject`, when they clear `min_score`, the session is under its frequency cap, and neither the reply
  already links them nor were they suggested before. Each shown one is recorded as a `suggestion_impression`.

Nothing here may break a reply: any error is logged and the reply passes through unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import ensure_config
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import Command

from plugin import EmptySessionError, SessionRecommender, Suggestion
from plugin.inject import inject_reply, links_in

from ._common import session_id_from, suggested_ids

__all__ = ["SuggestionMiddleware", "METADATA_KEY"]

logger = logging.getLogger(__name__)

METADATA_KEY = "session_suggestions"  # response_metadata key on a reply that carries injected suggestions
_MAX_QUERY_CHARS = 500
_URL_RE = re.compile(r"https?://\S+")


def _text(message: AnyMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = [b if isinstance(b, str) else b.get("text", "") for b in content if isinstance(b, (str, dict))]
    return "\n".join(p for p in parts if isinstance(p, str))


def _latest_human_turn(messages: Sequence[AnyMessage]) -> list[HumanMessage]:
    """The visitor's messages since the assistant last spoke (the input of this invocation)."""
    out: list[HumanMessage] = []
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            out.append(m)
        elif out:
            break
    return out[::-1]


def _reported_pages(context: Any) -> list[Mapping[str, Any]]:
    """`page` / `pages` from the run context (dict or object), each a mapping with url/title/text."""
    if context is None:
        return []
    get = context.get if isinstance(context, Mapping) else (lambda key: getattr(context, key, None))
    pages: list[Any] = []
    if get("page"):
        pages.append(get("page"))
    pages.extend(get("pages") or ())
    return [p for p in pages if isinstance(p, Mapping)]


class SuggestionMiddleware(AgentMiddleware):
    """Tracks what the conversation touches into the plugin session and appends suggestions to final replies.

    The session is `configurable.session_id`, else the thread id, of the run.

    Args:
        recommender: the plugin pipeline.
        k: most suggestions appended to one reply.
        min_score: relevance floor for proactive suggestions (stricter than on-demand ones by default).
        max_per_session: most replies in one session that get a suggestions block; None for no cap.
        min_replies_between: final replies without suggestions required after one that had them.
        min_interval_s: seconds required between two suggestion blocks in a session.
        query_weight: weight of the visitor's latest message against the session's reading intent.
        fmt: how the block is rendered into the reply text.
        locale / article_tags: only suggest articles in this locale / with one of these tags.
        track_pages / track_tool_documents / track_message_links: what is tracked into the session.
        clock: time source for the interval cap (tests pass a fake one).
    """

    def __init__(
        self,
        recommender: SessionRecommender,
        *,
        k: int = 2,
        min_score: float = 0.3,
        max_per_session: int | None = 3,
        min_replies_between: int = 1,
        min_interval_s: float = 0.0,
        query_weight: float = 0.5,
        fmt: Literal["markdown", "html"] = "markdown",
        locale: str | None = None,
        article_tags: Sequence[str] | None = None,
        track_pages: bool = True,
        track_tool_documents: bool = True,
        track_message_links: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if not 1 <= k <= 10:
            raise ValueError(f"k must be between 1 and 10, got {k}")
        if max_per_session is not None and max_per_session < 0:
            raise ValueError(f"max_per_session must be >= 0 or None, got {max_per_session}")
        if min_replies_between < 0 or min_interval_s < 0:
            raise ValueError("min_replies_between and min_interval_s must be >= 0")
        if fmt not in ("markdown", "html"):
            raise ValueError(f"unknown format {fmt!r}. Valid formats are: markdown, html")
        self.recommender = recommender
        self.k = k
        self.min_score = min_score
        self.max_per_session = max_per_session
        self.min_replies_between = min_replies_between
        self.min_interval_s = min_interval_s
        self.query_weight = query_weight
        self.fmt = fmt
        self.locale = locale
        self.article_tags = list(article_tags) if article_tags else None
        self.track_pages = track_pages
        self.track_tool_documents = track_tool_documents
        self.track_message_links = track_message_links
        self.clock = clock

    # ------------------------------------------------------------ tracking the visitor's turn

    def _track_turn(self, state: AgentState, runtime: Runtime, config: Mapping[str, Any]) -> None:
        sid = session_id_from(config, runtime)
        if sid is None:
            return
        rec = self.recommender
        if self.track_pages:
            for page in _reported_pages(getattr(runtime, "context", None)):
                fields = {f: page.get(f) for f in ("url", "title", "text", "article_id") if page.get(f)}
                art = rec.kb.find(fields.get("article_id") or fields.get("url"))
                if art is not None:
                    fields.setdefault("article_id", art.id)
                    fields.setdefault("title", art.title)  # reasons read "because you read <title>", not a url
                if fields and not self._still_on(sid, fields):
                    rec.track(sid, "page_view", **fields, meta={"source": "context"})
        if self.track_message_links:
            for message in _latest_human_turn(state.get("messages", [])):
                for url in sorted(links_in(_text(message))):
                    art = rec.kb.find(url)
                    if art is not None:
                        rec.track(sid, "page_view", article_id=art.id, url=art.url or None, title=art.title,
                                  meta={"source": "message"})

    def _still_on(self, sid: str, page: Mapping[str, Any]) -> bool:
        """Whether the visitor's latest page is this one: asking again from the same page is not a new view."""
        for e in reversed(self.recommender.events(sid)):
            if e.kind == "page_view":
                key = page.get("article_id") or page.get("url")
                return key is not None and key in (e.article_id, e.url)
        return False

    def before_agent(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        try:
            self._track_turn(state, runtime, ensure_config())
        except Exception:
            logger.warning("session tracking skipped for this turn", exc_info=True)
        return None

    async def abefore_agent(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        config = ensure_config()
        try:
            await asyncio.to_thread(self._track_turn, state, runtime, config)
        except Exception:
            logger.warning("session tracking skipped for this turn", exc_info=True)
        return None

    # ------------------------------------------------------------ tracking what tools returned

    def _track_tool_result(self, request: ToolCallRequest, result: ToolMessage | Command) -> None:
        if not self.track_tool_documents or not isinstance(result, ToolMessage):
            return
        artifact = result.artifact
        docs = [d for d in artifact if isinstance(d, Document)] if isinstance(artifact, Iterable) else []
        if not docs:
            return
        runtime = request.runtime
        sid = session_id_from(getattr(runtime, "config", None), runtime)
        if sid is None:
            return
        rec = self.recommender
        for doc in docs:
            meta = doc.metadata or {}
            art = rec.kb.find(meta.get("id") or doc.id) or rec.kb.find(meta.get("url") or meta.get("source"))
            if art is not None:
                rec.track(sid, "article_open", article_id=art.id, url=art.url or None, title=art.title,
                          meta={"source": "tool", "tool": request.tool_call.get("name")})

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolMessage | Command]
    ) -> ToolMessage | Command:
        result = handler(request)
        try:
            self._track_tool_result(request, result)
        except Exception:
            logger.warning("could not track the documents a tool returned", exc_info=True)
        return result

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command]]
    ) -> ToolMessage | Command:
        result = await handler(request)
        try:
            await asyncio.to_thread(self._track_tool_result, request, result)
        except Exception:
            logger.warning("could not track the documents a tool returned", exc_info=True)
        return result

    # ------------------------------------------------------------ injecting into the final reply

    def _capped(self, sid: str, messages: Sequence[AnyMessage]) -> bool:
        """Whether the frequency cap forbids a suggestions block in this reply."""
        batches: dict[str, float] = {}
        for e in self.recommender.events(sid):
            if e.kind == "suggestion_impression" and e.meta.get("source") == "middleware":
                batch = str(e.meta.get("batch", e.event_id))
                batches[batch] = max(batches.get(batch, 0.0), e.ts)
        if self.max_per_session is not None and len(batches) >= self.max_per_session:
            return True
        if batches and self.min_interval_s > 0 and self.clock() - max(batches.values()) < self.min_interval_s:
            return True
        if self.min_replies_between > 0:
            plain = 0
            for m in reversed(messages):
                if not isinstance(m, AIMessage) or m.tool_calls:
                    continue
                if METADATA_KEY in (m.response_metadata or {}):
                    return plain < self.min_replies_between
                plain += 1
        return False

    def _pick(self, sid: str, reply: str, messages: Sequence[AnyMessage]) -> list[Suggestion]:
        turn = _latest_human_turn(messages)
        words = _URL_RE.sub(" ", "\n".join(_text(m) for m in turn))  # links are tracked as pages, not meaning
        query = " ".join(words.split())[:_MAX_QUERY_CHARS] or None
        rec = self.recommender
        try:
            found = rec.suggest(
                sid,
                self.k + 3,  # a few spare for the ones the reply already links
                exclude=suggested_ids(rec, sid),
                query=query,
                query_weight=self.query_weight,
                min_score=self.min_score,
                locale=self.locale,
                tags=self.article_tags,
            )
        except EmptySessionError:  # nothing read and nothing asked: nothing to suggest, not a failure
            return []
        present = links_in(reply)
        fresh = [s for s in found if not (s.article.url and s.article.url.rstrip("/") in present)]
        # Core reasons quote the question back ("matches your question “…”"); in a reply to that very
        # question the quote is noise.
        return [
            replace(s, reason="related to your question") if s.reason.startswith("matches your question") else s
            for s in fresh[: self.k]
        ]

    def _inject(self, response: ModelResponse, messages: Sequence[AnyMessage], config: Mapping[str, Any],
                runtime: Runtime | None) -> ModelResponse:
        if response.structured_response is not None or not response.result:
            return response
        last = response.result[-1]
        if not isinstance(last, AIMessage) or last.tool_calls or last.invalid_tool_calls:
            return response  # an intermediate tool-calling turn, not the reply the visitor reads
        reply = _text(last)
        if not reply.strip():
            return response
        sid = session_id_from(config, runtime)
        if sid is None or self._capped(sid, messages):
            return response
        chosen = self._pick(sid, reply, messages)
        if not chosen:
            return response
        block_reply = str(inject_reply(reply, chosen, self.fmt))
        if isinstance(last.content, str):
            content: str | list[Any] = block_reply
        else:  # content blocks: keep them, add the suggestions as one more text block
            content = [*last.content, {"type": "text", "text": block_reply[len(reply.rstrip()):]}]
        batch = uuid.uuid4().hex
        now = self.clock()
        for pos, s in enumerate(chosen):
            self.recommender.track(sid, "suggestion_impression", article_id=s.article.id, url=s.article.url or None,
                                   position=pos, ts=now, meta={"source": "middleware", "batch": batch})
        metadata = {**(last.response_metadata or {}), METADATA_KEY: [s.to_dict() for s in chosen]}
        updated = last.model_copy(update={"content": content, "response_metadata": metadata})
        return ModelResponse(result=[*response.result[:-1], updated], structured_response=response.structured_response)

    def _safe_inject(self, response: Any, request: ModelRequest, config: Mapping[str, Any]) -> Any:
        if not isinstance(response, ModelResponse):
            return response
        try:
            return self._inject(response, request.messages, config, request.runtime)
        except Exception:  # the chat path never breaks a reply
            logger.warning("suggestions skipped for this reply", exc_info=True)
            return response

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        response = handler(request)
        return self._safe_inject(response, request, ensure_config())

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        response = await handler(request)
        config = ensure_config()
        try:
            return await asyncio.to_thread(self._safe_inject, response, request, config)
        except Exception:
            logger.warning("suggestions skipped for this reply", exc_info=True)
            return response
