"""The service as deployed for real traffic: `create_app` plus signed session ids, request limits, an
optional shared Redis session store, and a no-consent endpoint that suggests from the current page only.

    SESSION_SUGGEST_INDEX=/srv/index SESSION_SUGGEST_SECRET=... REDIS_URL=redis://127.0.0.1:6379/0 \\
        uvicorn --factory adapters.http.hardened:app_from_env --workers 4

Every worker is stateless: sessions live in Redis, ids are verified by signature, rate limits are counted
in Redis, and the index directory is only read. See docs/production.md.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from plugin import ReloadingRecommender, SessionRecommender, SessionSettings
from plugin.chat import MAX_K

from .app import SuggestionJSON, create_app, recommender_from_env, settings_from_env
from .heap import freeze_startup_heap
from .limits import InMemoryRateLimiter, LimitSettings, RateLimiter, RedisRateLimiter, install_limits
from .models import VISIBLE, SuggestionsOut, check_one_of, needs_one_of, whole_int
from .revocation import InMemoryRevocations, RedisRevocations, Revocations
from .sessions import redact_session_ids
from .settings import ServerSettings
from .signing import SignedSessionIds, install_session_binding, log_pseudonym_keys, secrets_from_env

__all__ = [
    "create_hardened_app",
    "app_from_env",
    "PageIn",
    "RedactSessionIds",
    "ENV_REDIS_URL",
    "ENV_REDIS_PREFIX",
    "ENV_TTL",
    "ENV_LIMITS",
    "ENV_API_DOCS",
]

ENV_REDIS_URL = "REDIS_URL"
ENV_TTL = "SESSION_SUGGEST_TTL_SECONDS"
ENV_LIMITS = "SESSION_SUGGEST_LIMITS"  # JSON of LimitSettings fields, e.g. {"per_client": 1200}
ENV_REDIS_PREFIX = "SESSION_SUGGEST_REDIS_PREFIX"  # namespaces keys when sites share one Redis
ENV_BIND_COOKIE = "SESSION_SUGGEST_BIND_COOKIE"  # "1": bind ids to the creating browser (same-origin API)
ENV_API_DOCS = "SESSION_SUGGEST_API_DOCS"  # "1": serve Swagger UI at /api/docs (off: it loads a CDN's script)


class PageIn(BaseModel):
    """The page the visitor is on, for a visitor who has not consented to tracking: nothing is stored.
    Needs url, title, text or article_id."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra=needs_one_of("url", "title", "text", "article_id")
    )

    url: str | None = Field(None, max_length=2048, pattern=VISIBLE, description="Url of the current page.")
    title: str | None = Field(None, max_length=500, pattern=VISIBLE)
    text: str | None = Field(None, max_length=20_000, pattern=VISIBLE, description="Main text of the current page.")
    article_id: str | None = Field(None, min_length=1, max_length=200, pattern=VISIBLE)
    k: whole_int(1, MAX_K) | None = Field(None, description="How many suggestions.")
    locale: str | None = Field(None, max_length=20)

    @model_validator(mode="after")
    def _something_to_go_on(self) -> PageIn:
        check_one_of(self, "url", "title", "text", "article_id")
        return self


# The one free-text query parameter (GET …/suggestions?query=): what a visitor typed, maybe an email address.
_TYPED_QUERY = re.compile(r"([?&]query=)[^&#\s\"]*")


def _redacted(line: str) -> str:
    return _TYPED_QUERY.sub(r"\1…", redact_session_ids(line))


