"""Request and response bodies. Requests are strict: unknown fields, wrong types and oversize values are 422."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from plugin.chat import MAX_K

__all__ = [
    "ChatIn",
    "ChatOut",
    "ErrorBody",
    "ErrorOut",
    "EventIn",
    "FeedbackEventIn",
    "PageEventIn",
    "SearchEventIn",
    "VISIBLE",
    "WholeInt",
    "whole_int",
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


# A text field must hold a character that str.strip() keeps (NUL is dropped too): otherwise the event arrives
# empty. Said in the schema, so that what the schema accepts the server stores (spec = server). The class is
# written for both JSON Schema (ECMA-262) and pydantic's regex engine; JSON Schema patterns are unanchored.
VISIBLE = r"[^\x00\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def _whole_number(value: object) -> object:
    """JSON Schema's integer includes 3.0; pydantic's strict int does not. Accept whole floats, nothing else."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeInt = Annotated[int, BeforeValidator(_whole_number)]


def whole_int(ge: int, le: int) -> Any:
    """An integer in [ge, le] (whole floats accepted). The bounds come first, on the int itself: placed after
    the validator, pydantic writes them into the schema as "ge"/"le", which JSON Schema does not know."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_whole_number)]


def needs_one_of(*names: str) -> dict[str, Any]:
    """JSON Schema for "at least one of these string fields is present": each branch requires one, as a string."""
    return {"anyOf": [{"required": [n], "properties": {n: {"type": "string"}}} for n in names]}


def check_one_of(model: BaseModel, *names: str) -> None:
    if all(getattr(model, n) is None for n in names):
        raise ValueError(f"needs at least one of {', '.join(names)}")


class _EventFields(_Strict):
    url: str | None = Field(
        None, max_length=2048, pattern=VISIBLE, description="Page url (the page the visitor is on)."
    )
    title: str | None = Field(None, max_length=500, pattern=VISIBLE)
    text: str | None = Field(
        None, max_length=20_000, pattern=VISIBLE, description="Main text of the page; only sent on opt-in."
    )
    article_id: str | None = Field(None, min_length=1, max_length=200, pattern=VISIBLE)
    query: str | None = Field(None, max_length=500, pattern=VISIBLE)
    position: whole_int(0, 100) | None = Field(None, description="0-based rank of the shown/clicked suggestion.")
    event_id: str | None = Field(
        None,
        min_length=8,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Client-chosen id; a retried event with the same id is stored once.",
    )


class PageEventIn(_EventFields):
    """A page the visitor viewed or an article they opened: needs url, title, text or article_id."""

    model_config = ConfigDict(json_schema_extra=needs_one_of("url", "title", "text", "article_id"))
    kind: Literal["page_view", "article_open"]

    @model_validator(mode="after")
    def _something_to_go_on(self) -> PageEventIn:
        check_one_of(self, "url", "title", "text", "article_id")
        return self


class SearchEventIn(_EventFields):
    """A search the visitor ran on the site: needs the query."""

    kind: Literal["search"]
    query: str = Field(max_length=500, pattern=VISIBLE)


class FeedbackEventIn(_EventFields):
    """A suggestion shown (impression) or clicked: needs the suggested article_id (or its url), and its position."""

    model_config = ConfigDict(json_schema_extra=needs_one_of("article_id", "url"))
    kind: Literal["suggestion_impression", "suggestion_click"]

    @model_validator(mode="after")
    def _names_the_article(self) -> FeedbackEventIn:
        check_one_of(self, "article_id", "url")
        return self


EventIn = Annotated[PageEventIn | SearchEventIn | FeedbackEventIn, Field(discriminator="kind")]
EventIn.__doc__ = "One thing the visitor did; `kind` says which, and what else it needs."


class EventOut(BaseModel):
    stored: bool = Field(description="False when the event repeated one already stored (same event_id or a reload).")
    event_id: str | None
    article_id: str | None = Field(description="The KB article the event was linked to, if any.")


class EventsBatchIn(_Strict):
    """Several events in one request (the widget's page view, or the impressions of one render), optionally
    followed by suggestions, so a page view costs one round trip instead of one per event."""

    events: list[EventIn] = Field(default_factory=list, max_length=50, description="Stored in order.")
    suggest: whole_int(1, MAX_K) | None = Field(
        None, description="Also return this many suggestions, computed after the events are stored."
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
    k: whole_int(1, MAX_K) | None = Field(None, description="How many suggestions to inject into the reply.")


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
        None,
        description="The index folder's version this worker serves (None: an index built in memory or a flat folder).",
    )


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. unknown_session, invalid_request.")
    message: str = Field(description="What went wrong and what is expected instead.")


class ErrorOut(BaseModel):
    error: ErrorBody
