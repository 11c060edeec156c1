"""The public surface is explicit and pinned; the core never drags in a framework."""

from __future__ import annotations

import subprocess
import sys

import plugin

EXPECTED = {
    "Article", "ArticleIndex", "CachedEncoder", "ConfigError", "ContentSTAMP", "DataFormatError",
    "DimensionMismatchError", "EVENT_KINDS", "EmbeddingCache", "EmptySessionError", "Encoder", "Event", "EventLog",
    "HashingEncoder", "InMemorySessionStore", "IndexFormatError", "Intent", "IntentModel", "InvalidEventError",
    "KnowledgeBase", "LimitExceededError", "PluginError", "RateLimitedError", "RedisSessionStore", "ReloadingRecommender", "STAMP", "STAMPConfig",
    "SentenceTransformerEncoder", "SessionRecommender", "SessionSettings", "SessionStore", "SuggestSettings",
    "Suggestion", "UnknownArticleError", "UnknownSessionError", "VectorIndex", "ZeroShotIntent", "inject_reply", "load_articles",
    "make_event", "render", "ChatPolicy", "ChatSuggestions", "MAX_K", "suggest_for_reply", "safe_url",
    "PageContent", "SessionContext", "pin_threads",
}


def test_all_is_pinned_and_resolvable():
    assert set(plugin.__all__) == EXPECTED
    for name in plugin.__all__:
        assert getattr(plugin, name) is not None


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
