"""Who writes the chat reply. Anything callable plugs in; the default needs no LLM.

A responder turns the visitor's message into reply text. `as_responder` adapts:
  * a LangChain chat model or chain (anything with `.invoke`): called with the message, and
    `config={"configurable": {"session_id": SessionRef(id)}}` so session-aware tools can find the visitor
    (`adapters.langchain.session_id_from`) while a chain's message history (`RunnableWithMessageHistory` keys it
    by `configurable.session_id`), its traces and anything else that stores the value as a string get
    `thread_id_for(id)`, a digest, not the bearer id; an AIMessage's `.content` becomes the reply text;
  * a LangGraph agent (`langchain.agents.create_agent`, any compiled graph, or a runnable whose input has
    `messages`): called with `{"messages": [{"role": "user", "content": message}]}`, `thread_id_for(session_id)`
    as `thread_id` (its checkpointer keeps the conversation per visitor) and the session id as `session_id`
    (what the plugin's tool and middleware read), wrapped in an `adapters.session_ref.SessionRef`; the last AI
    message's content becomes the reply text. The session id is a bearer token, and LangGraph copies `thread_id`
    and every string in `configurable` into run metadata (tracers: LangSmith, logging callbacks) and checkpoint
    metadata (the checkpointer's database): the thread id is a digest, and a `SessionRef`'s text is the same
    digest (the id rides beside it for `session_id_from`), so neither copy holds the token;
  * a plain callable `fn(message)` or `fn(message, session_id=...)` returning str or `Reply`.
LangChain is duck-typed here, never imported.

Erase reaches the responder too: an agent's checkpointer keeps the visitor's whole conversation under the
session's thread id, so `forget_session` deletes that thread when the session is erased (a checkpointer that
cannot delete threads is logged as such).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from plugin import Article, ReloadingRecommender, SessionRecommender
from plugin.events import well_formed
from plugin.rules import passes_filters

from ..session_ref import SessionRef, session_name

__all__ = ["Reply", "Responder", "ExtractiveResponder", "as_responder", "forget_session", "thread_id_for"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    text: str
    responder: str
    source: Article | None = None

    def __post_init__(self) -> None:
        # A model's text can hold a lone surrogate (a provider's JSON "\\ud83d" of an emoji cut in two), which no
        # UTF-8 encoder writes: the answer would become a 500. U+FFFD instead, as for KB text (`well_formed`).
        object.__setattr__(self, "text", well_formed(self.text))


class Responder(Protocol):
    def __call__(self, message: str, *, session_id: str) -> Reply: ...


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n{2,}")
_WORD = re.compile(r"[a-z0-9_]+")
_BOILERPLATE = re.compile(r"MODULE REFERENCE|automatically generated|https?://")
_STOP = frozenset(
    "a an and are be can do does for from how i in is it my of on or the to what when where which with you".split()
)


class ExtractiveResponder:
    """Offline answer: the sentences of the best-matching KB article that share most words with the question."""

    name = "extractive (no LLM)"

    def __init__(
        self,
        rec: SessionRecommender | ReloadingRecommender,
        *,
        max_sentences: int = 3,
        max_chars: int = 600,
        candidates: int = 5,
        session_weight: float = 0.15,
    ) -> None:
        self.rec = rec
        self.max_sentences = max_sentences
        self.max_chars = max_chars
        self.candidates = candidates
        self.session_weight = session_weight

    def __call__(self, message: str, *, session_id: str) -> Reply:
        # The best hit, nudged towards what the visitor has read: "how do I load it back?" on the pickle page
        # should be answered from pickle.
        hits = self.rec.search(message, self.candidates, session_id=session_id, session_weight=self.session_weight)
        hits = [h for h in hits if _answers(h[0])]
        art = hits[0][0] if hits else None
        if art is None:
            return Reply("I could not find anything about that in the knowledge base.", self.name)
        excerpt = _best_sentences(message, art.text, self.max_sentences, self.max_chars) or art.snippet(self.max_chars)
        text = f"From the knowledge base article “{art.title}” (extracted text, no AI model):\n\n{excerpt}"
        return Reply(text, self.name, art)


def _answers(article: Article | None) -> bool:
    """A hub (table of contents) page has no text worth quoting as an answer."""
    return article is not None and passes_filters(article)


def _best_sentences(question: str, text: str, n: int, max_chars: int) -> str:
    q = {w for w in _WORD.findall(question.lower()) if w not in _STOP}
    # dict.fromkeys: the pydoc body repeats the docstring, so drop repeated sentences, keep the order
    # and skip fragments of pydoc's class/signature listings (" | ", "->"), which read badly as prose
    sentences = list(
        dict.fromkeys(
            " ".join(s.split())
            for s in _SENTENCE_SPLIT.split(text)
            if len(s.split()) >= 4 and "|" not in s and "->" not in s and not _BOILERPLATE.search(s)
        )
    )[:200]
    if not sentences:
        return ""
    scored = sorted(
        range(len(sentences)),
        key=lambda i: (-len(q & set(_WORD.findall(sentences[i].lower()))), i),
    )
    chosen = sorted(scored[:n])  # keep the article's order
    out = " ".join(sentences[i] for i in chosen)
    return out if len(out) <= max_chars else out[: max_chars - 1].rsplit(" ", 1)[0] + "…"


def _text_of(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, dict) and result.get("messages"):
        return _text_of(result["messages"][-1])  # an agent's final state
    content = getattr(result, "content", None)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(result)


def _last_ai_text(state: Any) -> str:
    """An agent's final state: the content of its last AI message (tool-calling turns come before it)."""
    messages = state.get("messages") if isinstance(state, dict) else None
    if not messages:
        return _text_of(state)
    for m in reversed(messages):
        if getattr(m, "type", None) == "ai" or (isinstance(m, dict) and m.get("role") in ("ai", "assistant")):
            return _text_of(m.get("content", "") if isinstance(m, dict) else m)
    return _text_of(messages[-1])


