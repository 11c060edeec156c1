"""Signed session ids: 128 random bits plus an HMAC-SHA256 tag under a server secret.

Any worker that holds the secret can check an id on its own, with no shared table of issued ids, so a
session created on one worker is accepted by all of them; an id that was guessed, altered, truncated, or
signed by another server (another secret) is rejected before it reaches the session store.

    token = base64url( nonce (16 random bytes) | issued_at (4 bytes, big-endian seconds) | tag (16 bytes) )
    tag   = HMAC-SHA256(secret, b"session-suggest/sid/v1" | nonce | issued_at)[:16]

Ids are bearer tokens: whoever holds one acts as that visitor, so they are never logged in full (the service
logs at most 8 characters, the event log a keyed pseudonym from `log_pseudonym_keys`) and never listed. Keys
rotate without logging anyone out: sign with the first secret, accept any of them. An erased session's id is
revoked (`forget`) for the rest of its signed lifetime, so it stops verifying at once (see `revocation`).

`SessionBindingMiddleware` (opt-in) goes one step further for same-origin deployments: it binds each id to
the browser that created it with an HttpOnly cookie scoped to that session's path and holding
HMAC(secret, id). Another visitor who learns the id (from a log, a proxy, a shared screen) still lacks the
cookie, cannot compute it without the secret, and gets 404 like for an unknown id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from plugin import ConfigError, UnknownSessionError

from .revocation import InMemoryRevocations, Revocations

__all__ = [
    "SignedSessionIds",
    "SessionBindingMiddleware",
    "SIGNED_SESSION_ID_PATTERN",
    "ENV_SECRET",
    "secrets_from_env",
    "install_session_binding",
    "log_pseudonym_keys",
]

ENV_SECRET = "SESSION_SUGGEST_SECRET"
_DOMAIN = b"session-suggest/sid/v1"
_NONCE, _STAMP, _TAG = 16, 4, 16
_RAW = _NONCE + _STAMP + _TAG  # 36 bytes -> 48 base64url characters, no padding
SIGNED_SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{48}$"
_MIN_SECRET_BYTES = 32
_SKEW = 300  # seconds of clock skew between workers that an issue time may show


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class SignedSessionIds:
    """Drop-in for `SessionIds` (issue/check/forget) that validates ids by signature instead of memory.

    `max_age_seconds` bounds how long an id is honoured at all (a session also expires after its idle TTL
    in the store; this caps a token that keeps being used). `forget` revokes an id in `revocations` until
    it would have expired anyway; pass `RedisRevocations` when several workers serve the same sessions.
    """

    def __init__(
        self,
        secrets_: Sequence[bytes | str] | bytes | str,
        *,
        max_age_seconds: float = 7 * 24 * 3600,
        clock: Callable[[], float] = time.time,
        revocations: Revocations | None = None,
    ) -> None:
        keys = [secrets_] if isinstance(secrets_, (bytes, str)) else list(secrets_)
        if not keys:
            raise ConfigError("SignedSessionIds needs at least one secret")
        self._keys = [k.encode("utf-8") if isinstance(k, str) else bytes(k) for k in keys]
        for k in self._keys:
            if len(k) < _MIN_SECRET_BYTES:
                raise ConfigError(
                    f"a session-signing secret must be at least {_MIN_SECRET_BYTES} bytes; "
                    "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
                )
        if max_age_seconds <= 0:
            raise ConfigError(f"max_age_seconds must be positive, got {max_age_seconds}")
        self._max_age = max_age_seconds
        self._clock = clock
        self._revoked: Revocations = revocations if revocations is not None else InMemoryRevocations()

    def _tag(self, key: bytes, body: bytes) -> bytes:
        return hmac.new(key, _DOMAIN + body, hashlib.sha256).digest()[:_TAG]

    def issue(self) -> str:
        body = secrets.token_bytes(_NONCE) + struct.pack(">I", int(self._clock()) & 0xFFFFFFFF)
        return _b64(body + self._tag(self._keys[0], body))

    def check(self, session_id: str) -> str:
        """The id itself if this server signed it and it is not too old; UnknownSessionError otherwise."""
        raw = self._decode(session_id)
        body, tag = raw[: _NONCE + _STAMP], raw[_NONCE + _STAMP :]
        # compare against every key, always, so the time taken says nothing about which key (if any) matched
        valid = False
        for key in self._keys:
            valid |= hmac.compare_digest(tag, self._tag(key, body))
        if not valid:
            raise UnknownSessionError("no such session: create one with POST /v1/sessions")
        age = self._age(body)
        if age > self._max_age or age < -_SKEW:
            raise UnknownSessionError("this session id has expired; create a new one with POST /v1/sessions")
        if self._revoked.is_revoked(session_id):  # erased: same answer as for any unknown id
            raise UnknownSessionError("no such session: create one with POST /v1/sessions")
        return session_id

    def _age(self, body: bytes) -> float:
        (issued,) = struct.unpack(">I", body[_NONCE:])
        return self._clock() - issued

    def forget(self, session_id: str) -> bool:
        """Revoke the id for as long as its signature would still verify (plus the clock skew tolerated)."""
        try:
            body = self._decode(session_id)[: _NONCE + _STAMP]
        except UnknownSessionError:
            return False
        self._revoked.revoke(session_id, self._max_age - self._age(body) + _SKEW)
        return True

    @staticmethod
    def _decode(session_id: str) -> bytes:
        if not isinstance(session_id, str) or len(session_id) != 48:
            raise UnknownSessionError("no such session: session ids are 48-character tokens from POST /v1/sessions")
        try:
            raw = base64.urlsafe_b64decode(session_id + "==")
        except (ValueError, TypeError):
            raise UnknownSessionError("no such session: malformed session id") from None
        if len(raw) != _RAW or _b64(raw) != session_id:  # also rejects non-canonical encodings
            raise UnknownSessionError("no such session: malformed session id")
        return raw


_LOG_KEY_DOMAIN = b"session-suggest/log-key/v1"


def log_pseudonym_keys(secrets_: Sequence[bytes | str] | bytes | str) -> list[bytes]:
    """Event-log pseudonym keys derived from the signing secrets (same order: the first writes). Every worker
    derives the same keys, so one session gets one pseudonym in a shared log; the keys differ from the signing
    keys, so a pseudonym says nothing about an id's tag."""
    return [hmac.new(k, _LOG_KEY_DOMAIN, hashlib.sha256).digest() for k in _keys(secrets_)]


