"""langchain-tests standard suites for the tool and the retriever, the public API pin, and the import fence
(`import plugin` / `import adapters` never pull LangChain in)."""

from __future__ import annotations

import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from conftest import TOPIC_ARTICLES
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import RetrieversIntegrationTests, ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

import adapters.langchain
from adapters.langchain import KnowledgeBaseRetriever, SuggestArticlesTool
from plugin import HashingEncoder, SessionRecommender, SuggestSettings


@lru_cache(maxsize=1)
def _rec() -> SessionRecommender:
    """The topic KB with the hashing encoder; shared read-only by the suites (they track nothing)."""
    return SessionRecommender.build(
        TOPIC_ARTICLES,
        encoder=HashingEncoder(256),
        progress=False,
        settings=SuggestSettings(min_score=-1.0, mmr_lambda=1.0),
    )


class TestSuggestToolUnit(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return SuggestArticlesTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"recommender": _rec()}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"query": "serialize python objects", "k": 2}


class TestSuggestToolIntegration(ToolsIntegrationTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return SuggestArticlesTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"recommender": _rec()}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"query": "serialize python objects", "k": 2}


class TestKnowledgeBaseRetriever(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[KnowledgeBaseRetriever]:
        return KnowledgeBaseRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"recommender": _rec(), "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return "socket network connection"


def test_public_api_is_pinned():
    assert sorted(adapters.langchain.__all__) == [
        "KnowledgeBaseRetriever",
        "METADATA_KEY",
        "SuggestArticlesInput",
        "SuggestArticlesTool",
        "SuggestionMiddleware",
        "format_suggestions",
        "session_id_from",
    ]
    namespace: dict[str, object] = {}
    exec("from adapters.langchain import *", namespace)  # raises if a name in __all__ does not resolve
    assert sorted(set(namespace) - {"__builtins__"}) == sorted(adapters.langchain.__all__)
    for name, obj in namespace.items():
        if isinstance(obj, type) or (callable(obj) and hasattr(obj, "__module__")):
            assert obj.__module__.split(".")[0] in ("adapters", "plugin"), (name, obj.__module__)


def test_plugin_and_adapters_import_without_langchain():
    code = (
        "import sys, plugin, adapters; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('langchain', 'langchain_core', 'langgraph')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stdout + done.stderr
