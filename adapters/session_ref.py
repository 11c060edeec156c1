"""`SessionRef`: a session id carried through a LangChain/LangGraph run without landing in its metadata.

LangGraph copies `thread_id` and every plain string or number in `config["configurable"]` into the metadata of
each run (LangSmith's tracer) and each checkpoint (the checkpointer's database). A session id of the HTTP
service is a bearer token: there it would be a credential in every trace and in the conversation store. Wrapped
in a `SessionRef`, it is no string, so neither copy takes it; `str()` gives the id back, which is how
`adapters.langchain.session_id_from` reads it. Shared by both adapters, so it imports neither framework.
"""

from __future__ import annotations

__all__ = ["SessionRef"]


class SessionRef:
    """A session id that `str()` returns and `repr()` hides."""

    __slots__ = ("_id",)

    def __init__(self, session_id: str) -> None:
        self._id = session_id

    def __str__(self) -> str:
        return self._id

    def __repr__(self) -> str:
        return f"SessionRef({self._id[:8]}…)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SessionRef) and other._id == self._id

    def __hash__(self) -> int:
        return hash(("SessionRef", self._id))
