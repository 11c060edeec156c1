"""A LangChain `create_agent` graph as the chat endpoint's responder, through the ASGI test client: the agent
gets agent-state input, keeps one conversation per session (thread id = a digest of the session id, never the id:
LangGraph copies the thread id into every run's metadata), its tools see the visitor's session, and the reply is
its final AI message."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("langchain")

from fake_models import FakeToolModel  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from langchain.agents import create_agent  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402

from adapters.http import create_app  # noqa: E402
from adapters.http.responder import thread_id_for  # noqa: E402
from adapters.langchain import SuggestArticlesTool  # noqa: E402


def test_create_agent_answers_through_the_chat_endpoint(rec):
    call = AIMessage(content="", tool_calls=[{"name": "suggest_articles", "args": {}, "id": "call-1"}])
    model = FakeToolModel(
        messages=iter([call, AIMessage("Pickle handles arbitrary objects."), AIMessage("Yes, binary.")])
    )
    agent = create_agent(model, tools=[SuggestArticlesTool(recommender=rec)], checkpointer=InMemorySaver())
    client = TestClient(create_app(rec, responder=agent))
    sid = client.post("/v1/sessions").json()["session_id"]
    r = client.post(f"/v1/sessions/{sid}/events", json={"kind": "page_view", "url": "https://kb.test/json"})
    assert r.status_code == 200, r.text

    r = client.post(f"/v1/sessions/{sid}/chat", json={"message": "what should I read next?", "k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reply"] == "Pickle handles arbitrary objects."  # the final AI message, not the tool call
    assert body["responder"] == type(agent).__name__ and body["source"] is None
    assert len(body["suggestions"]) == 2 and "ser-json" not in {s["id"] for s in body["suggestions"]}

    # The tool ran for this visitor's session (it suggests from what they read), in the session's thread.
    state = agent.get_state({"configurable": {"thread_id": thread_id_for(sid)}}).values["messages"]
    tool_msg = next(m for m in state if isinstance(m, ToolMessage))
    tool_ids = [row["id"] for row in tool_msg.artifact]
    assert tool_ids and all(i.startswith("ser-") for i in tool_ids) and "ser-json" not in tool_ids

    # The checkpointer keeps the conversation per session: the second turn sees the first.
    r = client.post(f"/v1/sessions/{sid}/chat", json={"message": "is it binary?"})
    assert r.status_code == 200 and r.json()["reply"] == "Yes, binary."
    humans = [m.content for m in model.seen[-1] if isinstance(m, HumanMessage)]
    assert humans == ["what should I read next?", "is it binary?"]


def test_erasing_the_session_deletes_the_agents_conversation_thread(rec, caplog, monkeypatch):
    """The agent's checkpointer keeps every message the visitor sent, under thread_id = session id: an erase that
    left it there was not an erase. A checkpointer that cannot delete threads is named in a warning."""
    import logging

    model = FakeToolModel(messages=iter([AIMessage("Pickle handles arbitrary objects."), AIMessage("Again.")]))
    saver = InMemorySaver()
    agent = create_agent(model, tools=[SuggestArticlesTool(recommender=rec)], checkpointer=saver)
    client = TestClient(create_app(rec, responder=agent))
    sid, other = (client.post("/v1/sessions").json()["session_id"] for _ in range(2))
    for s in (sid, other):
        r = client.post(f"/v1/sessions/{s}/chat", json={"message": f"my account email is {s[:6]}@mail.test"})
        assert r.status_code == 200, r.text
    thread = thread_id_for(sid)
    assert agent.get_state({"configurable": {"thread_id": thread}}).values["messages"]
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    assert not saver.storage.get(thread)  # no checkpoint, write or blob of that thread is left
    assert not any(key[0] == thread for key in [*saver.writes, *saver.blobs])
    assert not agent.get_state({"configurable": {"thread_id": thread}}).values  # nothing of the conversation left
    assert agent.get_state({"configurable": {"thread_id": thread_id_for(other)}}).values["messages"]  # kept

    class NoDelete(InMemorySaver):
        def delete_thread(self, thread_id: str) -> None:
            raise NotImplementedError

    agent2 = create_agent(FakeToolModel(messages=iter([AIMessage("ok")])), tools=[], checkpointer=NoDelete())
    client2 = TestClient(create_app(rec, responder=agent2))
    sid2 = client2.post("/v1/sessions").json()["session_id"]
    assert client2.post(f"/v1/sessions/{sid2}/chat", json={"message": "hi"}).status_code == 200
    logger = logging.getLogger("adapters.http.responder")
    monkeypatch.setattr(logger, "disabled", False)  # a logging.config call in another test may have disabled it
    caplog.set_level(logging.WARNING, logger=logger.name)
    assert client2.delete(f"/v1/sessions/{sid2}").status_code == 204  # the plugin's own erase still happens
    warnings = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert any("cannot delete threads" in w and sid2 not in w for w in warnings), warnings


def test_no_run_metadata_or_checkpoint_key_carries_the_bearer_session_id(rec):
    """LangGraph copies `thread_id` into the metadata of every run, which every tracer and callback receives
    (LangSmith, a logging handler), and every string in `configurable` into the metadata of every checkpoint:
    with the session id there, each trace and the checkpointer's database held a token that acts as the visitor.
    The tool still reads the visitor's session (from configurable.session_id, a SessionRef)."""
    from langchain_core.callbacks import BaseCallbackHandler

    seen: list[str] = []

    class Recorder(BaseCallbackHandler):
        def on_chain_start(self, serialized, inputs, **kwargs):
            seen.append(repr(kwargs.get("metadata")))

        def on_chat_model_start(self, serialized, messages, **kwargs):
            seen.append(repr(kwargs.get("metadata")))

        def on_tool_start(self, serialized, input_str, **kwargs):
            seen.append(repr(kwargs.get("metadata")))

    call = AIMessage(content="", tool_calls=[{"name": "suggest_articles", "args": {}, "id": "call-1"}])
    model = FakeToolModel(messages=iter([call, AIMessage("Read pickle next.")]))
    saver = InMemorySaver()
    tool = SuggestArticlesTool(recommender=rec)
    agent = create_agent(model, tools=[tool], checkpointer=saver).with_config(callbacks=[Recorder()])
    client = TestClient(create_app(rec, responder=agent))
    sid = client.post("/v1/sessions").json()["session_id"]
    client.post(f"/v1/sessions/{sid}/events", json={"kind": "page_view", "url": "https://kb.test/json"})
    r = client.post(f"/v1/sessions/{sid}/chat", json={"message": "what next?"})
    assert r.status_code == 200 and r.json()["reply"] == "Read pickle next.", r.text
    assert seen and any(thread_id_for(sid) in m for m in seen)  # the runs were traced, under the digest
    assert not any(sid in m for m in seen)
    # nor is it in what the checkpointer stores: its keys, the checkpoints and their metadata, the writes
    assert sid not in repr(saver.storage) + repr(saver.writes) + repr(saver.blobs)
    impressions = [e for e in rec.events(sid) if e.kind == "suggestion_impression"]
    assert impressions and impressions[0].meta["source"] == "tool"  # the tool found the real session

    from adapters.langchain import session_id_from
    from adapters.session_ref import SessionRef

    ref = SessionRef(sid)
    assert session_id_from({"configurable": {"session_id": ref}}) == sid and sid not in repr(ref)


@pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")  # LangChain 1.x deprecates both classes
def test_a_chain_with_message_history_keys_it_by_a_digest_and_its_tools_still_find_the_session(rec):
    """A plain `.invoke` responder (a chain under `RunnableWithMessageHistory`) was given the bearer id as
    `configurable.session_id`: the application's history store, keyed by it, held a token that acts as the visitor.
    It now gets a `SessionRef`: a store keys by its digest text (as a dict key, a concatenated key or a pickled
    one), traces carry the digest, and the plugin's tool reads the real session through `session_id_from`."""
    import pickle

    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.chat_history import InMemoryChatMessageHistory
    from langchain_core.runnables import RunnableLambda
    from langchain_core.runnables.history import RunnableWithMessageHistory

    histories: dict[str, InMemoryChatMessageHistory] = {}
    traced: list[str] = []

    def history(session_id):  # keyed the way a Redis or SQL message history keys it
        return histories.setdefault("history:" + session_id, InMemoryChatMessageHistory())

    def answer(messages, config):
        shown = SuggestArticlesTool(recommender=rec).invoke({"query": "json"}, config)
        return AIMessage(f"{len(messages)} messages; {shown[:20]}")

    class Recorder(BaseCallbackHandler):
        def on_chain_start(self, serialized, inputs, **kwargs):
            traced.append(repr(kwargs.get("metadata")) + repr(kwargs.get("tags")))

    chain = RunnableWithMessageHistory(RunnableLambda(answer), history).with_config(callbacks=[Recorder()])
    client = TestClient(create_app(rec, responder=chain))
    sid = client.post("/v1/sessions").json()["session_id"]
    client.post(f"/v1/sessions/{sid}/events", json={"kind": "page_view", "url": "https://kb.test/json"})
    for _ in range(2):
        r = client.post(f"/v1/sessions/{sid}/chat", json={"message": "what next?"})
        assert r.status_code == 200, r.text
    assert r.json()["reply"].startswith("3 messages")  # the history was kept: question, answer, question
    assert list(histories) == ["history:" + thread_id_for(sid)]
    assert sid not in repr(histories) + pickle.dumps(histories).decode("latin-1") + "".join(traced)
    impressions = [e for e in rec.events(sid) if e.kind == "suggestion_impression"]
    assert impressions and impressions[0].meta["source"] == "tool"  # the tool found the real session
