"""A serving worker freezes its start-up heap out of the garbage collector's scans (`adapters.http.heap`), and a
version a `ReloadingRecommender` swaps out is still collected: a frozen reference cycle is never freed otherwise.
Freezing is process-wide, so every check that freezes runs in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adapters.http.heap import gc_freeze_setting
from plugin import ConfigError

REPO = Path(__file__).resolve().parents[1]

# builds a two-article index in argv[1], follows it with a ReloadingRecommender, freezes, re-indexes, swaps
_RELOAD = textwrap.dedent(
    """
    import gc, sys, threading, weakref
    from plugin import Article, HashingEncoder, ReloadingRecommender, SessionRecommender
    import adapters.http.heap as heap

    heap._RELEASE_WAIT_S = 0.05
    arts = [Article("a", "YAML", "https://kb.test/a", "yaml config"), Article("b", "TOML", "https://kb.test/b", "toml")]
    SessionRecommender.build(arts, encoder=HashingEncoder(64), progress=False).save(sys.argv[1])
    hook = heap.refreeze_after_swap if sys.argv[2] == "hook" else None
    rec = ReloadingRecommender(sys.argv[1], check_interval=None, background=False, on_swap=hook)
    assert heap.freeze_startup_heap({})
    old = weakref.ref(rec.current)
    SessionRecommender.build(arts[:1], encoder=HashingEncoder(64), progress=False).save(sys.argv[1])
    assert rec.check()
    for t in threading.enumerate():
        if t.name == "session-suggest-refreeze":
            t.join(30)
    print("old collected" if old() is None else "old alive", gc.get_freeze_count() > 0, len(rec.kb))
    """
)


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_the_setting_defaults_to_freezing_and_names_its_values():
    assert gc_freeze_setting({}) is True
    assert gc_freeze_setting({"SESSION_SUGGEST_GC_FREEZE": "1"}) is True
    assert gc_freeze_setting({"SESSION_SUGGEST_GC_FREEZE": " 0 "}) is False
    with pytest.raises(ConfigError, match="must be 1 .* or 0"):
        gc_freeze_setting({"SESSION_SUGGEST_GC_FREEZE": "yes"})


def test_freezing_moves_the_heap_out_of_the_scans_unless_turned_off():
    code = "import gc; from adapters.http.heap import freeze_startup_heap as f; import sys; "
    code += "print(f({'SESSION_SUGGEST_GC_FREEZE': sys.argv[1]}), gc.get_freeze_count() > 1000)"
    assert _run(code, "1") == "True True"
    assert _run(code, "0") == "False False"


def test_a_swapped_out_version_is_collected_in_a_frozen_worker(tmp_path):
    assert _run(_RELOAD, str(tmp_path / "a"), "hook") == "old collected True 1"


def test_without_the_hook_a_frozen_old_version_would_stay(tmp_path):
    # what the hook is for: a SessionRecommender is freed only by the collector (it holds reference cycles)
    assert _run(_RELOAD, str(tmp_path / "b"), "none") == "old alive True 1"


@pytest.mark.slow
def test_the_http_factories_freeze_the_worker(tmp_path):
    # both factories, as a uvicorn worker calls them: the heap is frozen once the app is built
    code = textwrap.dedent(
        """
        import gc, os, sys
        from plugin import Article, HashingEncoder, SessionRecommender
        arts = [Article("a", "YAML", "https://kb.test/a", "yaml config")]
        SessionRecommender.build(arts, encoder=HashingEncoder(64), progress=False).save(sys.argv[1])
        os.environ["SESSION_SUGGEST_INDEX"] = sys.argv[1]
        os.environ["SESSION_SUGGEST_SECRET"] = "s" * 40
        from adapters.http import app, hardened
        getattr(app if sys.argv[2] == "app" else hardened, "app_from_env")()
        print(gc.get_freeze_count() > 1000)
        """
    )
    assert _run(code, str(tmp_path / "i1"), "app") == "True"
    assert _run(code, str(tmp_path / "i2"), "hardened") == "True"
