"""Settings at the boundary: validated once, then passed around as a frozen pydantic model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SessionSettings", "SuggestSettings"]


class SessionSettings(BaseModel):
    """How sessions are kept: anonymous, bounded, and short-lived."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttl_seconds: float = Field(1800.0, gt=0, description="A session idle this long expires (default 30 min).")
    max_events: int = Field(200, ge=1, description="Most events kept per session.")
    max_sessions: int = Field(100_000, ge=1, description="Most live sessions; the least recently used go first.")
    overflow: Literal["drop_oldest", "reject"] = Field(
        "drop_oldest",
        description="When a session is full: forget its oldest event, or refuse the new one (LimitExceededError).",
    )
    max_text_chars: int = Field(20_000, ge=1, description="Longest page text stored per event; longer text is cut.")
    max_title_chars: int = Field(500, ge=1)
    max_url_chars: int = Field(2048, ge=1)
    dedupe_window_seconds: float = Field(
        2.0, ge=0, description="A repeat of the same page view within this window is treated as a duplicate."
    )


class SuggestSettings(BaseModel):
    """How suggestions are chosen from the index."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # min_score, mmr_lambda, query_weight, centre, lexical_weight, link_weight, topic_split, newest_share (and the
    # zero-shot temperature in intent.py) were chosen on the tuning chapters of two real manuals, not by eye: see
    # BENCHMARKS.md, "Relevance on real documentation" (python -m bench.relevance --tune).
    k: int = Field(3, ge=1, le=100)
    exclude_seen: bool = True
    min_score: float | None = Field(
        0.2, ge=-1.0, le=1.0, description="Suggestions below this cosine are dropped; None keeps every candidate."
    )
    mmr_lambda: float = Field(
        0.85, ge=0.0, le=1.0, description="1.0 = pure relevance; lower trades relevance for diversity (MMR)."
    )
    freshness_weight: float = Field(0.0, ge=0.0, le=1.0, description="Score bonus for recently updated articles.")
    freshness_half_life_days: float = Field(90.0, gt=0)
    candidate_pool: int = Field(
        50,
        ge=1,
        description="Unread candidates taken from the index's hits (and as many from BM25's) before rules and MMR.",
    )
    max_context_events: int = Field(20, ge=1, description="Most recent events the intent model looks at.")
    query_weight: float = Field(
        0.7, ge=0.0, le=1.0, description="Weight of a search query or chat question against the reading intent."
    )
    centre: bool = Field(
        True,
        description="Compare vectors after subtracting the knowledge base's mean vector: sentence embeddings share "
        "a common direction that says little about topic, and it otherwise favours generic articles.",
    )
    lexical_weight: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="Weight of BM25 (the read pages' text against each article's text, best match = 1) added to the "
        "dense score; 0 turns lexical fusion off.",
    )
    link_weight: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Score bonus for articles that a read page links to in its text (Article.meta['links']); "
        "0 turns it off.",
    )
    hubness_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Discount on articles close to everything (CSLS, plugin.hubness): weight times the article's "
        "mean centred cosine to its 20 nearest articles is taken off its score. 0 turns it off.",
    )
    title_weight: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Weight of title similarity (the read pages' titles against each article's, plugin.titles) "
        "added to the score. 0 turns it off.",
    )
    topic_split: float | None = Field(
        0.1,
        ge=-1.0,
        le=1.0,
        description="Pages whose centred cosine to the newest page is below this are an earlier interest and get "
        "their own share of the slots (a visitor who switched topic sees both); None keeps one interest.",
    )
    newest_share: float = Field(
        0.8, ge=0.0, le=1.0, description="Share of the slots for the newest interest when the session has two."
    )
