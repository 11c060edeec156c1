"""Signed session ids: 128 random bits plus an HMAC-SHA256 tag under a server secret.

Any worker that holds the secret can check an id on its own, with no shared table of issued ids, so a
session created on one worker is accepted by all of them; an id that was guessed, altered, truncated, or
signed by another server (another secret) is rejected before it reaches the session store.

    token = base64url( nonce (16 random bytes) | issued_at (4 bytes, big-endian seconds) | tag (16 bytes) )
    tag   = HMAC-SHA256(secret, b"session-suggest/sid/v1" | nonce | issued_at)[:16]

Ids are bearer tokens: whoever holds one acts as that visitor, so they are never logged in full (the service
logs at most 8 characters) and never listed. Keys rotate without logging anyone out: sign with the first
secret, accept any of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import struct
import time
from collections.abc import Callable, Sequence

from plugin import ConfigError, UnknownSessionError

__all__ = ["SignedSessionIds", "SIGNED_SESSION_ID_PATTERN", "ENV_SECRET", "secrets_from_env"]

ENV_SECRET = "SESSION_SUGGEST_SECRET"
_DOMAIN = b"session-suggest/sid/v1"
_NONCE, _STAMP, _TAG = 16, 4, 16
_RAW = _NONCE + _STAMP + _TAG  # 36 bytes -> 48 base64url characters, no padding
SIGNED_SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{48}$"
_MIN_SECRET_BYTES = 32


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class SignedSessionIds:
    """Drop-in for `SessionIds` (issue/check/forget) that validates ids by signature instead of memory.

    `max_age_seconds` bounds how long an id is honoured at all (a session also expires after its idle TTL
    in the store; this caps a token that keeps being used). `forget` is a no-op: erasing a session removes
    its data, and the id then names an empty session.
    """

    def __init__(
        self,
        secrets_: Sequence[bytes | str] | bytes | str,
        *,
        max_age_seconds: float = 7 * 24 * 3600,
        clock: Callable[[], float] = time.time,
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
        (issued,) = struct.unpack(">I", body[_NONCE:])
        age = self._clock() - issued
        if age > self._max_age or age < -300:  # 5 minutes of clock skew between workers is tolerated
            raise UnknownSessionError("this session id has expired; create a new one with POST /v1/sessions")
        return session_id

    def forget(self, session_id: str) -> bool:
        return False

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
