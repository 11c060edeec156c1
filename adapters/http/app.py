"""The HTTP service: sessions, events, suggestions, chat with injected suggestions, erase, health; plus the
widget's static files. `create_app` builds it around any SessionRecommender; `app_from_env` is the import
string factory for uvicorn (`uvicorn --factory adapters.http.app:app_from_env`, several workers).

The GET suggestions path is kept lean: when nothing needs embedding — every page the session read off the KB
is already in this worker's embedding cache (the recommender embeds page text at track time), or the store is
this process's own memory — it runs on the event loop (no thread hop); otherwise (a query to embed, or a page
view that another worker tracked) it runs in the thread pool so the encoder never stalls the loop. It writes
the JSON itself instead of re-validating it.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException

import plugin
from plugin import (
    ConfigError,
    EmptySessionError,
    EventLog,
    InMemorySessionStore,
    ReloadingRecommender,
    SessionRecommender,
    Suggestion,
    UnknownArticleError,
    UnknownSessionError,
)
from plugin.chat import MAX_K, ChatPolicy, suggest_for_reply
from plugin.encoder import LazyEncoder
from plugin.threads import pin_threads
from plugin.urls import safe_url

from .allocator import limit_malloc_arenas
from .errors import ERROR_RESPONSES, error_response, install_error_handlers
from .heap import freeze_startup_heap, refreeze_after_swap
from .models import (
    ChatIn,
    ChatOut,
    EventIn,
    EventOut,
    EventsBatchIn,
    EventsBatchOut,
    HealthOut,
    SessionOut,
    SuggestionsOut,
)
from .responder import ExtractiveResponder, Reply, as_responder, forget_session
from .sessions import SessionIds
from .settings import ServerSettings

__all__ = [
    "create_app",
    "app_from_env",
    "settings_from_env",
    "single_threaded_compute",
    "SuggestionJSON",
    "STATIC_DIR",
    "ENV_INDEX",
    "ENV_EVENT_LOG",
    "ENV_URL_TEMPLATE",
    "ENV_RELOAD_SECONDS",
    "recommender_from_env",
]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
ENV_INDEX = "SESSION_SUGGEST_INDEX"
ENV_EVENT_LOG = "SESSION_SUGGEST_EVENT_LOG"
ENV_URL_TEMPLATE = "SESSION_SUGGEST_ARTICLE_URL_TEMPLATE"
ENV_RELOAD_SECONDS = "SESSION_SUGGEST_RELOAD_SECONDS"  # how often workers look for a new index version; 0: never

SessionPath = Annotated[str, PathParam(description="Session id from POST /v1/sessions (anything else is 404).")]


def suggest_parameters(max_k: int) -> list[dict[str, Any]]:
    """The GET suggestions parameters as the OpenAPI document states them (checked by `_suggest_params`)."""
    return [
        {
            "name": "session_id",
            "in": "path",
            "required": True,
            "description": "Session id from POST /v1/sessions.",
            "schema": {"type": "string"},
        },
        {
            "name": "k",
            "in": "query",
            "required": False,
            "description": "How many suggestions (default 3).",
            "schema": {"type": "integer", "minimum": 1, "maximum": max_k},
        },
        {
            "name": "locale",
            "in": "query",
            "required": False,
            "description": "Only articles in this locale.",
            "schema": {"type": "string", "maxLength": 20},
        },
        {
            "name": "tags",
            "in": "query",
            "required": False,
            "description": "Only articles with one of these tags.",
            "schema": {"type": "array", "items": {"type": "string", "maxLength": 100}, "maxItems": 10},
            "style": "form",
            "explode": True,
        },
        {
            "name": "query",
            "in": "query",
            "required": False,
            "description": "Free text blended into the session intent.",
            "schema": {"type": "string", "maxLength": 500},
        },
    ]


def _suggest_params(qp: QueryParams, default_k: int, max_k: int) -> dict[str, Any]:
    """Validate the suggestions query string like the OpenAPI schema above says; RequestValidationError if not."""
    errors: list[dict[str, Any]] = []

    def bad(name: str, msg: str) -> None:
        errors.append({"loc": ("query", name), "msg": msg, "type": "value_error"})

    k = default_k
    raw_k = qp.get("k")
    if raw_k is not None:
        if not (raw_k.isascii() and raw_k.isdigit()):  # "²".isdigit() is True, int("²") raises
            bad("k", "Input should be a valid integer")
        elif not 1 <= int(raw_k) <= max_k:
            bad("k", f"Input should be between 1 and {max_k}")
        else:
            k = int(raw_k)
    locale = qp.get("locale") or None
    if locale is not None and len(locale) > 20:
        bad("locale", "String should have at most 20 characters")
    tags = qp.getlist("tags") or None
    if tags is not None and (len(tags) > 10 or any(len(t) > 100 for t in tags)):
        bad("tags", "At most 10 tags of at most 100 characters each")
    query = qp.get("query") or None
    if query is not None and len(query) > 500:
        bad("query", "String should have at most 500 characters")
    if errors:
        raise RequestValidationError(errors)
    return {"k": k, "locale": locale, "tags": tags, "query": query}


# A batch is JSON whatever the declared type: text/plain makes it a CORS "simple request" (no preflight, and what
# navigator.sendBeacon sends). That skips no check here: the session id in the path is the credential, and the
# body is parsed as strictly as any JSON body, under the same size and rate limits.
_BATCH_MEDIA_TYPES = ("application/json", "text/plain")
_BATCH_SCHEMA = EventsBatchIn.model_json_schema(ref_template="#/components/schemas/{model}")
_BATCH_SCHEMA.pop("$defs", None)  # EventIn: already in the document's components (POST .../events)
_BATCH_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {t: {"schema": _BATCH_SCHEMA} for t in _BATCH_MEDIA_TYPES},
}


def _batch_body(content_type: str | None, raw: bytes) -> EventsBatchIn:
    """The batch in a request body; 415 for another media type, 422 (like any body) when it does not validate."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in _BATCH_MEDIA_TYPES:
        raise HTTPException(
            415,
            f"send the batch as JSON with Content-Type {' or '.join(_BATCH_MEDIA_TYPES)}, "
            f"not {media or 'no Content-Type'}",
        )
    try:
        return EventsBatchIn.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


