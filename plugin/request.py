"""One call for suggestions, its options resolved against the recommender's settings once.

`SessionRecommender.suggest`, `suggest_for` and `suggest_for_page` take the same keyword options; each builds one
frozen `SuggestRequest` and the pipeline reads the options from it, instead of the same eight keywords being passed
down (and defaulted) at every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

from .config import SuggestSettings
from .errors import ConfigError

__all__ = ["SuggestRequest"]


@dataclass(frozen=True)
class SuggestRequest:
    k: int  # suggestions wanted, 1..100
    query: str | None  # a search query or chat question blended into the intent
    query_weight: float  # its weight against the reading intent
    floor: float | None  # minimum plain cosine a candidate needs; None keeps every candidate
    exclude_seen: bool  # leave out what the session already read
    exclude: tuple[str, ...] = ()  # article ids never to suggest
    locale: str | None = None
    tags: tuple[str, ...] | None = None

    @classmethod
    def resolve(
        cls,
        settings: SuggestSettings,
        k: int | None = None,
        *,
        locale: str | None = None,
        tags: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        query: str | None = None,
        query_weight: float | None = None,
        min_score: float | None = None,
        exclude_seen: bool | None = None,
    ) -> SuggestRequest:
        """The request these options make under `settings` (None: the settings' value). Raises ConfigError for a
        k outside 1..100."""
        k = settings.k if k is None else k
        if isinstance(k, bool) or not isinstance(k, Integral) or not 1 <= k <= 100:
            raise ConfigError(f"k must be an integer between 1 and 100, got {k!r}")
        return cls(
            k=k,
            query=query,
            query_weight=settings.query_weight if query_weight is None else query_weight,
            floor=settings.min_score if min_score is None else min_score,
            exclude_seen=settings.exclude_seen if exclude_seen is None else exclude_seen,
            exclude=tuple(exclude),
            locale=locale,
            tags=None if tags is None else tuple(tags),
        )
