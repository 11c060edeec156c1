"""Every error leaves the service as JSON `{"error": {"code", "message"}}` with the right status.

UnknownSessionError   404 unknown_session      UnknownArticleError  404 unknown_article (409 when a body names it)
InvalidEventError     422 invalid_event        request validation   422 invalid_request
ConfigError           400 invalid_argument     EmptySessionError    409 empty_session
LimitExceededError    409 limit_exceeded       RateLimitedError     429 rate_limited (+ Retry-After)
StoreUnavailableError 503 store_unavailable (+ Retry-After): Redis stopped, paused or unreachable
HTTP errors (404 route, 405 method, …) keep their status with code not_found / method_not_allowed / …
anything else         500 internal (logged; the message says nothing about internals)
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from plugin import (
    ConfigError,
    EmptySessionError,
    InvalidEventError,
    LimitExceededError,
    PluginError,
    RateLimitedError,
    StoreUnavailableError,
    UnknownArticleError,
    UnknownSessionError,
)

from .models import ErrorOut
from .sessions import redact_session_ids

__all__ = ["error_response", "install_error_handlers", "ERROR_RESPONSES"]

logger = logging.getLogger(__name__)

# Most specific first: RateLimitedError is a LimitExceededError, which is a ValueError like ConfigError.
_PLUGIN_ERRORS: tuple[tuple[type[PluginError], int, str], ...] = (
    (UnknownSessionError, 404, "unknown_session"),
    (UnknownArticleError, 404, "unknown_article"),
    (InvalidEventError, 422, "invalid_event"),
    (RateLimitedError, 429, "rate_limited"),
    (LimitExceededError, 409, "limit_exceeded"),
    (EmptySessionError, 409, "empty_session"),
    (ConfigError, 400, "invalid_argument"),
    (StoreUnavailableError, 503, "store_unavailable"),
)

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

# For the OpenAPI document: the error shape of the 4xx answers.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "A body that is not JSON, or an argument out of range", "model": ErrorOut},
    404: {"description": "Unknown (or erased) session, or unknown article in the path", "model": ErrorOut},
    409: {
        "description": "Nothing to suggest from yet, a session limit was hit, or feedback names an article "
        "the knowledge base does not hold",
        "model": ErrorOut,
    },
    413: {"description": "Request body over the size limit", "model": ErrorOut},
    422: {"description": "Invalid request body or parameters", "model": ErrorOut},
    429: {"description": "Too many requests for this session or client; see Retry-After", "model": ErrorOut},
    503: {
        "description": "The session store is not answering; nothing to fix in the request: see Retry-After",
        "model": ErrorOut,
    },
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(_short(str(p), 40) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{loc}: {_short(str(err.get('msg', 'invalid')), 200)}")  # some msgs quote the input
    return "; ".join(parts) or "invalid request"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _on_plugin_error(request: Request, exc: Exception) -> JSONResponse:
    for cls, status, code in _PLUGIN_ERRORS:
        if isinstance(exc, cls):
            headers = None
            if isinstance(exc, (RateLimitedError, StoreUnavailableError)):
                headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
            return error_response(status, code, str(exc), headers)
    # the path holds the session id, a bearer token: the log gets its first 8 characters, like the access log
    logger.error("unhandled plugin error on %s %s", request.method, redact_session_ids(request.url.path), exc_info=exc)
    return error_response(500, "internal", "the server could not complete this request")


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_request", _validation_message(exc))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error" if exc.status_code < 500 else "internal")
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {_short(request.url.path, 80)}; the API lives under /v1 (see /openapi.json)"
    return error_response(exc.status_code, code, message, getattr(exc, "headers", None))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, redact_session_ids(request.url.path), exc_info=exc)
    return error_response(500, "internal", "the server could not complete this request")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PluginError, _on_plugin_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