class SuggestionJSON:
    """A Suggestion as every endpoint returns it (`models.SuggestionOut`), `href` included: one place, so the
    GET, chat and no-consent endpoints cannot drift apart."""

    def __init__(self, article_url_template: str | None = None) -> None:
        self.template = article_url_template
        # Snippets re-split the article text on every call; articles are immutable, so compute each once. Bounded
        # well below 65,536: the cache holds its articles (texts and all), also those of KB versions reloaded since.
        self._snippet = functools.lru_cache(maxsize=8_192)(plugin.Article.snippet)

    def href(self, article: plugin.Article) -> str:
        """Where a link to the article points: the site's own page, else its KB url; '' when the url policy
        refuses it (a `javascript:` url in a KB written before the policy, say)."""
        return safe_url(self.template.format(id=quote(article.id, safe="")) if self.template else article.url)

    def __call__(self, s: Suggestion) -> dict[str, Any]:
        a = s.article
        return {
            "id": a.id,
            "title": a.title,
            "url": safe_url(a.url),
            "href": self.href(a),
            "snippet": self._snippet(a),
            "reason": s.reason,
            "drivers": list(s.drivers),
            "score": round(float(s.score), 6),
            "rank": s.rank,
        }

    def many(self, found: Sequence[Suggestion]) -> list[dict[str, Any]]:
        return [self(s) for s in found]


