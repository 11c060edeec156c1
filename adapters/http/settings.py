"""Server settings: one frozen pydantic model, validated once when the app is built."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plugin.chat import MAX_K
from plugin.urls import safe_url

__all__ = ["ServerSettings"]


class ServerSettings(BaseModel):
    """How the HTTP service behaves. Read from the environment by `app_from_env`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_k: int = Field(3, ge=1, le=20, description="Suggestions returned when the client does not ask for k.")
    max_k: int = Field(MAX_K, ge=1, le=MAX_K, description="Largest k a client may ask for.")
    article_url_template: str | None = Field(
        None,
        description="When set (e.g. '/docs/{id}'), each suggestion carries href=template.format(id=...) so a "
        "site that hosts the KB itself links to its own pages; otherwise href is the article's KB url.",
    )
    cors_origins: tuple[str, ...] = Field(
        ("*",), description="Origins allowed to call the API from a browser (the widget runs on the site's origin)."
    )
    event_log: Path | None = Field(
        None, description="JSONL file that tracked events (impressions and clicks included) are appended to."
    )
    log_text: bool = Field(False, description="Also write page text into the event log (off: privacy by default).")
    title: str = "session-suggest"

    @field_validator("article_url_template")
    @classmethod
    def _template_makes_links(cls, template: str | None) -> str | None:
        """Checked once here: a template that cannot be filled (`{slug}`, a stray brace) failed every response
        that carried a suggestion, and one that makes no allowed url (`javascript:{id}`) silently dropped every
        link."""
        if not template:
            return template
        try:
            example = template.format(id="an-article")
        except (KeyError, IndexError, ValueError, AttributeError):
            raise ValueError(
                f"article_url_template {template!r} must name only {{id}}, e.g. '/docs/{{id}}' or "
                "'https://docs.example/{id}.html'"
            ) from None
        if "an-article" not in example or not safe_url(example):
            raise ValueError(
                f"article_url_template {template!r} must make an http(s) or site-relative url holding {{id}}, "
                "e.g. '/docs/{id}'"
            )
        return template
