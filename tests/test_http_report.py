"""The feedback report (plugin.feedback) and the `report` command the HTTP adapter registers."""

from __future__ import annotations

import json

import pytest

from plugin import EventLog, make_event
from plugin.cli import main
from plugin.feedback import feedback_report, format_report


def _log(tmp_path):
    t = iter(range(1000))

    def ev(sid, kind, **kw):
        return make_event(sid, kind, ts=float(next(t)), **kw)

    events = [
        # s1: shown a, b; clicks b at position 1, then reads b
        ev("s1", "page_view", article_id="x"),
        ev("s1", "suggestion_impression", article_id="a", position=0),
        ev("s1", "suggestion_impression", article_id="b", position=1),
        ev("s1", "suggestion_click", article_id="b", position=1),
        ev("s1", "page_view", article_id="b"),
        ev("s1", "page_view", article_id="c"),
        # s2: shown a, b; no click
        ev("s2", "page_view", article_id="x"),
        ev("s2", "suggestion_impression", article_id="a", position=0),
        ev("s2", "suggestion_impression", article_id="b", position=1),
        # s3: never shown anything
        ev("s3", "search", query="hello"),
    ]
    log = EventLog(tmp_path / "events.jsonl")
    for e in events:
        log.append(e)
    return log, events


def test_ctr_per_article_and_position(tmp_path):
    _, events = _log(tmp_path)
    rep = feedback_report(events)
    assert [(r.key, r.impressions, r.clicks) for r in rep.by_article] == [("b", 2, 1), ("a", 2, 0)]
    assert [(r.key, r.impressions, r.clicks, r.ctr) for r in rep.by_position] == [("0", 2, 0, 0.0), ("1", 2, 1, 0.5)]
    e = rep.effect
    assert (e.sessions, e.shown, e.clicked, e.clicks, e.clicks_followed) == (3, 2, 1, 1, 1)
    assert e.reads_per_clicking_session == 3.0 and e.reads_per_other_shown_session == 1.0
    text = format_report(rep)
    assert "| 1 | 2 | 1 | 50.0% |" in text and "clicked one: 1 (50.0% of those shown)" in text


def test_empty_log_reports_zeros():
    rep = feedback_report([])
    assert rep.by_article == [] and rep.by_position == [] and rep.effect.sessions == 0
    assert "sessions: 0" in format_report(rep)


def test_report_command(tmp_path, capsys):
    log, _ = _log(tmp_path)
    assert main(["report", "--log", str(log.path)]) == 0
    assert "## CTR by position" in capsys.readouterr().out
    assert main(["report", "--log", str(log.path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["by_position"][1] == {"key": "1", "impressions": 2, "clicks": 1, "ctr": 0.5}
    assert main(["report", "--log", str(tmp_path / "missing.jsonl")]) == 2
    assert "no event log" in capsys.readouterr().err


def test_serve_command_is_registered():
    from plugin.cli import build_parser

    args = build_parser().parse_args(["serve", "--index", "ix", "--workers", "2"])
    assert (args.index, args.workers, args.port) == ("ix", 2, 8000)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["report"])  # --log is required