class _WidgetFiles(StaticFiles):
    """The widget's files, cacheable for an hour: every page of the embedding site loads them."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.setdefault("Cache-Control", "public, max-age=3600")
        return response


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status, media_type="application/json")


class _PinVersion:
    """ASGI middleware: each request sees one index version from start to end, even if a new one is swapped
    in meanwhile (the pin follows the request into the thread pool with its context)."""

    def __init__(self, app: Any, handle: ReloadingRecommender) -> None:
        self.app = app
        self.handle = handle

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # the lifespan lasts as long as the app: pinning it would pin nothing useful
            await self.app(scope, receive, send)
            return
        with self.handle.pinned():
            await self.app(scope, receive, send)


class _ResponseHeaders:
    """ASGI middleware: `X-Content-Type-Options: nosniff` on every response, and `Cache-Control: no-store` on the
    session and page routes. Those carry what a visitor read and their bearer id: no browser or shared cache may
    keep a copy, or a session erased here would live on there. Outermost, so refusals (413, 429) get them too."""

    _PRIVATE = ("/v1/sessions", "/v1/suggestions")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope.get("path", "").startswith(self._PRIVATE)

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if private and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    recommender: SessionRecommender | ReloadingRecommender,
    *,
    settings: ServerSettings | None = None,
    responder: Any = None,
    session_ids: Any = None,
    log_pseudonym_keys: Sequence[bytes] | None = None,
    api_docs: bool = True,
) -> FastAPI:
    """The FastAPI app around `recommender`. `responder`: LangChain runnable or callable (default: extractive).
    `session_ids`: what issues and checks ids (issue/check/forget), e.g. `signing.SignedSessionIds`.
    `log_pseudonym_keys`: keys of the event log's session pseudonyms (default: the log's own key file).
    `api_docs`: serve Swagger UI at /api/docs (its script and styles come from a CDN, run on the API's origin);
    /openapi.json is served either way."""
    rec = recommender
    cfg = settings or ServerSettings()
    if cfg.event_log is not None and rec.event_log is None:
        rec.event_log = EventLog(cfg.event_log, log_text=cfg.log_text, pseudonym_keys=log_pseudonym_keys)
    ids = (
        session_ids
        if session_ids is not None
        else SessionIds(
            rec.store, ttl_seconds=rec.session_settings.ttl_seconds, max_sessions=rec.session_settings.max_sessions
        )
    )
    respond = as_responder(responder) if responder is not None else ExtractiveResponder(rec)
    render = SuggestionJSON(cfg.article_url_template)
    # Suggesting for a process-local store reads vectors this process embedded at track time.
    local_store = isinstance(rec.store, InMemorySessionStore)

    # The widget reports an impression when the visitor sees the card, so the server records none itself.
    chat_policy = ChatPolicy(k=cfg.default_k, record_impressions=False)

    def check_k(k: int, loc: tuple[str, ...]) -> int:
        if k > cfg.max_k:  # the schema's maximum (see _spec_max_k): the same 422 as any schema violation
            raise RequestValidationError(
                [{"loc": loc, "msg": f"Input should be between 1 and {cfg.max_k}", "type": "value_error"}]
            )
        return k

    app = FastAPI(
        title=cfg.title,
        version=plugin.__version__,
        description="Session-aware article suggestions: track what a visitor reads, suggest, chat.",
        docs_url="/api/docs" if api_docs else None,
        redoc_url=None,
        responses=ERROR_RESPONSES,
        # Starlette's trailing-slash redirect builds its Location from the Host header: a poisoned Host (or a
        # cache in front keyed without it) would send visitors elsewhere. A path is either a route or a 404.
        redirect_slashes=False,
    )
    app.state.recommender = rec
    app.state.session_ids = ids
    app.state.settings = cfg
    app.state.suggestion_json = render
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(cfg.cors_origins),
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Content-Type"],
        max_age=600,
    )
    install_error_handlers(app)
    if isinstance(rec, ReloadingRecommender):
        app.add_middleware(_PinVersion, handle=rec)
    app.add_middleware(_ResponseHeaders)

    @app.get("/v1/health", response_model=HealthOut, tags=["service"])
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "articles": len(rec.kb),
            "encoder": rec.encoder.name,
            "sessions": len(rec.store),
            "index_version": rec.version,
        }

    @app.post("/v1/sessions", response_model=SessionOut, status_code=201, tags=["sessions"])
    async def create_session() -> dict[str, Any]:
        return {"session_id": ids.issue(), "expires_in": rec.session_settings.ttl_seconds}

    @app.delete("/v1/sessions/{session_id}", status_code=204, tags=["sessions"])
    def erase_session(session_id: SessionPath) -> Response:
        """Forget the session: its events in memory and in the event log, and the responder's memory of it (an
        agent's conversation thread)."""
        ids.check(session_id)
        rec.erase(session_id)
        forget_session(respond, session_id)  # before the id is revoked: a failure here leaves the erase retryable
        ids.forget(session_id)
        # Again, now that no id check passes: a request whose check passed before the revocation (another worker, a
        # beacon in flight) may have stored its event after the store was erased, and logged it after the log was
        # rewritten (its append waits for the log's lock, held through the rewrite).
        rec.erase(session_id)
        return Response(status_code=204)

    def event_fields(event: EventIn) -> dict[str, Any]:
        """The event's fields for `track`; raises UnknownArticleError for feedback naming no KB article."""
        fields = event.model_dump(exclude_none=True, exclude={"kind"})
        if event.kind.startswith("suggestion_"):
            # Feedback must name a real article, or the CTR report counts noise.
            if event.article_id is not None:
                rec.kb.get(event.article_id)
            elif event.url is not None:
                fields["article_id"] = rec.kb.resolve(event.url).id
        return fields

    def unknown_article(exc: UnknownArticleError) -> Response:
        # 409, not 404: the session in the path exists; the body names something the knowledge base does not
        # hold (now).
        return error_response(409, "unknown_article", str(exc))

    def store_event(session_id: str, event: EventIn, fields: dict[str, Any]) -> dict[str, Any]:
        stored = rec.track(session_id, event.kind, **fields)
        if stored is None:
            return {"stored": False, "event_id": event.event_id, "article_id": event.article_id}
        return {"stored": True, "event_id": stored.event_id, "article_id": stored.article_id}

    def unless_erased_meanwhile(session_id: str) -> None:
        """After a write: if an erase of the session ran on this worker between the id check and the write, the write
        outlived it (nothing erases after the DELETE's last step), so erase it too and answer as for an erased id.
        (A session erased lately cannot pass the check any more: only such a race gets here.)"""
        if rec.rows.erased(session_id):
            rec.erase(session_id)
            raise UnknownSessionError("no such session: it was erased; create a new one with POST /v1/sessions")

    def embeds(event: EventIn) -> bool:
        return rec.embeds_on_track(event.kind, url=event.url, article_id=event.article_id)

    @app.post("/v1/sessions/{session_id}/events", response_model=EventOut, tags=["sessions"])
    async def post_event(session_id: SessionPath, event: EventIn) -> Any:
        ids.check(session_id)

        def work() -> Any:
            try:
                fields = event_fields(event)
            except UnknownArticleError as exc:
                return unknown_article(exc)
            result = store_event(session_id, event, fields)
            unless_erased_meanwhile(session_id)
            return result

        # An event whose text is embedded (milliseconds with MiniLM) goes to the thread pool, off the event loop; the
        # rest (KB pages, impressions, clicks: look-ups and one store write) runs here, like GET suggestions. The
        # hop to a thread cost more than that work under load: the thread waits for the GIL behind the loop.
        return await run_in_threadpool(work) if embeds(event) else work()

    @app.post(
        "/v1/sessions/{session_id}/events/batch",
        response_model=EventsBatchOut,
        tags=["sessions"],
        openapi_extra={"requestBody": copy.deepcopy(_BATCH_REQUEST_BODY)},  # _spec_max_k edits it per app
    )
    async def post_events_batch(session_id: SessionPath, request: Request) -> Response:
        """Store several events in order, then (with `suggest`) return suggestions: the widget's one request per
        page view and per render of impressions. Accepts a text/plain JSON body too, so browsers send it
        cross-origin without a CORS preflight (and as a beacon on page hide)."""
        session_id = ids.check(session_id)
        batch = _batch_body(request.headers.get("content-type"), await request.body())
        if batch.suggest is not None:  # before anything is stored: a bad batch stores nothing
            check_k(batch.suggest, ("body", "suggest"))
        k = batch.suggest

        def store() -> list[dict[str, Any]] | Response:
            # Every feedback event names a real article before any event is stored: a bad batch stores nothing.
            try:
                fields = [event_fields(e) for e in batch.events]
            except UnknownArticleError as exc:
                return unknown_article(exc)
            results = [store_event(session_id, e, f) for e, f in zip(batch.events, fields)]
            if results:
                unless_erased_meanwhile(session_id)
            return results

        # One path whatever the events: storing runs in the thread pool when an event's text is embedded (milliseconds
        # with MiniLM), here otherwise (look-ups and one store write); then one context read, after the events are
        # stored, and the suggestion by GET suggestions' rule: in the thread pool only when it would run the encoder.
        # (It was one thread-pool call for both: a suggestion there waits for the GIL behind the loop, round 9 of
        # BENCHMARKS.md's production load.)
        results = await run_in_threadpool(store) if any(embeds(e) for e in batch.events) else store()
        if isinstance(results, Response):
            return results
        body: dict[str, Any] = {"results": results, "suggestions": None}
        if k is not None:
            context = rec.context(session_id)
            suggest = functools.partial(rec.suggest, session_id, k, context=context)
            try:
                if not local_store and rec.needs_encoding(context.events):
                    found = await run_in_threadpool(suggest)
                else:
                    found = suggest()
            except EmptySessionError:  # nothing read yet: not an error for a page view that was skipped
                found = []
            body["suggestions"] = render.many(found)
        return _json(body)

    @app.get(
        "/v1/sessions/{session_id}/suggestions",
        response_model=SuggestionsOut,
        tags=["suggestions"],
        openapi_extra={"parameters": suggest_parameters(cfg.max_k)},
    )
    async def get_suggestions(request: Request) -> Response:
        """Top-k articles for what this session has read, each with a reason. 409 until it has read something
        (or pass `query`)."""
        # Parameters are read by hand: FastAPI's per-parameter solving measured ~0.1 ms a request here, a tenth
        # of the whole request. suggest_parameters documents them in the OpenAPI schema all the same.
        session_id = ids.check(request.path_params["session_id"])
        params = _suggest_params(request.query_params, cfg.default_k, cfg.max_k)
        # Embedding (a query, or a page another worker tracked) takes milliseconds: keep it off the event loop.
        context = rec.context(session_id)  # one store read, reused by suggest
        if params["query"] or (not local_store and rec.needs_encoding(context.events)):
            found = await run_in_threadpool(lambda: rec.suggest(session_id, context=context, **params))
        else:
            found = rec.suggest(session_id, context=context, **params)
        return _json({"session_id": session_id, "suggestions": render.many(found)})

    @app.post("/v1/sessions/{session_id}/chat", response_model=ChatOut, tags=["chat"])
    def chat(session_id: SessionPath, body: ChatIn) -> Response:
        """Answer the message and inject suggestions drawn from the session (and the question) into the reply."""
        ids.check(session_id)
        k = check_k(body.k or cfg.default_k, ("body", "k"))
        try:
            reply: Reply = respond(body.message, session_id=session_id)
        except Exception:
            logger.exception("responder failed for session %s", session_id[:8])
            return error_response(503, "responder_unavailable", "the assistant could not answer; try again shortly")
        exclude = [reply.source.id] if reply.source is not None else []
        found = suggest_for_reply(
            rec, session_id, reply.text, policy=chat_policy, source="chat", query=body.message, k=k, exclude=exclude
        ).suggestions
        source = None
        if reply.source is not None:
            source = {"id": reply.source.id, "title": reply.source.title, "href": render.href(reply.source)}
        return _json(
            {"reply": reply.text, "responder": reply.responder, "source": source, "suggestions": render.many(found)}
        )

    app.mount("/static", _WidgetFiles(directory=STATIC_DIR), name="static")
    _spec_max_k(app, cfg.max_k)
    return app


def _spec_max_k(app: FastAPI, max_k: int) -> None:
    """Make the OpenAPI document state this server's k bound: request models are declared with the package
    bound MAX_K, and a server configured lower must not promise more than it accepts."""
    if max_k == MAX_K:
        return
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _lower_k_bounds(schema, max_k)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _lower_k_bounds(node: Any, max_k: int) -> None:
    """Every `k` / `suggest` property bounded by MAX_K in this part of the OpenAPI document (component models such
    as ChatIn, and the events batch's inline body) gets the server's bound instead."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            if name in ("k", "suggest") and isinstance(prop, dict):
                for option in (prop, *prop.get("anyOf", [])):
                    if option.get("maximum") == MAX_K:
                        option["maximum"] = max_k
        for value in node.values():
            _lower_k_bounds(value, max_k)
    elif isinstance(node, list):
        for value in node:
            _lower_k_bounds(value, max_k)


def single_threaded_compute() -> None:
    """Pin FAISS and torch to one thread per server process (`plugin.threads.pin_threads`; SESSION_SUGGEST_THREADS
    changes the count, 0 opts out). Kept for the entry points that call it; the recommender's load pins too."""
    pin_threads()


def settings_from_env() -> tuple[str, ServerSettings]:
    """Worker setup every uvicorn factory shares: limit malloc's arenas (first: before any thread of this worker,
    compute or route pool, has allocated; see `allocator`), pin compute to one thread, then read the index directory
    (SESSION_SUGGEST_INDEX, required) and the ServerSettings from the environment."""
    limit_malloc_arenas()
    single_threaded_compute()
    index_dir = os.environ.get(ENV_INDEX)
    if not index_dir:
        raise ConfigError(f"set {ENV_INDEX} to an index directory built with `python -m plugin index SOURCE --out DIR`")
    log = os.environ.get(ENV_EVENT_LOG) or None
    settings = ServerSettings(
        event_log=Path(log) if log else None,
        article_url_template=os.environ.get(ENV_URL_TEMPLATE) or None,
    )
    return index_dir, settings


def recommender_from_env(index_dir: str, **kwargs: Any) -> ReloadingRecommender:
    """The index folder's current version, followed: a re-index or a newly installed intent model is served
    within a second, without a restart (every SESSION_SUGGEST_RELOAD_SECONDS, default 0.5; 0 turns it off).
    kwargs go to `SessionRecommender.load` (store, session_settings, ...)."""
    raw = os.environ.get(ENV_RELOAD_SECONDS) or "0.5"
    try:
        interval = float(raw)
    except ValueError:
        raise ConfigError(f"{ENV_RELOAD_SECONDS} must be a number of seconds (0: no reloading), got {raw!r}") from None
    if interval < 0:
        raise ConfigError(f"{ENV_RELOAD_SECONDS} must be >= 0 (0: no reloading), got {raw!r}")
    # a swapped-out version is collected even when the worker's heap is frozen (`heap`)
    rec = ReloadingRecommender(index_dir, check_interval=interval or None, on_swap=refreeze_after_swap, **kwargs)
    if isinstance(rec.encoder.inner, LazyEncoder):
        rec.encoder.inner.get()  # a worker builds its text encoder at start, not on a visitor's first request
    rec.warm()  # likewise its BM25 index and hubness discounts
    return rec


def app_from_env() -> FastAPI:
    """uvicorn factory: the index directory from SESSION_SUGGEST_INDEX (built by `python -m plugin index`)."""
    index_dir, settings = settings_from_env()
    app = create_app(recommender_from_env(index_dir), settings=settings)
    freeze_startup_heap()  # last: everything the worker built is kept out of the collector's scans (`heap`)
    return app
