from __future__ import annotations

import json

import pytest

from plugin.cli import main


@pytest.fixture
def kb_file(tmp_path, articles):
    p = tmp_path / "kb.jsonl"
    p.write_text("".join(json.dumps(a.to_dict()) + "\n" for a in articles))
    return p


def test_index_then_suggest_json(kb_file, tmp_path, capsys):
    out = tmp_path / "ix"
    assert main(["index", str(kb_file), "--out", str(out), "--encoder", "hashing:1024", "--quiet"]) == 0
    assert "indexed 10 articles" in capsys.readouterr().out
    assert main(["suggest", "--index", str(out), "--viewed", "ser-json", "--viewed", "https://kb.test/pickle", "-k", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and set(rows[0]) == {"id", "title", "url", "score", "reason"}
    assert {r["id"] for r in rows} <= {"ser-shelve", "ser-marshal", "ser-csv"}
    # an article dropped from the source leaves the index on re-index
    lines = kb_file.read_text().splitlines()
    kb_file.write_text("\n".join(lines[:-1]) + "\n")
    assert main(["index", str(kb_file), "--out", str(out), "--encoder", "hashing:1024", "--quiet"]) == 0
    assert "indexed 9 articles" in capsys.readouterr().out


def test_reindex_reports_zero_encoded(kb_file, tmp_path, capsys):
    out = tmp_path / "ix"
    main(["index", str(kb_file), "--out", str(out), "--encoder", "hashing:1024", "--quiet"])
    capsys.readouterr()
    main(["index", str(kb_file), "--out", str(out), "--encoder", "hashing:1024", "--quiet"])
    assert "indexed 10 articles" in (msg := capsys.readouterr().out) and "(0 encoded" in msg


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["suggest", "--index", str(tmp_path), "--viewed", "x"]) == 2
    assert "no index in" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_demo_walkthrough_offline(tmp_path, capsys):
    assert main(["demo", "--no-serve", "--cache", str(tmp_path), "--encoder", "hashing:1024", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Python standard-library modules" in out
    assert "because you read json" in out and "**Related articles**" in out
