"""Network helpers shared by tests that start real servers (uvicorn, redis-server) on 127.0.0.1."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it; a server started next will almost surely get it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
