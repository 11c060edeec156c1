"""`KnowledgeBaseRetriever`: the plugin's knowledge base as a LangChain retriever.

query -> Documents (page_content = article text; metadata id, url, title, score, reason, tags, locale).
With `use_session=True` the query is blended with what the visitor has read in the run's session
(`configurable.session_id`, else the thread id); articles they already read are then left out, as for
any suggestion.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, ensure_config
from pydantic import Field

from plugin import SessionRecommender, Suggestion
from plugin.urls import safe_url

from ._common import session_id_from

__all__ = ["KnowledgeBaseRetriever", "to_document"]


def to_document(s: Suggestion) -> Document:
    art = s.article
    return Document(
        page_content=art.text or art.title,
        id=art.id,
        metadata={
            "id": art.id,
            "url": safe_url(art.url),
            "title": art.title,
            "score": round(float(s.score), 6),
            "reason": s.reason,
            "tags": list(art.tags),
            "locale": art.locale,
        },
    )


class KnowledgeBaseRetriever(BaseRetriever):
    """Knowledge-base search over a `SessionRecommender`, optionally steered by the visitor's session.

    `k` is a field and can also be passed per call: `retriever.invoke("query", k=2)`; so can `session_id`.
    """

    recommender: SessionRecommender = Field(exclude=True)
    k: int = Field(default=4, ge=1, le=100, description="Documents returned per query.")
    use_session: bool = Field(default=False, description="Blend the session's reading intent into the query.")
    session_id: str | None = Field(default=None, description="Session used when the run config names none.")
    query_weight: float = Field(
        default=0.7, ge=0.0, le=1.0, description="Weight of the query against the session intent when blending."
    )
    min_score: float | None = Field(default=None, description="Relevance floor; None uses the recommender's.")
    locale: str | None = None
    article_tags: list[str] | None = Field(
        default=None, description="Only return articles with one of these tags (`tags` is LangChain's, for tracing)."
    )

    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> list[Document]:
        # The session lives in the run config, which `_get_relevant_documents` never sees: resolve it here.
        if self.use_session and "session_id" not in kwargs:
            kwargs["session_id"] = session_id_from(ensure_config(config))
        return super().invoke(input, config, **kwargs)

    async def ainvoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> list[Document]:
        if self.use_session and "session_id" not in kwargs:
            kwargs["session_id"] = session_id_from(ensure_config(config))
        return await super().ainvoke(input, config, **kwargs)

    def _search(self, query: str, k: int | None, session_id: str | None) -> list[Document]:
        rec = self.recommender
        n = self.k if k is None else int(k)
        opts: dict[str, Any] = {"locale": self.locale, "tags": self.article_tags, "min_score": self.min_score}
        sid = (session_id or self.session_id) if self.use_session else None
        if not query.strip():
            return []
        if sid is not None:
            found = rec.suggest(sid, n, query=query, query_weight=self.query_weight, **opts)
        else:
            found = rec.suggest_for([], n, query=query, **opts)
        return [to_document(s) for s in found]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        session_id: str | None = None,
    ) -> list[Document]:
        return self._search(query, k, session_id)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        session_id: str | None = None,
    ) -> list[Document]:
        return await asyncio.to_thread(self._search, query, k, session_id)
