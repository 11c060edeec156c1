"""LangChain 1.x integration: a suggestion tool, a knowledge-base retriever and a reply-injecting middleware.

Needs the `langchain` extra (`pip install 'session-suggest[langchain]'`); `plugin` itself never imports it.
"""

from __future__ import annotations

from ._common import session_id_from
from .middleware import METADATA_KEY, SuggestionMiddleware
from .retriever import KnowledgeBaseRetriever
from .tool import SuggestArticlesInput, SuggestArticlesTool, format_suggestions

__all__ = [
    "METADATA_KEY",
    "KnowledgeBaseRetriever",
    "SuggestArticlesInput",
    "SuggestArticlesTool",
    "SuggestionMiddleware",
    "format_suggestions",
    "session_id_from",
]
