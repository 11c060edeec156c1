"""Session-aware article suggestions for chat assistants.

Track what an anonymous visitor reads, form a STAMP intent vector over it, retrieve knowledge-base
articles from FAISS, and inject them into the assistant's replies. Framework-free: the LangChain and
HTTP integrations live in the separate `adapters` package.
"""

from __future__ import annotations

import importlib
from typing import Any

from .chat import MAX_K, ChatPolicy, ChatSuggestions, suggest_for_reply
from .config import SessionSettings, SuggestSettings
from .encoder import CachedEncoder, EmbeddingCache, Encoder, HashingEncoder, SentenceTransformerEncoder
from .errors import (
    ConfigError,
    DataFormatError,
    DimensionMismatchError,
    EmptySessionError,
    IndexFormatError,
    InvalidEventError,
    LimitExceededError,
    PluginError,
    RateLimitedError,
    StoreUnavailableError,
    UnknownArticleError,
    UnknownSessionError,
)
from .event_log import EventLog
from .events import EVENT_KINDS, Event, make_event
from .index import ArticleIndex, VectorIndex
from .inject import inject_reply, render
from .knowledge_base import Article, KnowledgeBase, load_articles
from .recommender import SessionRecommender
from .redis_store import RedisSessionStore
from .reload import ReloadingRecommender
from .session_store import InMemorySessionStore, PageContent, SessionContext, SessionStore
from .suggestion import Suggestion
from .threads import pin_threads
from .urls import safe_url
from .zero_shot import Intent, IntentModel, ZeroShotIntent

__version__ = "0.1.0"

# torch-backed names load on first use: serving never needs torch (a trained intent model is served in numpy,
# plugin.frozen_intent), and its import costs more than everything else a one-shot `python -m plugin suggest` does.
_LAZY = {"ContentSTAMP": "intent", "STAMP": "stamp", "STAMPConfig": "intent_config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Article",
    "ArticleIndex",
    "CachedEncoder",
    "ChatPolicy",
    "ChatSuggestions",
    "ConfigError",
    "ContentSTAMP",
    "DataFormatError",
    "DimensionMismatchError",
    "EVENT_KINDS",
    "EmbeddingCache",
    "EmptySessionError",
    "Encoder",
    "Event",
    "EventLog",
    "HashingEncoder",
    "InMemorySessionStore",
    "IndexFormatError",
    "Intent",
    "IntentModel",
    "InvalidEventError",
    "KnowledgeBase",
    "LimitExceededError",
    "MAX_K",
    "PageContent",
    "PluginError",
    "RateLimitedError",
    "RedisSessionStore",
    "ReloadingRecommender",
    "STAMP",
    "STAMPConfig",
    "SentenceTransformerEncoder",
    "SessionContext",
    "SessionRecommender",
    "SessionSettings",
    "SessionStore",
    "StoreUnavailableError",
    "SuggestSettings",
    "Suggestion",
    "UnknownArticleError",
    "UnknownSessionError",
    "VectorIndex",
    "ZeroShotIntent",
    "inject_reply",
    "load_articles",
    "make_event",
    "pin_threads",
    "render",
    "safe_url",
    "suggest_for_reply",
]
