"""A tool-calling fake chat model for offline agent tests. None of langchain-core's fake chat models
implements `bind_tools`, which `create_agent` needs; this one returns itself and records what it was shown."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import BaseMessage
from pydantic import Field


class FakeToolModel(GenericFakeChatModel):
    """Scripted replies (tool calls included); `seen` holds the messages of every call."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeToolModel:
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
