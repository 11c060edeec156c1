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


def test_index_a_site_folder_with_include_exclude_and_default_skips(tmp_path, capsys):
    site = tmp_path / "site"
    for rel, body in {
        "index.html": '<h1>Home</h1><div class="toctree-wrapper"><a href="guide/a.html">alpha sessions guide</a> <a href="guide/b.html">beta sessions guide</a>'
                      ' <a href="releases/1.0.html">1.0</a></div>',
        "guide/a.html": '<h1>Alpha guide</h1><p>alpha sessions cookies</p><a href="b.html">see b</a>',
        "guide/b.html": "<h1>Beta guide</h1><p>beta sessions storage</p>",
        "releases/1.0.html": "<h1>Release 1.0</h1><p>sessions fixed</p>",
        "_modules/x.html": "<h1>Source of x</h1><pre>def x(): pass</pre>",
        "_static/README.md": "# theme readme",
        "search.html": '<h1>Search</h1><div id="search-results"></div>',
    }.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(body)
    out = tmp_path / "ix"
    args = ["index", str(site), "--out", str(out), "--encoder", "hashing:256", "--base-url", "https://d.test/", "--quiet"]
    assert main([*args, "--exclude", "releases/*"]) == 0
    msg = capsys.readouterr().out
    assert "3 articles (1 hub/TOC pages" in msg and "1 --exclude releases/*" in msg and "1 _modules/*" in msg
    assert main(["suggest", "--index", str(out), "--viewed", "https://d.test/?highlight=x", "--json", "-k", "5"]) == 0
    assert {r["id"] for r in json.loads(capsys.readouterr().out)} == {"guide/a.html", "guide/b.html"}  # not the hub
    assert main([*args, "--include", "guide/*", "--rebuild"]) == 0
    assert "2 articles" in capsys.readouterr().out
    assert main(["index", str(tmp_path / "x.jsonl"), "--out", str(out), "--include", "a/*"]) == 2
    assert "choose files in a folder" in capsys.readouterr().err
