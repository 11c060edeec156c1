"""examples/langchain_agent.py runs offline: hashing encoder, scripted model, demo KB built into a tmp cache."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "langchain_agent.py"


@pytest.fixture
def example(monkeypatch, tmp_path):
    monkeypatch.setenv("SESSION_SUGGEST_CACHE", str(tmp_path))
    monkeypatch.delenv("SESSION_SUGGEST_CHAT_MODEL", raising=False)
    spec = importlib.util.spec_from_file_location("langchain_agent_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_example_runs_with_the_scripted_model(example, capsys, tmp_path):
    assert example.main(["--encoder", "hashing"]) == 0
    out = capsys.readouterr().out
    assert "model: scripted" in out
    assert out.count("-> tool call suggest_articles(") == 3
    assert out.count("assistant: The documentation covers this in") == 3
    # suggestions appended to the first and third replies; the second is held back by the frequency cap
    turns = out.split("visitor: ")[1:]
    assert ["**Related articles**" in t for t in turns] == [True, False, True]
    assert "https://docs.python.org/" in turns[0].split("**Related articles**")[1]
    events = re.search(r"session events: page_view x(\d+), suggestion_impression x(\d+)", out)
    # json, (still json: not a new view), pickle; impressions: three tool results plus two injected blocks
    assert events and int(events[1]) == 2 and int(events[2]) >= 3 * 3 + 2
    assert any(tmp_path.iterdir())  # the demo index was cached where SESSION_SUGGEST_CACHE points
