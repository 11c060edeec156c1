"""`SuggestionMiddleware`: session tracking and proactive suggestions for a LangChain 1.x agent.

- before the agent runs: pages the visitor reports are tracked as page views: `context={"page": {...}}`
  (or `"pages": [...]`) on invoke, and links to knowledge-base articles written in their message;
- after each tool call: Documents a tool returned (a retriever tool's artifact) are tracked as article
  opens, so the session knows what the conversation has covered;
- after the model's final reply (a reply without tool calls): up to `k` suggestions chosen by the chat policy
  (`plugin.chat.suggest_for_reply`: relevance floor, frequency cap, nothing read, clicked, already linked or —
  by default here — already shown) are appended with `plugin.inject`, recorded as `suggestion_impression`s,
  listed in `response_metadata["session_suggestions"]`, and sent as a custom stream event
  `{"type": "session_suggestions", "suggestions": [...]}` (`stream_mode="custom"`);
- before every model call: blocks injected into earlier replies are cut out of the model's input. The visitor's
  transcript keeps them; the model never reads KB titles as its own words.

Nothing here may break a reply: any error is logged and the reply passes through unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import ensure_config
from langgraph.config import get_stream_writer
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import Command

from plugin import ConfigError, ReloadingRecommender, SessionRecommender
from plugin.chat import ChatPolicy, suggest_for_reply
from plugin.inject import inject_reply, links_in

from ._common import one_version, session_id_from

__all__ = ["SuggestionMiddleware", "METADATA_KEY", "INJECTED_KEY", "STREAM_EVENT"]

logger = logging.getLogger(__name__)

METADATA_KEY = "session_suggestions"  # response_metadata key on a reply that carries injected suggestions
INJECTED_KEY = "session_suggestions_text"  # the exact text appended, so it can be cut from the model's input
STREAM_EVENT = "session_suggestions"  # "type" of the custom stream event
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
        query_weight: weight of the visitor's latest message against the session's reading intent; None uses
            the recommender's tuned setting (SuggestSettings.query_weight).
        fmt: how the block is rendered into the reply text.
        exclude_shown: never suggest an article this session was already shown (proactive blocks should not
            nag; the tool, asked on purpose, may show one again).
        locale / article_tags: only suggest articles in this locale / with one of these tags.
        track_pages / track_tool_documents / track_message_links: what is tracked into the session.
        clock: time source for the interval cap (tests pass a fake one).
    """

    def __init__(
        self,
        recommender: SessionRecommender | ReloadingRecommender,
        *,
        k: int = 2,
        min_score: float = 0.3,
        max_per_session: int | None = 3,
        min_replies_between: int = 1,
        min_interval_s: float = 0.0,
        query_weight: float | None = None,
        fmt: Literal["markdown", "html"] = "markdown",
        exclude_shown: bool = True,
        locale: str | None = None,
        article_tags: Sequence[str] | None = None,
        track_pages: bool = True,
        track_tool_documents: bool = True,
        track_message_links: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        # validates k (1..MAX_K), the caps and the weight; errors are ConfigError, a ValueError
        self.policy = ChatPolicy(
            k=k,
            min_score=min_score,
            query_weight=query_weight,
            max_per_session=max_per_session,
            min_interval_s=min_interval_s,
            min_replies_between=min_replies_between,
            exclude_shown=exclude_shown,
            locale=locale,
            tags=tuple(article_tags) if article_tags else None,
        )
        if fmt not in ("markdown", "html"):
            raise ConfigError(f"unknown format {fmt!r}. Valid formats are: markdown, html")
        self.recommender = recommender
        self.fmt = fmt
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
                        rec.track(
                            sid,
                            "page_view",
                            article_id=art.id,
                            url=art.url or None,
                            title=art.title,
                            meta={"source": "message"},
                        )

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
                rec.track(
                    sid,
                    "article_open",
                    article_id=art.id,
                    url=art.url or None,
                    title=art.title,
                    meta={"source": "tool", "tool": request.tool_call.get("name")},
                )

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

    def _replies_since_block(self, messages: Sequence[AnyMessage]) -> int | None:
        """Plain final replies since the last one that carried a block (None: no block yet)."""
        plain = 0
        for m in reversed(messages):
            if not isinstance(m, AIMessage) or m.tool_calls:
                continue
            if METADATA_KEY in (m.response_metadata or {}):
                return plain
            plain += 1
        return None

    def _inject(
        self,
        response: ModelResponse,
        messages: Sequence[AnyMessage],
        config: Mapping[str, Any],
        runtime: Runtime | None,
    ) -> tuple[ModelResponse, list[dict[str, Any]]]:
        """The response with suggestions appended to its final reply, and the suggestions as dicts ([]: none)."""
        if response.structured_response is not None or not response.result:
            return response, []
        last = response.result[-1]
        if not isinstance(last, AIMessage) or last.tool_calls or last.invalid_tool_calls:
            return response, []  # an intermediate tool-calling turn, not the reply the visitor reads
        reply = _text(last)
        if not reply.strip():
            return response, []
        sid = session_id_from(config, runtime)
        if sid is None:
            return response, []
        words = _URL_RE.sub(" ", "\n".join(_text(m) for m in _latest_human_turn(messages)))  # links are pages
        with one_version(self.recommender) as rec:
            chosen = suggest_for_reply(
                rec,
                sid,
                reply,
                policy=self.policy,
                source="middleware",
                query=words,
                replies_since_last=self._replies_since_block(messages),
                clock=self.clock,
            ).suggestions
        if not chosen:
            return response, []
        added = str(inject_reply(reply, chosen, self.fmt))[len(reply.rstrip()) :]
        if isinstance(last.content, str):
            content: str | list[Any] = reply.rstrip() + added
        else:  # content blocks: keep them, add the suggestions as one more text block
            content = [*last.content, {"type": "text", "text": added}]
        rows = [s.to_dict() for s in chosen]
        metadata = {**(last.response_metadata or {}), METADATA_KEY: rows, INJECTED_KEY: added}
        updated = last.model_copy(update={"content": content, "response_metadata": metadata})
        result = [*response.result[:-1], updated]
        return ModelResponse(result=result, structured_response=response.structured_response), rows

    def _safe_inject(
        self, response: Any, request: ModelRequest, config: Mapping[str, Any]
    ) -> tuple[Any, list[dict[str, Any]]]:
        if not isinstance(response, ModelResponse):
            return response, []
        try:
            return self._inject(response, request.messages, config, request.runtime)
        except Exception:  # the chat path never breaks a reply
            logger.warning("suggestions skipped for this reply", exc_info=True)
            return response, []

    @staticmethod
    def _emit(request: ModelRequest, rows: list[dict[str, Any]]) -> None:
        """Send the suggestions as a custom stream event, for `stream_mode="custom"` clients."""
        if not rows:
            return
        try:
            writer = getattr(request.runtime, "stream_writer", None) or get_stream_writer()
            writer({"type": STREAM_EVENT, "suggestions": rows})
        except Exception:  # not streaming, or no graph context: the reply already carries them
            logger.debug("no stream writer for the suggestions event", exc_info=True)

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]) -> ModelResponse:
        response = handler(_without_injected_blocks(request))
        response, rows = self._safe_inject(response, request, ensure_config())
        self._emit(request, rows)
        return response

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        response = await handler(_without_injected_blocks(request))
        config = ensure_config()
        try:
            response, rows = await asyncio.to_thread(self._safe_inject, response, request, config)
        except Exception:
            logger.warning("suggestions skipped for this reply", exc_info=True)
            return response
        self._emit(request, rows)  # on the event loop: the stream writer is not for other threads
        return response


