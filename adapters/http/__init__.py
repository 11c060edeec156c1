"""HTTP adapter: FastAPI service, chat widget and demo site around a plugin.SessionRecommender."""

from __future__ import annotations

from .app import app_from_env, create_app
from .responder import ExtractiveResponder, Reply, Responder, as_responder
from .sessions import SessionIds
from .settings import ServerSettings

__all__ = [
    "ExtractiveResponder",
    "Reply",
    "Responder",
    "ServerSettings",
    "SessionIds",
    "app_from_env",
    "as_responder",
    "create_app",
]
