"""`SessionRef`: a session id carried through a LangChain/LangGraph run without landing anywhere as itself.

A session id of the HTTP service is a bearer token. LangGraph copies `thread_id` and every string in
`config["configurable"]` into the metadata of each run (LangSmith's tracer, every callback) and each checkpoint
(the checkpointer's database), and an application's chain keys its history by `configurable.session_id`
(`RunnableWithMessageHistory`'s default): with the id there, each trace, checkpoint and stored conversation would
hold a credential.

A `SessionRef` is a string whose text is `session_name(id)` (`"session-"` + a SHA-256 digest of the id, the
HTTP service's agent thread id), so whatever copies, prints, concatenates, pickles or stores it as a string gets
that name; the id itself is read only through `adapters.langchain.session_id_from`, which the plugin's tool,
retriever and middleware use. Shared by both adapters, so it imports neither framework.
"""

from __future__ import annotations

from typing import Any

from plugin.session_store import id_digest

__all__ = ["SessionRef", "session_name"]


def session_name(session_id: str) -> str:
    """What names a session where the id must not appear (an agent's thread, a chain's history): a digest."""
    return "session-" + id_digest(session_id)


class SessionRef(str):
    """The text `session_name(id)`, carrying the id for `session_id_from` (attribute `session_id`).

    Copying keeps the id (a config is copied on its way to a tool); pickling keeps only the name, so a
    checkpointer or cache that serialises the config stores no credential."""

    session_id: str

    def __new__(cls, session_id: str) -> SessionRef:
        ref = super().__new__(cls, session_name(session_id))
        ref.session_id = session_id
        return ref

    def __repr__(self) -> str:
        return f"SessionRef({str.__str__(self)})"

    def __copy__(self) -> SessionRef:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SessionRef:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (str, (str.__str__(self),))
