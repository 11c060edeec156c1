"""One reader of the event log for every trainer: impressions are not clicks, a torn line loses nothing else,
and `train-intent` and the lab loader see the same sessions."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from plugin.config import SessionSettings
from plugin.event_log import MAX_CLICKS_PER_SESSION, EventLog, click_sessions
from plugin.events import make_event
from plugin.models.data import read_jsonl_events


def _write(path: Path, records: list[dict], torn_tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + torn_tail)
    return path


# Visitor A reads x, is shown y and z, clicks z (and lands on it); visitor B reads x, is shown y, leaves for w.
LOG = [
    {"session_id": "A", "kind": "page_view", "article_id": "x", "ts": 1},
    {"session_id": "A", "kind": "suggestion_impression", "article_id": "y", "position": 0, "ts": 2},
    {"session_id": "A", "kind": "suggestion_impression", "article_id": "z", "position": 1, "ts": 2},
    {"session_id": "A", "kind": "suggestion_click", "article_id": "z", "position": 1, "ts": 3},
    {"session_id": "A", "kind": "page_view", "article_id": "z", "ts": 4},
    {"session_id": "B", "kind": "page_view", "article_id": "x", "ts": 10},
    {"session_id": "B", "kind": "suggestion_impression", "article_id": "y", "position": 0, "ts": 11},
    {"session_id": "B", "kind": "page_view", "url": "/w", "ts": 12},
    {"session_id": "C", "kind": "page_view", "article_id": "x", "ts": 20},
    {"session_id": "C", "kind": "suggestion_impression", "article_id": "y", "position": 0, "ts": 21},
]


def test_impressions_are_not_clicks(tmp_path):
    log = _write(tmp_path / "events.jsonl", LOG)
    # C only saw an impression after its one page: no session; the click and its page view are one click.
    assert [(s.session_id, s.items) for s in click_sessions(log)] == [("A", ("x", "z"))]
    assert [s.items for s in click_sessions(log, url_items=True)] == [("x", "z"), ("x", "/w")]
    data = read_jsonl_events(log, test_fraction=0.5)
    assert data.item_keys == ("x", "z")  # numbered from training; an impression of y made no item
    assert [s.tolist() for s in data.train_sessions] == [[1, 2]]
    assert "y" not in data.item_keys  # only ever shown, never read


def test_a_torn_last_line_is_skipped_not_fatal(tmp_path, caplog):
    log = _write(tmp_path / "events.jsonl", LOG, torn_tail='{"session_id": "B", "kind": "page_vi')
    with caplog.at_level(logging.WARNING, logger="plugin.event_log"):
        assert [s.items for s in click_sessions(log, url_items=True)] == [("x", "z"), ("x", "/w")]
    assert "skipped 1 unreadable line" in caplog.text
    assert read_jsonl_events(log, test_fraction=0.5).item_keys == ("x", "z")
    # EventLog reads the same file the same way, and mends the tail so its next append starts a fresh line.
    el = EventLog(log)
    el.append(make_event("D", "page_view", article_id="x", ts=30))
    el.append(make_event("D", "article_open", article_id="y", ts=31))
    assert [s.items for s in click_sessions(el)] == [("x", "z"), ("x", "y")]


def test_events_and_records_read_alike(tmp_path):
    log = _write(tmp_path / "events.jsonl", LOG)
    from_file = click_sessions(log, url_items=True)
    from_records = click_sessions(LOG, url_items=True)
    el = EventLog(tmp_path / "copy.jsonl")
    for r in LOG:
        el.append(
            make_event(
                r["session_id"],
                r["kind"],
                article_id=r.get("article_id"),
                url=r.get("url"),
                position=r.get("position"),
                ts=r["ts"],
            )
        )
    from_events = click_sessions(list(el.iter_events()), url_items=True)
    assert from_file == from_records
    # EventLog writes a pseudonym where the raw records carry the session id: the sessions are the same
    assert [s.session_id for s in from_events] == [el.pseudonym(s.session_id) for s in from_file]
    assert [(s.items, s.last_ts) for s in from_events] == [(s.items, s.last_ts) for s in from_file]


def test_known_filter_and_iso_times(tmp_path):
    recs = [
        {"session_id": "A", "kind": "article_open", "article_id": "x", "ts": "2024-01-01T00:00:02Z"},
        {"session_id": "A", "kind": "article_open", "article_id": "y", "ts": "2024-01-01T00:00:01Z"},
        {"session_id": "A", "kind": "article_open", "article_id": "gone", "ts": "2024-01-01T00:00:03Z"},
        {"session_id": "B", "kind": "article_open", "article_id": "x", "ts": "not a time"},
        {"kind": "article_open", "article_id": "x", "ts": 1},  # no session: skipped
    ]
    log = _write(tmp_path / "events.jsonl", recs)
    assert [s.items for s in click_sessions(log)] == [("y", "x", "gone")]
    assert [s.items for s in click_sessions(log, known={"x", "y"})] == [("y", "x")]


def test_one_session_flooding_clicks_gives_training_no_more_than_a_session_holds(tmp_path, caplog):
    """docs/security.md, round 2: a visitor's browser reports what it likes. One session replaying A, B, A, B… was
    every training example but a handful (each prefix is one) and as many A -> B transition counts."""
    honest = [
        {"session_id": f"h{i}", "kind": "page_view", "article_id": a, "ts": 10 * i + j}
        for i in range(30)
        for j, a in enumerate(("x", "y", "z"))
    ]
    flood = [
        {"session_id": "F", "kind": "suggestion_click", "article_id": "a" if j % 2 else "b", "ts": -100_000 + j}
        for j in range(20_000)
    ]
    log = _write(tmp_path / "events.jsonl", honest + flood)
    with caplog.at_level(logging.WARNING, logger="plugin.event_log"):
        sessions = {s.session_id: s.items for s in click_sessions(log)}
    assert "1 session(s) longer than 200 clicks" in caplog.text
    assert len(sessions["F"]) == MAX_CLICKS_PER_SESSION == SessionSettings().max_events
    assert sessions["F"][-2:] == ("b", "a")  # its last clicks, as the store keeps a session's last events
    assert sessions["h0"] == ("x", "y", "z")
    assert len(click_sessions(log, max_length=None)[0].items) == 20_000  # asked for, the whole session
    # the lab reads the log through the same reader
    data = read_jsonl_events(log, test_fraction=0.5)  # F is the first session, so in the training half
    assert max(len(s) for s in data.train_sessions) == MAX_CLICKS_PER_SESSION