class RedactSessionIds(logging.Filter):
    """Cut session ids in logged request paths to 8 characters, and drop the text of a `query=` parameter: an id
    is a bearer token, what a visitor typed is theirs, and access logs are read by more people than should act as
    any visitor or read what they asked. Installed on uvicorn's access logger by app_from_env."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = _redacted(record.msg)
        return True


def _page_router(
    rec: SessionRecommender | ReloadingRecommender, cfg: ServerSettings, render: SuggestionJSON
) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/suggestions", response_model=SuggestionsOut, tags=["suggestions"])
    def suggest_for_page(page: PageIn) -> dict[str, Any]:
        """Suggestions for the current page alone (consent=false): no session, no log, nothing kept."""
        k = page.k or cfg.default_k
        if k > cfg.max_k:  # the schema's maximum, as for chat
            raise RequestValidationError(
                [{"loc": ("body", "k"), "msg": f"Input should be between 1 and {cfg.max_k}", "type": "value_error"}]
            )
        found = rec.suggest_for_page(
            k, url=page.url, title=page.title, text=page.text, article_id=page.article_id, locale=page.locale
        )
        return {"session_id": "", "suggestions": render.many(found)}

    return router


def create_hardened_app(
    recommender: SessionRecommender | ReloadingRecommender,
    *,
    secrets: Sequence[str | bytes] | str | bytes,
    settings: ServerSettings | None = None,
    limits: LimitSettings | None = None,
    limiter: RateLimiter | None = None,
    responder: Any = None,
    bind_to_browser: bool = False,
    secure_cookie: bool = True,
    revocations: Revocations | None = None,
    api_docs: bool = False,
) -> FastAPI:
    """`create_app` with signed ids (HMAC under `secrets`), body-size and rate limits, and POST /v1/suggestions.

    `bind_to_browser`: also bind each id to the creating browser with an HttpOnly cookie (same-origin
    deployments; see `signing.SessionBindingMiddleware`). `secure_cookie=False` only for plain-http testing.
    `revocations`: where erased ids are refused (in-memory by default; `RedisRevocations` for several workers).
    The event log (settings.event_log) is keyed by pseudonyms derived from `secrets`.
    `api_docs`: serve Swagger UI at /api/docs. Off by default: its page loads a script from a CDN, which would run
    on the API's origin (the site's own origin when ids are bound to the browser); /openapi.json stays.
    """
    cfg = settings or ServerSettings()
    ids = SignedSessionIds(secrets, revocations=revocations if revocations is not None else InMemoryRevocations())
    app = create_app(
        recommender,
        settings=cfg,
        responder=responder,
        session_ids=ids,
        log_pseudonym_keys=log_pseudonym_keys(secrets),
        api_docs=api_docs,
    )
    app.include_router(_page_router(recommender, cfg, app.state.suggestion_json))
    install_limits(app, limits, limiter if limiter is not None else InMemoryRateLimiter())
    if bind_to_browser:
        install_session_binding(app, secrets, secure=secure_cookie)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory. SESSION_SUGGEST_INDEX (read-only index dir) and SESSION_SUGGEST_SECRET are required;
    with REDIS_URL, sessions and rate limits are shared by every worker through Redis."""
    index_dir, settings = settings_from_env()
    keys = secrets_from_env()
    session_settings = SessionSettings(ttl_seconds=float(os.environ.get(ENV_TTL, "1800")))
    limits = LimitSettings.model_validate_json(os.environ.get(ENV_LIMITS) or "{}")
    store = None
    limiter: RateLimiter = InMemoryRateLimiter()
    revocations: Revocations = InMemoryRevocations()
    redis_url = os.environ.get(ENV_REDIS_URL)
    if redis_url:
        from plugin.redis_store import RedisSessionStore

        prefix = os.environ.get(ENV_REDIS_PREFIX) or "session-suggest:"
        store = RedisSessionStore.from_url(redis_url, session_settings, prefix=prefix)
        # one guard for all three: an outage found by one fails the others fast too (503 store_unavailable)
        limiter = RedisRateLimiter(store.client, prefix=prefix + "rl:", guard=store.guard)
        revocations = RedisRevocations(store.client, prefix=prefix + "revoked:", guard=store.guard)
    rec = recommender_from_env(index_dir, store=store, session_settings=session_settings)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSessionIds) for f in access.filters):
        access.addFilter(RedactSessionIds())
    bind = os.environ.get(ENV_BIND_COOKIE, "").lower() in ("1", "true", "yes")
    api_docs = os.environ.get(ENV_API_DOCS, "").lower() in ("1", "true", "yes")
    app = create_hardened_app(
        rec,
        secrets=keys,
        settings=settings,
        limits=limits,
        limiter=limiter,
        bind_to_browser=bind,
        revocations=revocations,
        api_docs=api_docs,
    )
    freeze_startup_heap()  # last: everything the worker built is kept out of the collector's scans (`heap`)
    return app