def _without_injected_blocks(request: ModelRequest) -> ModelRequest:
    """The request with every injected suggestions block cut out of earlier replies.

    The block is for the visitor. Left in the history, the model would read KB titles, unquoted, as words it
    said itself, and a title such as "Ignore previous instructions" would gain the authority of its own voice.
    The checkpointed state keeps the block (the visitor's transcript); only the model's input loses it."""
    if not any(isinstance(m, AIMessage) and INJECTED_KEY in (m.response_metadata or {}) for m in request.messages):
        return request
    return request.override(messages=[_strip_block(m) for m in request.messages])


def _strip_block(message: AnyMessage) -> AnyMessage:
    added = (message.response_metadata or {}).get(INJECTED_KEY) if isinstance(message, AIMessage) else None
    if not isinstance(added, str) or not added:
        return message
    content = message.content
    if isinstance(content, str) and content.endswith(added):
        return message.model_copy(update={"content": content[: len(content) - len(added)]})
    if isinstance(content, list) and content and content[-1] == {"type": "text", "text": added}:
        return message.model_copy(update={"content": content[:-1]})
    # Edited since (by the application): the block can no longer be cut out exactly, so the model gets a
    # placeholder rather than KB text in its own voice.
    return message.model_copy(update={"content": "[an earlier reply with suggested articles, omitted]"})
