"""One reader of the event log for every trainer: impressions are not clicks, a torn line loses nothing else,
and `train-intent` and the lab loader see the same sessions."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from plugin.config import SessionSettings
from plugin.event_log import MAX_CLICKS_PER_SESSION, REVISIT, UNSHOWN_CLICK, EventLog, click_sessions, read_click_log
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
    # 20,000 page views of 20,000 pages (round 3's rules leave a flood of one article's revisits, or of clicks on
    # cards never shown, nothing to cap: see the tests below)
    flood = [{"session_id": "F", "kind": "page_view", "article_id": f"f{j}", "ts": -100_000 + j} for j in range(20_000)]
    log = _write(tmp_path / "events.jsonl", honest + flood)
    with caplog.at_level(logging.WARNING, logger="plugin.event_log"):
        sessions = {s.session_id: s.items for s in click_sessions(log)}
    assert "1 session(s) longer than 200 clicks" in caplog.text
    assert len(sessions["F"]) == MAX_CLICKS_PER_SESSION == SessionSettings().max_events
    assert sessions["F"][-2:] == ("f19998", "f19999")  # its last clicks, as the store keeps a session's last events
    assert sessions["h0"] == ("x", "y", "z")
    assert len(click_sessions(log, max_length=None)[0].items) == 20_000  # asked for, the whole session
    # the lab reads the log through the same reader
    data = read_jsonl_events(log, test_fraction=0.5)  # F is the first session, so in the training half
    assert max(len(s) for s in data.train_sessions) == MAX_CLICKS_PER_SESSION


def _view(sid: str, article: str, ts: float) -> dict:
    return {"session_id": sid, "kind": "page_view", "article_id": article, "ts": ts}


def _card(sid: str, kind: str, article: str, ts: float) -> dict:
    return {"session_id": sid, "kind": kind, "article_id": article, "position": 0, "ts": ts}


def test_a_click_of_a_card_never_shown_teaches_nothing(tmp_path, caplog):
    """docs/security.md, round 3: a script reports `suggestion_click`s of one article in many sessions (the API
    accepts them: it never breaks the visitor's path) to push that article in what train-intent learns. A click
    counts only after an impression of the same article in the same session, as the widget reports them."""
    genuine = [
        _view("A", "x", 1),
        _card("A", "suggestion_impression", "z", 2),
        _card("A", "suggestion_click", "z", 3),
        _view("A", "z", 4),
    ]
    # clicks of t with no impression, or an impression in another session, or one after the click
    script = [_view("S", "x", 10), _card("S", "suggestion_click", "t", 11), _view("S", "y", 12)]
    script += [_card("S", "suggestion_click", "t", 13), _view("S", "w", 14)]
    script += [
        _view("P", "x", 20),
        _card("P", "suggestion_click", "t", 21),
        _card("P", "suggestion_impression", "t", 22),
    ]
    script += [_card("Q", "suggestion_impression", "t", 30), _view("Q", "y", 31)]
    log = _write(tmp_path / "events.jsonl", genuine + script)
    with caplog.at_level(logging.WARNING, logger="plugin.event_log"):
        read = read_click_log(log)
    assert {s.session_id: s.items for s in read.sessions} == {"A": ("x", "z"), "S": ("x", "y", "w")}
    assert read.ignored[UNSHOWN_CLICK] == 3
    assert "ignored 3 suggestion_click of an article the session was not shown" in caplog.text
    assert "3 suggestion_click of an article the session was not shown" in read.describe()
    assert all("t" not in s.items for s in click_sessions(log, url_items=True))
    assert "t" not in read_jsonl_events(log, test_fraction=0.5).item_keys  # the lab reads the log the same way


def test_an_article_counts_once_per_session(tmp_path):
    """One session's "x, t, y, t, w, t…" made it one training example of t per round, 100 under the click cap:
    a script's session weighed on t like 100 visitors. A revisit is dropped (the recommender never suggests what
    a session has read, so it has nothing to learn there); back-to-back repeats stay collapse_repeats' to merge."""
    pump = [_view("S", a, j) for j, a in enumerate(("x", "t", "y", "t", "w", "t", "t", "x"))]
    back = [_view("B", a, 100 + j) for j, a in enumerate(("h", "a", "h", "b"))]  # a reader back on a hub page
    log = _write(tmp_path / "events.jsonl", pump + back)
    read = read_click_log(log)
    assert [s.items for s in read.sessions] == [("x", "t", "y", "w"), ("h", "a", "b")]
    assert read.ignored[REVISIT] == 4 and "4 revisit of an article" in read.describe()
    assert [s.items for s in click_sessions(log, collapse_repeats=False)][0] == ("x", "t", "y", "w")


def test_train_intent_reports_what_it_ignored(rec, tmp_path, capsys):
    from plugin.cli import main as plugin_main

    ids = sorted(rec.kb.ids())
    rec.save(tmp_path / "ix")
    recs = []
    for i in range(40):
        a, b, c = ids[i % len(ids)], ids[(i + 1) % len(ids)], ids[(i + 2) % len(ids)]
        recs += [_view(f"s{i}", a, 10 * i), _view(f"s{i}", b, 10 * i + 1), _view(f"s{i}", c, 10 * i + 2)]
    recs += [_view("bot", ids[0], 1000), _card("bot", "suggestion_click", ids[5], 1001), _view("bot", ids[1], 1002)]
    recs += [_view("bot", ids[0], 1003)]  # a revisit
    log = _write(tmp_path / "events.jsonl", recs)
    argv = ["train-intent", "--index", str(tmp_path / "ix"), "--log", str(log), "--epochs", "1", "--quiet"]
    plugin_main(argv)
    out = capsys.readouterr().out
    assert (
        "event log ignored: 1 suggestion_click of an article the session was not shown; "
        "1 revisit of an article the session had already read" in out
    )
