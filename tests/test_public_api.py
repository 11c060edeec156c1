"""The public surface is explicit and pinned; the core never drags in a framework."""

from __future__ import annotations

import subprocess
import sys

import plugin

EXPECTED = {
    "Article",
    "ArticleIndex",
    "CachedEncoder",
    "ConfigError",
    "ContentSTAMP",
    "DataFormatError",
    "DimensionMismatchError",
    "EVENT_KINDS",
    "EmbeddingCache",
    "EmptySessionError",
    "Encoder",
    "Event",
    "EventLog",
    "HashingEncoder",
    "InMemorySessionStore",
    "IndexFormatError",
    "Intent",
    "IntentModel",
    "InvalidEventError",
    "KnowledgeBase",
    "LimitExceededError",
    "PluginError",
    "RateLimitedError",
    "StoreUnavailableError",
    "RedisSessionStore",
    "ReloadingRecommender",
    "STAMP",
    "STAMPConfig",
    "SentenceTransformerEncoder",
    "SessionRecommender",
    "SessionSettings",
    "SessionStore",
    "SuggestSettings",
    "Suggestion",
    "UnknownArticleError",
    "UnknownSessionError",
    "VectorIndex",
    "ZeroShotIntent",
    "inject_reply",
    "load_articles",
    "make_event",
    "render",
    "ChatPolicy",
    "ChatSuggestions",
    "MAX_K",
    "suggest_for_reply",
    "safe_url",
    "PageContent",
    "SessionContext",
    "pin_threads",
}


def test_all_is_pinned_and_resolvable():
    assert set(plugin.__all__) == EXPECTED
    namespace: dict[str, object] = {}
    exec("from plugin import *", namespace)  # raises if a name in __all__ (lazy ones included) does not resolve
    assert set(namespace) - {"__builtins__"} == EXPECTED
    for name, obj in namespace.items():
        if isinstance(obj, type) or (callable(obj) and hasattr(obj, "__module__")):
            assert obj.__module__.split(".")[0] == "plugin", (name, obj.__module__)  # ours, not a re-export


def test_errors_form_one_tree():
    for name in plugin.__all__:
        obj = getattr(plugin, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, plugin.PluginError)


def test_import_plugin_pulls_in_no_framework():
    code = (
        "import sys, plugin, plugin.cli, plugin.recommender;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('langchain','langchain_core','fastapi','starlette','uvicorn','adapters')];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_import_plugin_and_the_web_layer_leave_torch_and_faiss_unloaded():
    # seconds of import a user of the HTTP or LangChain layer pays only once a model or an index is used
    loaded = _run(
        "import sys, plugin, adapters.http, adapters.langchain;"
        "print(','.join(m for m in ('torch', 'faiss') if m in sys.modules))"
    )
    assert loaded == ""


def test_faiss_is_imported_and_tuned_with_the_first_index():
    out = _run(
        "import sys, numpy as np, plugin;"
        "before = 'faiss' in sys.modules;"
        "ix = plugin.ArticleIndex(4); ix.upsert(['a', 'b'], np.eye(4, dtype=np.float32)[:2]);"
        "print(before, ix.search(np.eye(4, dtype=np.float32)[1:2], 1)[0][0][0],"
        " sys.modules['faiss'].cvar.distance_compute_blas_threshold)"
    )
    assert out == "False b 4096"


def test_argument_errors_raised_across_the_package_are_in_the_tree():
    # each was a bare ValueError/KeyError once; callers catching the builtin still work (ConfigError is a
    # ValueError, UnknownArticleError a KeyError), and catching PluginError now catches them too
    import numpy as np

    from plugin.chunking import pool_windows, split_windows, spread_windows
    from plugin.event_log import parse_ts
    from plugin.models import get_model

    cases = [
        (lambda: plugin.inject_reply("hi", [], fmt="rtf"), plugin.ConfigError, "Valid formats are"),
        (lambda: split_windows("text", 4, len), plugin.ConfigError, "at least 8"),
        (lambda: spread_windows(5, 0), plugin.ConfigError, "at least 1"),
        (lambda: pool_windows(np.ones((2, 3)), [1.0]), plugin.DimensionMismatchError, "n weights"),
        (lambda: plugin.CachedEncoder(plugin.HashingEncoder(8), max_windows=0), plugin.ConfigError, "max_windows"),
        (lambda: parse_ts([1]), plugin.DataFormatError, "not a time"),
    ]
    model = get_model("pop")
    model.fit([np.array([1, 2])], 2, item_keys=["a", "b"])
    cases.append((lambda: model.index_of("c"), plugin.UnknownArticleError, "catalogue"))
    for call, error, message in cases:
        try:
            call()
        except plugin.PluginError as exc:
            assert isinstance(exc, error) and message in str(exc), (error, exc)
        else:
            raise AssertionError(f"expected {error.__name__} ({message})")