def _takes_messages(obj: Any) -> bool:
    """Whether a runnable wants agent-state input ({"messages": [...]}) rather than a bare message: a LangGraph
    graph (Pregel underlies every compiled graph and create_agent), or an input schema with `messages`."""
    if any(c.__name__ in ("Pregel", "CompiledStateGraph") for c in type(obj).__mro__):
        return True
    schema = getattr(obj, "get_input_jsonschema", None)
    if not callable(schema):
        return False
    try:
        props = schema().get("properties") or {}
    except Exception:  # a schema that cannot be built says nothing about the input shape
        return False
    return "messages" in props


def thread_id_for(session_id: str) -> str:
    """The agent thread (checkpointer key, and run metadata) that holds this session's conversation: a SHA-256
    digest of the id, which names the thread but does not work as the id at the API (a `SessionRef`'s text)."""
    return session_name(session_id)


class _AgentResponder:
    """A LangGraph agent as a responder: one conversation per session (its checkpointer's thread)."""

    def __init__(self, agent: Any, label: str) -> None:
        self.agent = agent
        self.label = label

    def __call__(self, message: str, *, session_id: str) -> Reply:
        config = {"configurable": {"thread_id": thread_id_for(session_id), "session_id": SessionRef(session_id)}}
        state = self.agent.invoke({"messages": [{"role": "user", "content": message}]}, config=config)
        return Reply(_last_ai_text(state), self.label)

    def forget(self, session_id: str) -> None:
        """Delete the session's thread from the agent's checkpointer: the visitor's messages and the replies."""
        saver = getattr(self.agent, "checkpointer", None)
        delete = getattr(saver, "delete_thread", None)
        if not callable(delete):  # no checkpointer (nothing kept), or one inherited from a parent graph
            return
        try:
            delete(thread_id_for(session_id))
        except NotImplementedError:
            logger.warning(
                "the agent's checkpointer %s cannot delete threads: the conversation of erased session %s… stays "
                "in it; use one that implements delete_thread",
                type(saver).__name__,
                session_id[:8],
            )


def forget_session(responder: Any, session_id: str) -> None:
    """Erase what the responder keeps of the session (an agent's thread), when it keeps anything."""
    forget = getattr(responder, "forget", None)
    if callable(forget):
        forget(session_id)


def as_responder(obj: Any, *, name: str | None = None) -> Responder:
    """Wrap a LangChain runnable or a callable as a Responder (see the module docstring)."""
    if hasattr(obj, "invoke"):
        label = name or type(obj).__name__
        if _takes_messages(obj):
            return _AgentResponder(obj, label)

        def run_invoke(message: str, *, session_id: str) -> Reply:
            result = obj.invoke(message, config={"configurable": {"session_id": SessionRef(session_id)}})
            return Reply(_text_of(result), label)

        return run_invoke
    if not callable(obj):
        raise TypeError(f"a responder must be callable or have .invoke, got {type(obj).__name__}")
    if isinstance(obj, ExtractiveResponder):
        return obj
    label = str(name or getattr(obj, "name", None) or getattr(obj, "__name__", type(obj).__name__))
    try:
        params = inspect.signature(obj).parameters
        takes_session = "session_id" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        takes_session = False
    fn: Callable[..., Any] = obj

    def run_callable(message: str, *, session_id: str) -> Reply:
        result = fn(message, session_id=session_id) if takes_session else fn(message)
        return result if isinstance(result, Reply) else Reply(_text_of(result), str(label))

    return run_callable
