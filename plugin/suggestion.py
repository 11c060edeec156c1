"""A suggestion: one article, its score, and why it was suggested."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .knowledge_base import Article
from .urls import safe_url

__all__ = ["Suggestion"]


@dataclass(frozen=True)
class Suggestion:
    article: Article
    score: float
    reason: str  # e.g. "because you read json — JSON encoder and decoder, pickle — Python object serialization"
    drivers: tuple[str, ...] = ()  # labels of the session pages that drove it, strongest first
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.article.id,
            "title": self.article.title,
            "url": safe_url(self.article.url),  # the policy holds on every output
            "score": round(float(self.score), 6),
            "reason": self.reason,
            "drivers": list(self.drivers),
            "snippet": self.article.snippet(),
            "rank": self.rank,
        }
