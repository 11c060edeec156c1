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
    assert (
        main(
            [
                "suggest",
                "--index",
                str(out),
                "--viewed",
                "ser-json",
                "--viewed",
                "https://kb.test/pickle",
                "-k",
                "2",
                "--json",
            ]
        )
        == 0
    )
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
    assert "indexed 10 articles" in (msg := capsys.readouterr().out) and "version 2 (0 encoded" in msg


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["suggest", "--index", str(tmp_path), "--viewed", "x"]) == 2
    assert "no index in" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["suggest", "--index", "IX", "--viewed", "ser-json", "-k", "0"],
            "argument -k: must be between 1 and 100, got 0",
        ),
        (["suggest", "--index", "IX", "--viewed", "ser-json", "-k", "101"], "must be between 1 and 100, got 101"),
        (["suggest", "--index", "IX", "--viewed", "ser-json", "-k", "three"], "expected a whole number, got 'three'"),
        (["demo", "--no-serve", "-k", "-1"], "must be between 1 and 100, got -1"),
    ],
)
def test_bad_arguments_are_usage_errors_not_tracebacks(argv, message, kb_file, tmp_path, capsys):
    argv = [str(tmp_path / "ix") if a == "IX" else a for a in argv]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_bad_paths_and_encoders_are_one_clear_line(kb_file, tmp_path, capsys):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert main(["index", str(kb_file), "--out", str(tmp_path / "o"), "--encoder", "hashing:abc"]) == 2
    assert "Valid encoders are: minilm, hashing[:DIM]" in capsys.readouterr().err
    assert main(["index", str(kb_file), "--out", str(not_a_dir), "--encoder", "hashing:64", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Not a directory" in err and "Traceback" not in err
    (tmp_path / "ix").mkdir()
    (tmp_path / "ix" / "CURRENT").write_text("not-a-number")
    assert main(["suggest", "--index", str(tmp_path / "ix"), "--viewed", "x"]) == 2
    assert "should name a version number" in capsys.readouterr().err


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
    args = [
        "index",
        str(site),
        "--out",
        str(out),
        "--encoder",
        "hashing:256",
        "--base-url",
        "https://d.test/",
        "--quiet",
    ]
    assert main([*args, "--exclude", "releases/*"]) == 0
    msg = capsys.readouterr().out
    assert "3 articles (1 hub/TOC pages" in msg and "1 --exclude releases/*" in msg and "1 _modules/*" in msg
    assert main(["suggest", "--index", str(out), "--viewed", "https://d.test/?highlight=x", "--json", "-k", "5"]) == 0
    assert {r["id"] for r in json.loads(capsys.readouterr().out)} == {"guide/a.html", "guide/b.html"}  # not the hub
    assert main([*args, "--include", "guide/*", "--rebuild"]) == 0
    assert "2 articles" in capsys.readouterr().out
    assert main(["index", str(tmp_path / "x.jsonl"), "--out", str(out), "--include", "a/*"]) == 2
    assert "choose files in a folder" in capsys.readouterr().err


def test_a_quiet_run_prints_no_library_debug_lines(kb_file, tmp_path):
    # bm25s sets its own logger to DEBUG and logs when the lexical index is built (at the first suggestion):
    # without -v none of that may reach stderr; with -v debug lines do.
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    assert main(["index", str(kb_file), "--out", str(tmp_path / "ix"), "--encoder", "hashing:64", "--quiet"]) == 0

    def suggest(*flags: str) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable,
            "-m",
            "plugin",
            *flags,
            "suggest",
            "--index",
            str(tmp_path / "ix"),
            "--viewed",
            "ser-json",
        ]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=repo, timeout=300)

    quiet, loud = suggest(), suggest("-v")
    assert quiet.returncode == 0 and "Shelve" in quiet.stdout, quiet.stderr
    assert "DEBUG" not in quiet.stderr, quiet.stderr
    assert loud.returncode == 0 and "DEBUG bm25s" in loud.stderr, loud.stderr
