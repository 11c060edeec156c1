"""The adapters serve what production serves and honour the recommender's tuned settings.

A `ReloadingRecommender` (hot reload) is accepted wherever a `SessionRecommender` is: the LangChain tool,
retriever and middleware follow a newly committed index version. And no adapter overrides
`SuggestSettings.query_weight` with a number of its own: a recommender tuned to weigh the question heavily (or
lightly) gets that weighting from the tool, the retriever, the middleware and the HTTP chat endpoint alike.
"""

from __future__ import annotations

import pytest
from conftest import TOPIC_ARTICLES
from fastapi.testclient import TestClient
from pydantic import ValidationError

from adapters.http import create_app
from adapters.langchain import KnowledgeBaseRetriever, SuggestArticlesTool, SuggestionMiddleware
from plugin import Article, HashingEncoder, ReloadingRecommender, SessionRecommender, SuggestSettings
from plugin.chat import ChatPolicy, suggest_for_reply

SER = {"ser-json", "ser-pickle", "ser-shelve", "ser-marshal", "ser-csv"}
QUESTION = "turtle graphics drawing canvas"
YAML = Article("ser-yaml", "YAML serialization", "https://kb.test/yaml", "yaml serialize objects text config dump load")


def _settings(query_weight: float) -> SuggestSettings:
    # no floor, no diversity, no lexical fusion: the ranking is the dense blend, decided by the weight alone
    return SuggestSettings(min_score=None, mmr_lambda=1.0, lexical_weight=0.0, query_weight=query_weight)


def _rec(query_weight: float, articles=TOPIC_ARTICLES) -> SessionRecommender:
    return SessionRecommender.build(
        articles, encoder=HashingEncoder(1024), progress=False, settings=_settings(query_weight)
    )


def _read_serialization(rec, sid: str = "s") -> None:
    rec.track(sid, "page_view", article_id="ser-json")
    rec.track(sid, "page_view", article_id="ser-pickle")


def _tool_top(rec) -> str:
    msg = SuggestArticlesTool(recommender=rec).invoke(
        {"name": "suggest_articles", "args": {"query": QUESTION, "k": 1}, "id": "c1", "type": "tool_call"},
        {"configurable": {"session_id": "s"}},
    )
    return msg.artifact[0]["id"]


def _retriever_top(rec) -> str:
    docs = KnowledgeBaseRetriever(recommender=rec, k=1, use_session=True).invoke(
        QUESTION, {"configurable": {"session_id": "s"}}
    )
    return docs[0].metadata["id"]


def _chat_policy_top(rec) -> str:
    # the policy every chat surface builds by default (HTTP chat endpoint, middleware, inject)
    got = suggest_for_reply(rec, "s", "Here is an answer.", policy=ChatPolicy(k=1), source="test", query=QUESTION)
    return got.suggestions[0].article.id


def _http_chat_top(rec) -> str:
    app = create_app(rec, responder=lambda message: "Here is an answer.")
    client = TestClient(app)
    sid = client.post("/v1/sessions").json()["session_id"]
    for url in ("https://kb.test/json", "https://kb.test/pickle"):
        assert client.post(f"/v1/sessions/{sid}/events", json={"kind": "page_view", "url": url}).status_code == 200
    body = client.post(f"/v1/sessions/{sid}/chat", json={"message": QUESTION, "k": 1}).json()
    return body["suggestions"][0]["id"]


@pytest.mark.parametrize("surface", [_tool_top, _retriever_top, _chat_policy_top, _http_chat_top])
def test_query_weight_comes_from_the_recommender_settings(surface):
    heavy, light = _rec(0.95), _rec(0.05)
    for rec in (heavy, light):
        _read_serialization(rec)
    assert surface(heavy) == "misc-turtle"  # the question wins
    assert surface(light) in SER  # the reading wins


def test_middleware_defaults_to_the_recommender_query_weight(rec):
    assert SuggestionMiddleware(rec).policy.query_weight is None
    assert SuggestionMiddleware(rec, query_weight=0.3).policy.query_weight == 0.3
    assert SuggestArticlesTool(recommender=rec).query_weight is None
    assert KnowledgeBaseRetriever(recommender=rec).query_weight is None


def test_an_explicit_query_weight_still_overrides_the_settings():
    rec = _rec(0.05)
    _read_serialization(rec)
    tool = SuggestArticlesTool(recommender=rec, query_weight=0.95)
    msg = tool.invoke(
        {"name": "suggest_articles", "args": {"query": QUESTION, "k": 1}, "id": "c1", "type": "tool_call"},
        {"configurable": {"session_id": "s"}},
    )
    assert msg.artifact[0]["id"] == "misc-turtle"


@pytest.fixture
def handle(tmp_path) -> ReloadingRecommender:
    _rec(0.7).save(tmp_path / "index")
    return ReloadingRecommender(tmp_path / "index", encoder=HashingEncoder(1024), check_interval=None)


def _commit_with_yaml(handle: ReloadingRecommender) -> None:
    _rec(0.7, [*TOPIC_ARTICLES, YAML]).save(handle._directory)
    assert handle.check()


def test_tool_accepts_a_reloading_recommender_and_follows_new_versions(handle):
    tool = SuggestArticlesTool(recommender=handle)
    _read_serialization(handle)

    def ids() -> list[str]:
        msg = tool.invoke(
            {"name": "suggest_articles", "args": {"query": "yaml config", "k": 5}, "id": "c1", "type": "tool_call"},
            {"configurable": {"session_id": "s"}},
        )
        return [row["id"] for row in msg.artifact]

    before = ids()
    assert before and "ser-yaml" not in before
    _commit_with_yaml(handle)
    assert "ser-yaml" in ids()
    # the session survived the swap: what was read is still left out
    assert not {"ser-json", "ser-pickle"} & set(ids())


async def test_retriever_accepts_a_reloading_recommender_and_follows_new_versions(handle):
    retriever = KnowledgeBaseRetriever(recommender=handle, k=3)
    assert "ser-yaml" not in [d.id for d in retriever.invoke("yaml config serialize")]
    _commit_with_yaml(handle)
    assert retriever.invoke("yaml config serialize")[0].id == "ser-yaml"
    assert (await retriever.ainvoke("yaml config serialize"))[0].id == "ser-yaml"


@pytest.mark.parametrize(
    "make",
    [
        lambda r: SuggestArticlesTool(recommender=r),
        lambda r: KnowledgeBaseRetriever(recommender=r),
    ],
)
def test_anything_else_is_still_rejected(make):
    with pytest.raises(ValidationError):
        make("not a recommender")
