"""A tiny ASGI app for the worker tests: answers every request with the pid of the process that served it.
`broken` is an import string whose factory fails, as an app with a missing index would."""

from __future__ import annotations

import os
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def broken() -> Any:
    raise RuntimeError("this app cannot start (as with an index that is not there)")
