"""The one chat policy (`plugin.chat.suggest_for_reply`): cap, exclusions, impressions, k bound, never raising."""

from __future__ import annotations

import logging

import pytest

from plugin import ChatPolicy, ConfigError, suggest_for_reply
from plugin.chat import MAX_K, check_k, truncate_query


@pytest.fixture
def reader(rec):
    rec.track("s", "page_view", url="https://kb.test/json", title="JSON serialization guide")
    return rec


def ids(got) -> list[str]:
    return [s.article.id for s in got.suggestions]


def test_read_clicked_and_linked_are_excluded_but_shown_may_return(reader):
    policy = ChatPolicy(k=3, min_score=-1.0)
    first = suggest_for_reply(reader, "s", "A reply.", policy=policy, source="chat", query="serialize")
    assert len(first.suggestions) == 3 and "ser-json" not in ids(first) and first.batch
    impressions = [e for e in reader.events("s") if e.kind == "suggestion_impression"]
    assert [e.article_id for e in impressions] == ids(first)
    assert all(e.meta == {"source": "chat", "batch": first.batch} for e in impressions)
    assert [e.position for e in impressions] == [0, 1, 2]

    again = suggest_for_reply(reader, "s", "A reply.", policy=policy, source="chat", query="serialize")
    assert ids(again) == ids(first)  # shown, not opened: still allowed
    reader.track("s", "suggestion_click", article_id=ids(first)[0], position=0)
    linked_url = reader.kb.get(ids(first)[1]).url
    third = suggest_for_reply(
        reader, "s", f"See {linked_url} for that.", policy=policy, source="chat", query="serialize"
    )
    assert ids(first)[0] not in ids(third) and ids(first)[1] not in ids(third)
    strict = suggest_for_reply(
        reader,
        "s",
        "A reply.",
        policy=ChatPolicy(k=3, min_score=-1.0, exclude_shown=True),
        source="chat",
        query="serialize",
    )
    assert not set(ids(strict)) & set(ids(first))


def test_caps_count_batches_of_the_same_source(reader):
    now = [100.0]
    policy = ChatPolicy(k=1, min_score=-1.0, max_per_session=2, min_interval_s=10)
    got = []
    for step in (0, 5, 11, 30):
        now[0] += step
        got.append(suggest_for_reply(reader, "s", "r", policy=policy, source="mw", clock=lambda: now[0]).skipped)
    assert got == [None, "capped", None, "capped"]  # the interval, then the per-session count
    other = suggest_for_reply(reader, "s", "r", policy=policy, source="chat", clock=lambda: now[0])
    assert other.suggestions  # another surface's blocks do not count against this one
    between = ChatPolicy(k=1, min_score=-1.0, min_replies_between=2)
    assert suggest_for_reply(reader, "s", "r", policy=between, source="x", replies_since_last=1).skipped == "capped"
    assert suggest_for_reply(reader, "s", "r", policy=between, source="x", replies_since_last=2).suggestions


def test_only_a_policy_that_needs_the_history_reads_the_whole_session(reader, monkeypatch):
    for i in range(30):  # a long session: more intent events than the context holds
        reader.track("s", "page_view", url=f"https://site.test/{i}", title=f"page {i}", text=f"threads and locks {i}")
    reads = []
    whole, bounded = reader.store.read, reader.store.context
    monkeypatch.setattr(reader.store, "read", lambda sid: reads.append("read") or whole(sid))
    monkeypatch.setattr(reader.store, "context", lambda sid, n: reads.append("context") or bounded(sid, n))
    plain = ChatPolicy(k=3, min_score=-1.0, record_impressions=False)
    got = suggest_for_reply(reader, "s", "A reply.", policy=plain, source="chat", query="locks")
    assert reads == ["context"] and got.suggestions
    for capped in (
        ChatPolicy(k=3, min_score=-1.0, record_impressions=False, max_per_session=5),
        ChatPolicy(k=3, min_score=-1.0, record_impressions=False, min_interval_s=1.0),
        ChatPolicy(k=3, min_score=-1.0, record_impressions=False, exclude_shown=True),
    ):
        reads.clear()
        same = suggest_for_reply(reader, "s", "A reply.", policy=capped, source="chat", query="locks")
        assert reads == ["read"]  # one read of the whole session, the context taken from it
        assert ids(same) == ids(got)  # nothing shown yet: the same suggestions either way


def test_empty_session_and_failures_never_raise(rec, monkeypatch, caplog):
    policy = ChatPolicy(k=2)
    assert suggest_for_reply(rec, "nobody", "r", policy=policy, source="chat").skipped == "empty_session"

    def down(*a, **k):
        raise RuntimeError("index down")

    monkeypatch.setattr(rec, "suggest", down)
    with caplog.at_level(logging.WARNING, logger="plugin.chat"):
        got = suggest_for_reply(rec, "nobody", "r", policy=policy, source="chat", query="x")
    assert got.skipped == "error" and got.suggestions == ()
    assert any("index down" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    assert suggest_for_reply(rec, "s", "r", policy=policy, source="chat", k=0).skipped == "error"


def test_k_bound_and_query_truncation():
    assert check_k(MAX_K) == MAX_K
    for bad in (0, MAX_K + 1, True, 2.0):
        with pytest.raises(ConfigError, match=f"between 1 and {MAX_K}"):
            check_k(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        ChatPolicy(k=21)
    assert truncate_query("  a   b ") == ("a b", False)
    assert truncate_query("   ") == (None, False)
    cut, was_cut = truncate_query("word " * 200)
    assert was_cut and len(cut) <= 500 and not cut.endswith(" ")
