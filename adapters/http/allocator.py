"""glibc malloc's arena count for a serving worker: a bound on how much freed memory a worker holds on to.

glibc gives each thread that allocates its own malloc arena, up to 8 per core (16 on a 2-core box), and a chunk freed
in an arena is reused only by allocations served from that arena. A worker allocates from its event loop and from
the thread pool that runs the routes (a `python -m plugin serve` worker had 10-11 arenas after 3,000 requests on
16 connections), so its caches' entries, the page texts and vectors of each request, end up spread over several
arenas, each keeping its own free fragments. `bench/rss_trace.py` measured the free space glibc held (mallinfo2's
`fordblks`) in the hardened app under the wrk mix once every cache was full: 27.5 MiB with the default arenas
against 9.9 MiB with two, for the same live bytes; that free space was all the RSS the worker gained after its
caches filled (BENCHMARKS.md, production load, "Round 8"). `malloc_trim(0)` gave back almost nothing of it (the
free space is in fragments between live chunks, not whole pages), so a periodic trim is not the remedy. Fewer
arenas hold less of it (17 MiB less a worker there); the slow growth of what is left, ~0.9 MiB per 10,000
requests after the caches fill, is the same with two arenas as with six.

`limit_malloc_arenas()` sets glibc's M_ARENA_MAX (what MALLOC_ARENA_MAX=N does) from SESSION_SUGGEST_MALLOC_ARENAS
(default 2; 0 keeps glibc's default). It takes effect for arenas created afterwards, so the HTTP factories call it
before the worker starts serving (the thread pool starts with the first request). An operator's own MALLOC_ARENA_MAX
or glibc.malloc.arena_max tunable wins, and it does nothing where the C library is not glibc (musl, macOS).
Python's own small-object allocator (obmalloc) is not concerned: its arenas are shared by all threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from collections.abc import Mapping
from typing import Any

from plugin.errors import ConfigError

__all__ = [
    "ENV_MALLOC_ARENAS",
    "DEFAULT_MALLOC_ARENAS",
    "malloc_arenas_setting",
    "limit_malloc_arenas",
    "malloc_arena_count",
]

logger = logging.getLogger(__name__)

ENV_MALLOC_ARENAS = "SESSION_SUGGEST_MALLOC_ARENAS"
DEFAULT_MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h
_C_INT_MAX = 2**31 - 1


def malloc_arenas_setting(environ: Mapping[str, str] | None = None) -> int:
    """The arena count asked for by SESSION_SUGGEST_MALLOC_ARENAS (default 2; 0: glibc's default)."""
    raw = (os.environ if environ is None else environ).get(ENV_MALLOC_ARENAS, "").strip()
    if not raw:
        return DEFAULT_MALLOC_ARENAS
    # mallopt takes a C int, and ctypes cuts a larger number silently (4294967298 would set 2)
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or int(raw) > _C_INT_MAX:
        raise ConfigError(
            f"{ENV_MALLOC_ARENAS} must be a whole number of malloc arenas from 0 (glibc's default) to {_C_INT_MAX}, "
            f"got {raw!r}"
        )
    return int(raw)


def _glibc() -> Any:
    """The process's C library if it is glibc (it has mallopt and gnu_get_libc_version), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl and macOS's libc have no such symbol)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
        libc.fdopen.restype = ctypes.c_void_p
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        return libc
    except (OSError, AttributeError):
        return None


def limit_malloc_arenas(environ: Mapping[str, str] | None = None, *, libc: Any = None) -> int | None:
    """Set glibc's arena limit (SESSION_SUGGEST_MALLOC_ARENAS, default 2). Returns the limit set, or None when
    nothing was changed: the setting is 0, the operator set MALLOC_ARENA_MAX or the arena_max tunable, or the C
    library is not glibc. `libc`: a stand-in for tests."""
    env = os.environ if environ is None else environ
    n = malloc_arenas_setting(env)
    if n == 0:
        return None
    if env.get("MALLOC_ARENA_MAX", "").strip() or "glibc.malloc.arena_max" in env.get("GLIBC_TUNABLES", ""):
        return None  # glibc read the operator's own choice at start-up
    libc = libc if libc is not None else _glibc()
    if libc is None:
        return None
    if libc.mallopt(_M_ARENA_MAX, n) != 1:
        logger.warning("mallopt(M_ARENA_MAX, %d) failed: malloc keeps its default arena count", n)
        return None
    logger.debug("malloc arenas limited to %d", n)
    return n


def malloc_arena_count() -> int | None:
    """How many malloc arenas this process has (malloc_info's XML has one <heap> per arena); None off glibc."""
    import tempfile

    libc = _glibc()
    if libc is None:
        return None
    with tempfile.TemporaryFile("w+b") as f:
        fd = os.dup(f.fileno())
        stream = libc.fdopen(fd, b"w")
        if not stream:
            os.close(fd)
            return None
        try:
            libc.malloc_info(0, stream)
        finally:
            libc.fclose(stream)
        f.seek(0)
        return f.read().count(b"<heap nr=")