def secrets_from_env(environ: dict[str, str] | None = None) -> list[str]:
    """Secrets from SESSION_SUGGEST_SECRET: comma-separated, the first signs, all verify (key rotation)."""
    env = os.environ if environ is None else environ
    value = env.get(ENV_SECRET, "")
    keys = [k.strip() for k in value.split(",") if k.strip()]
    if not keys:
        raise ConfigError(
            f"set {ENV_SECRET} to a random secret of at least {_MIN_SECRET_BYTES} bytes shared by every worker"
        )
    return keys


_BIND_DOMAIN = b"session-suggest/bind/v1"


def _keys(secrets_: Sequence[bytes | str] | bytes | str) -> list[bytes]:
    keys = [secrets_] if isinstance(secrets_, (bytes, str)) else list(secrets_)
    return [k.encode("utf-8") if isinstance(k, str) else bytes(k) for k in keys]


class SessionBindingMiddleware:
    """ASGI middleware: POST /v1/sessions sets the binding cookie; every /v1/sessions/{id}/… request must carry it.

    The cookie is `Path=/v1/sessions/{id}` (so a browser sends each session its own cookie), HttpOnly (page
    scripts cannot read it) and SameSite. It needs the browser to send cookies to the API: serve the API under
    the site's own origin (a reverse-proxy path), where fetch() sends them by default.
    """

    def __init__(
        self,
        app: Any,
        secrets: Sequence[bytes | str] | bytes | str,
        *,
        cookie: str = "ss_bind",
        secure: bool = True,
        samesite: str = "Lax",
        max_age_seconds: int = 7 * 24 * 3600,
    ) -> None:
        self.app = app
        self._keys = _keys(secrets)
        self._cookie = cookie
        self._attrs = f"; Max-Age={max_age_seconds}; HttpOnly; SameSite={samesite}" + ("; Secure" if secure else "")

    def _value(self, key: bytes, session_id: str) -> str:
        return _b64(hmac.new(key, _BIND_DOMAIN + session_id.encode("utf-8"), hashlib.sha256).digest()[:16])

    def _bound(self, scope: dict[str, Any], session_id: str) -> bool:
        sent: list[str] = []
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                for part in value.decode("latin-1").split(";"):
                    k, _, v = part.strip().partition("=")
                    if k == self._cookie:
                        sent.append(v)
        ok = False
        for key in self._keys:
            want = self._value(key, session_id)
            for v in sent:
                ok |= hmac.compare_digest(v.encode("latin-1", "replace"), want.encode())
        return ok

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parts = scope.get("path", "").split("/")
        if len(parts) >= 4 and parts[1] == "v1" and parts[2] == "sessions" and parts[3]:
            if scope.get("method") != "OPTIONS" and not self._bound(scope, parts[3]):
                body = json.dumps(
                    {
                        "error": {
                            "code": "unknown_session",
                            "message": "unknown or expired session; create a new one with POST /v1/sessions",
                        }
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 404,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            await self.app(scope, receive, send)
            return
        if not (scope.get("method") == "POST" and scope.get("path") == "/v1/sessions"):
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = list(start.get("headers", []))
            if start.get("status") == 201:
                try:
                    sid = json.loads(body)["session_id"]
                except (ValueError, KeyError, TypeError):
                    sid = None
                if isinstance(sid, str):
                    cookie = f"{self._cookie}={self._value(self._keys[0], sid)}; Path=/v1/sessions/{sid}{self._attrs}"
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


def install_session_binding(app: Any, secrets: Sequence[bytes | str] | bytes | str, **kwargs: Any) -> None:
    """Put SessionBindingMiddleware on the app, inside CORS (like the limits), so its 404s carry CORS headers."""
    from starlette.middleware import Middleware

    app.user_middleware.append(Middleware(SessionBindingMiddleware, secrets=secrets, **kwargs))
