"""A serving worker limits glibc's malloc arenas (SESSION_SUGGEST_MALLOC_ARENAS, default 2; 0 leaves them alone).
The effect is checked in a fresh interpreter: six threads alive at once, each allocating, get six arenas of their
own by default and share two once the worker setup has run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from adapters.http.allocator import (
    DEFAULT_MALLOC_ARENAS,
    ENV_MALLOC_ARENAS,
    _glibc,
    limit_malloc_arenas,
    malloc_arenas_setting,
)
from plugin import ConfigError

glibc_only = pytest.mark.skipif(_glibc() is None, reason="malloc arenas are glibc's (this C library is not glibc)")

_PROBE = """
import json, os, sys, threading
from adapters.http.allocator import malloc_arena_count
if sys.argv[1] == "http":
    os.environ["SESSION_SUGGEST_INDEX"] = "unused"  # read after the worker setup this probe is about
    from adapters.http.app import settings_from_env
    settings_from_env()
before = malloc_arena_count()
barrier, held = threading.Barrier(6), []
def work():
    barrier.wait()  # all six alive at once: none can take an arena another thread left
    held.append([bytearray(64 * 1024) for _ in range(4)])  # malloc'd (obmalloc serves only <= 512 bytes)
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"before": before, "after": malloc_arena_count()}))
"""


def _probe(path: str, arenas: str | None) -> dict[str, int]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_MALLOC_ARENAS, "MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    if arenas is not None:
        env[ENV_MALLOC_ARENAS] = arenas
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, path], env=env, cwd=root, capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc_only
def test_worker_setup_limits_malloc_arenas():
    plain = _probe("plain", None)
    assert plain["after"] >= plain["before"] + 5, plain  # glibc's default: an arena per thread (up to 8 per core)
    limited = _probe("http", None)
    assert limited["after"] <= DEFAULT_MALLOC_ARENAS, limited
    left_alone = _probe("http", "0")
    assert left_alone["after"] >= left_alone["before"] + 5, left_alone
    three = _probe("http", "3")
    assert three["after"] == 3, three


class _FakeLibc:
    def __init__(self, result: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.result = result

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.result


def test_limit_sets_m_arena_max_from_the_setting():
    libc = _FakeLibc()
    assert limit_malloc_arenas({}, libc=libc) == 2
    assert limit_malloc_arenas({ENV_MALLOC_ARENAS: " 4 "}, libc=libc) == 4
    assert libc.calls == [(-8, 2), (-8, 4)]  # M_ARENA_MAX is -8 in glibc's malloc.h


@pytest.mark.parametrize(
    "env",
    [
        {ENV_MALLOC_ARENAS: "0"},
        {"MALLOC_ARENA_MAX": "8"},
        {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:glibc.malloc.arena_max=4"},
    ],
)
def test_zero_or_the_operators_own_setting_leaves_malloc_alone(env):
    libc = _FakeLibc()
    assert limit_malloc_arenas(env, libc=libc) is None
    assert libc.calls == []


def test_a_failed_mallopt_is_logged_not_raised(caplog):
    assert limit_malloc_arenas({}, libc=_FakeLibc(result=0)) is None
    assert "M_ARENA_MAX" in caplog.text


@pytest.mark.parametrize("raw", ["two", "-1", "1.5", "٣"])
def test_setting_rejects_what_is_not_a_count(raw):
    with pytest.raises(ConfigError, match=f"{ENV_MALLOC_ARENAS} must be a whole number"):
        malloc_arenas_setting({ENV_MALLOC_ARENAS: raw})


def test_setting_defaults_to_two():
    assert malloc_arenas_setting({}) == DEFAULT_MALLOC_ARENAS == 2


@pytest.mark.parametrize("raw", ["4294967298", "2147483648", "9" * 30, "9" * 5000])  # (int() refuses 4,301 digits)
def test_setting_rejects_a_count_past_a_c_int(raw):
    # mallopt takes a C int: ctypes cut 4294967298 to 2 silently, and the worker logged a limit it had not set
    with pytest.raises(ConfigError, match=f"{ENV_MALLOC_ARENAS} must be a whole number"):
        malloc_arenas_setting({ENV_MALLOC_ARENAS: raw})


def test_off_glibc_the_limit_is_a_no_op(monkeypatch):
    # musl and macOS's libc load, but have no gnu_get_libc_version: nothing is set and nothing is raised
    import ctypes

    class _OtherLibc:
        def __getattr__(self, name: str):
            raise AttributeError(name)

    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: _OtherLibc())
    assert _glibc() is None
    assert limit_malloc_arenas({}) is None

    def missing(*a, **k):
        raise OSError("libc.so.6: cannot open shared object file")  # musl without ldconfig: find_library gives None

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert limit_malloc_arenas({ENV_MALLOC_ARENAS: "3"}) is None
