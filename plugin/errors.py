"""The plugin's exceptions: one small tree, so callers can catch exactly what they mean.

    PluginError                      base of everything raised on purpose here
    ├── ConfigError                  a setting or argument outside its valid range (also ValueError)
    ├── InvalidEventError            a tracking event that cannot be stored (also ValueError)
    ├── LimitExceededError           a per-session/per-client limit was hit (also ValueError)
    │   └── RateLimitedError         too many requests in the current window
    ├── UnknownArticleError          an article id/url the knowledge base, or an item a session model's catalogue,
    │                                does not hold (also KeyError)
    ├── UnknownSessionError          a session id that is unknown, expired, erased or forged (also KeyError)
    ├── EmptySessionError            suggestions asked for a session with nothing usable in it
    ├── DimensionMismatchError       vectors/index/model built for another embedding dimension
    ├── IndexFormatError             a persisted index/cache/model that is missing, torn or foreign
    ├── DataFormatError              an input file (KB, event log, benchmark data) that cannot be parsed
    └── StoreUnavailableError        the session store (Redis) cannot be reached or did not answer in time

The ValueError/KeyError bases are kept on purpose: callers (and `dict`-style lookups, pydantic validators,
`except ValueError` around parsing) rely on them, so catching the builtin still works.

Raised outside the tree on purpose, where Python or a framework defines the contract: `AttributeError` from a
module's `__getattr__`, `TypeError` for an object of the wrong kind (adapters.http.responder), and, in the
adapters, the framework's own errors at its boundary (FastAPI's `HTTPException`/`RequestValidationError`,
LangChain's `ToolException`, `argparse.ArgumentTypeError`, and `ValueError` inside pydantic validators,
which pydantic turns into a `ValidationError`). adapters.http.replay, a load driver, raises `RuntimeError` on
an HTTP error answer.

Messages name what was expected and, where there is a closed set, the valid options. A value the caller sent
is quoted with `shown`, never whole: an error message is no place to echo 20,000 characters back.
"""

from __future__ import annotations

__all__ = [
    "PluginError",
    "ConfigError",
    "InvalidEventError",
    "LimitExceededError",
    "RateLimitedError",
    "UnknownArticleError",
    "UnknownSessionError",
    "EmptySessionError",
    "DimensionMismatchError",
    "IndexFormatError",
    "DataFormatError",
    "StoreUnavailableError",
    "shown",
]


def shown(value: object, limit: int = 60) -> str:
    """`value` as an error message quotes it: its repr, cut to about `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PluginError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(PluginError, ValueError):
    """A setting or argument is outside its valid range."""


class InvalidEventError(PluginError, ValueError):
    """A tracking event is malformed (unknown kind, no url/title/article id, bad text)."""


class LimitExceededError(PluginError, ValueError):
    """A configured limit (events per session, text length, live sessions) would be exceeded."""


class RateLimitedError(LimitExceededError):
    """Too many requests for one session or client in the current window."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnknownArticleError(PluginError, KeyError):
    """The knowledge base holds no article with this id or url."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown article"


class UnknownSessionError(PluginError, KeyError):
    """The session id is unknown, expired, erased, or not one this server issued."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown session"


class EmptySessionError(PluginError):
    """The session has no events that can form an intent."""


class DimensionMismatchError(PluginError, ValueError):
    """Vectors, index and model disagree on the embedding dimension."""


class IndexFormatError(PluginError):
    """A persisted artifact is missing, torn, or was written by something else."""


class DataFormatError(PluginError, ValueError):
    """An input file cannot be parsed in the expected format."""


class StoreUnavailableError(PluginError):
    """The session store cannot be reached or did not answer in time (Redis stopped, paused or unreachable).

    Nothing was stored or read: the same call can be retried after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
