"""Request and response bodies. Requests are strict: unknown fields, wrong types and oversize values are 422."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatIn",
    "ChatOut",
    "ErrorBody",
    "ErrorOut",
    "EventIn",
    "EventOut",
    "EventsBatchIn",
    "EventsBatchOut",
    "HealthOut",
    "SessionOut",
    "SourceOut",
    "SuggestionOut",
    "SuggestionsOut",
]

EventKind = Literal["page_view", "article_open", "search", "suggestion_impression", "suggestion_click"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SessionOut(BaseModel):
    session_id: str = Field(description="Opaque, unguessable id; send it back in the path of every session call.")
    expires_in: float = Field(description="Seconds of inactivity after which the session is forgotten.")


class EventIn(_Strict):
    """One thing the visitor did. page_view/article_open need url, title, text or article_id; search needs
    query; suggestion_impression/suggestion_click need the suggested article_id (and its position)."""

    kind: EventKind
    url: str | None = Field(None, max_length=2048, description="Page url (the page the visitor is on).")
    title: str | None = Field(None, max_length=500)
    text: str | None = Field(None, max_length=20_000, description="Main text of the page; only sent on opt-in.")
    article_id: str | None = Field(None, min_length=1, max_length=200)
    query: str | None = Field(None, max_length=500)
    position: int | None = Field(None, ge=0, le=100, description="0-based rank of the shown/clicked suggestion.")
    event_id: str | None = Field(
        None, min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
        description="Client-chosen id; a retried event with the same id is stored once.",
    )


class EventOut(BaseModel):
    stored: bool = Field(description="False when the event repeated one already stored (same event_id or a reload).")
    event_id: str | None
    article_id: str | None = Field(description="The KB article the event was linked to, if any.")


class EventsBatchIn(_Strict):
    """Several events in one request (the widget's page view, or the impressions of one render), optionally
    followed by suggestions, so a page view costs one round trip instead of one per event."""

    events: list[EventIn] = Field(default_factory=list, max_length=50, description="Stored in order.")
    suggest: int | None = Field(
        None, ge=1, le=20, description="Also return this many suggestions, computed after the events are stored."
    )


class SuggestionOut(BaseModel):
    id: str
    title: str
    url: str = Field(description="The article's canonical KB url.")
    href: str = Field(description="Where a link to the article should point on this site.")
    snippet: str
    reason: str = Field(description="Why it was suggested, e.g. 'because you read json'.")
    drivers: list[str]
    score: float
    rank: int


class SuggestionsOut(BaseModel):
    session_id: str
    suggestions: list[SuggestionOut]


class ChatIn(_Strict):
    message: str = Field(min_length=1, max_length=2000, description="The visitor's question.")
    k: int | None = Field(None, ge=1, le=20, description="How many suggestions to inject into the reply.")


class SourceOut(BaseModel):
    id: str
    title: str
    href: str


class ChatOut(BaseModel):
    reply: str = Field(description="The responder's answer, plain text (render it as text, not HTML).")
    responder: str = Field(description="Which responder answered, e.g. 'extractive (no LLM)'.")
    source: SourceOut | None = Field(None, description="The KB article an extractive answer was taken from.")
    suggestions: list[SuggestionOut]


class EventsBatchOut(BaseModel):
    results: list[EventOut] = Field(description="One per event sent, in the same order.")
    suggestions: list[SuggestionOut] | None = Field(
        None, description="Present when `suggest` was asked: empty while the session has nothing to go on yet."
    )


class HealthOut(BaseModel):
    status: Literal["ok"]
    articles: int
    encoder: str
    sessions: int
    index_version: str | None = Field(
        None, description="The index folder's version this worker serves (None: an index built in memory or a flat folder)."
    )


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. unknown_session, invalid_request.")
    message: str = Field(description="What went wrong and what is expected instead.")


class ErrorOut(BaseModel):
    error: ErrorBody
