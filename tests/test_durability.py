"""Durability: a process SIGKILLed in the middle of a save leaves the last good version loadable.

Each case saves version 1, then forks a child that saves version 2 over it and is killed at every rename of
that save in turn (the child pauses just before the k-th `os.replace` and the parent SIGKILLs it). Whatever the
kill point, what loads is exactly version 1 or exactly version 2, never a mix; with no kill it is version 2.
A second test kills a separately started interpreter at random moments while it saves in a loop.
The JSONL event log is checked for a torn last line.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import plugin.atomic
from plugin import (
    ArticleIndex,
    ContentSTAMP,
    EmbeddingCache,
    EventLog,
    HashingEncoder,
    IndexFormatError,
    SessionRecommender,
    STAMPConfig,
    SuggestSettings,
    make_event,
)
from plugin.intent import ContentSTAMPConfig

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL (POSIX)")

REPO = Path(__file__).resolve().parents[1]


def _count_replaces(save: Callable[[Path], None], directory: Path, monkeypatch) -> int:
    calls = 0
    real = os.replace

    def counting(src, dst):
        nonlocal calls
        calls += 1
        real(src, dst)

    with monkeypatch.context() as m:
        m.setattr(plugin.atomic.os, "replace", counting)
        save(directory)
    return calls


def _kill_at_rename(save: Callable[[Path], None], directory: Path, k: int) -> None:
    """Fork a child that runs save(directory) but stops just before its k-th rename; SIGKILL it there."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(r)
            real = os.replace
            seen = 0

            def pausing(src, dst):
                nonlocal seen
                if seen == k:
                    os.write(w, b"P")
                    time.sleep(60)
                seen += 1
                real(src, dst)

            plugin.atomic.os.replace = pausing
            save(directory)
            os.write(w, b"D")
        finally:
            os._exit(0)
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], 30)
        assert ready, "child neither paused nor finished"
        os.read(r, 1)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)


def _check_every_kill_point(tmp_path, monkeypatch, save_v1, save_v2, load, v1, v2) -> None:
    base = tmp_path / "v1"
    save_v1(base)
    shutil.copytree(base, tmp_path / "dry")
    n = _count_replaces(save_v2, tmp_path / "dry", monkeypatch)
    assert n >= 1
    outcomes = []
    for k in range(n + 1):  # k == n: the save completes
        d = tmp_path / f"kill{k}"
        shutil.copytree(base, d)
        _kill_at_rename(save_v2, d, k)
        got = load(d)
        assert got in (v1, v2), f"killed before rename {k}: loaded neither version"
        outcomes.append(got)
    assert outcomes[0] == v1, "killed before the first rename, the old version must load"
    assert outcomes[-1] == v2, "a completed save must load the new version"
    first_new = outcomes.index(v2)
    assert all(o == v2 for o in outcomes[first_new:]), f"a later kill went back to the old version: {outcomes}"


# ------------------------------------------------------------------ artifacts


def _index(ids, seed):
    idx = ArticleIndex(16, "flat", encoder_name="test")
    vecs = np.random.default_rng(seed).standard_normal((len(ids), 16)).astype(np.float32)
    idx.upsert(ids, vecs / np.linalg.norm(vecs, axis=1, keepdims=True))
    return idx


def _index_fingerprint(d):
    idx = ArticleIndex.load(d, expect_dim=16)
    ids = sorted(idx.ids())
    return tuple(ids), float(idx.vectors(ids).sum())


def test_index_survives_sigkill_mid_save(tmp_path, monkeypatch):
    v1_idx = _index([f"a{i}" for i in range(20)], seed=1)
    v2_idx = _index([f"a{i}" for i in range(20)], seed=1)
    v2_idx.remove([f"a{i}" for i in range(5)])
    v2_idx.upsert(
        [f"b{i}" for i in range(10)], _index([f"b{i}" for i in range(10)], 2).vectors([f"b{i}" for i in range(10)])
    )
    v1_idx.save(tmp_path / "ref1")
    v2_idx.save(tmp_path / "ref2")
    _check_every_kill_point(
        tmp_path,
        monkeypatch,
        v1_idx.save,
        v2_idx.save,
        _index_fingerprint,
        _index_fingerprint(tmp_path / "ref1"),
        _index_fingerprint(tmp_path / "ref2"),
    )


def test_two_crashed_saves_in_a_row_keep_the_committed_index(tmp_path, monkeypatch):
    """The second crashed save must not take the first one's uncommitted leftover for the good version."""
    v1, v2, v3 = (
        _index([f"{p}{i}" for i in range(n)], seed) for p, n, seed in (("a", 20, 1), ("b", 30, 2), ("c", 40, 3))
    )
    d = tmp_path / "idx"
    v1.save(d)
    want = _index_fingerprint(d)
    for version in (v2, v3):
        dry = tmp_path / f"dry-{len(version)}"
        shutil.copytree(d, dry)
        n = _count_replaces(version.save, dry, monkeypatch)
        _kill_at_rename(version.save, d, n - 1)  # just before index.json, the commit point
        assert _index_fingerprint(d) == want
    v3.save(d)
    assert len(ArticleIndex.load(d)) == 40


def test_embedding_cache_survives_sigkill_mid_save(tmp_path, monkeypatch):
    enc = HashingEncoder(16)

    def cache(n):
        c = EmbeddingCache(16, enc.name)
        for i in range(n):
            c.put(f"{i:032x}", enc.encode([f"text {i}"])[0])
        return c

    def load(path_dir):
        c = EmbeddingCache.load(path_dir / "embeddings.npz", 16, enc.name)
        return len(c)

    c1, c2 = cache(10), cache(300)
    _check_every_kill_point(
        tmp_path,
        monkeypatch,
        lambda d: c1.save(d / "embeddings.npz"),
        lambda d: c2.save(d / "embeddings.npz"),
        load,
        10,
        300,
    )


def test_intent_model_survives_sigkill_mid_save(tmp_path, monkeypatch):
    def model(dim, seed):
        torch.manual_seed(seed)
        return ContentSTAMP(ContentSTAMPConfig(input_dim=16, stamp=STAMPConfig(dim=dim)))

    def fingerprint(d):
        m = ContentSTAMP.load(d)
        return m.config.stamp.dim, round(float(sum(p.sum() for p in m.state_dict().values())), 4)

    m1, m2 = model(8, 0), model(12, 1)  # another shape too: a mixed pair would not even load
    m1.save(tmp_path / "ref1")
    m2.save(tmp_path / "ref2")
    _check_every_kill_point(
        tmp_path,
        monkeypatch,
        m1.save,
        m2.save,
        fingerprint,
        fingerprint(tmp_path / "ref1"),
        fingerprint(tmp_path / "ref2"),
    )


def test_recommender_directory_survives_sigkill_mid_save(tmp_path, monkeypatch, articles):
    enc = HashingEncoder(64)
    settings = SuggestSettings(min_score=-1.0)
    v1 = SessionRecommender.build(articles[:8], encoder=enc, progress=False, settings=settings)
    v2 = SessionRecommender.build(articles[:8], encoder=enc, progress=False, settings=settings)
    v2.remove_articles([a.id for a in articles[:3]])  # removed articles must not break an interrupted save
    v2.upsert_articles(articles[8:])

    def fingerprint(d):
        rec = SessionRecommender.load(d, encoder=enc)
        assert rec.suggest_for([rec.index.ids()[0]], k=2)  # it serves, not just loads
        return tuple(sorted(rec.index.ids()))

    _check_every_kill_point(
        tmp_path,
        monkeypatch,
        v1.save,
        v2.save,
        fingerprint,
        tuple(sorted(v1.index.ids())),
        tuple(sorted(v2.index.ids())),
    )


_SAVER = textwrap.dedent(
    """
    import sys, torch, faiss
    torch.set_num_threads(1); faiss.omp_set_num_threads(1)
    from plugin import Article, HashingEncoder, SessionRecommender
    arts = [Article(f"a{i}", f"Title {i}", f"https://kb.test/{i}", f"body {i} " * 50) for i in range(400)]
    enc = HashingEncoder(64)
    versions = [SessionRecommender.build(arts[:200], encoder=enc, progress=False),
                SessionRecommender.build(arts[150:], encoder=enc, progress=False)]
    versions[0].save(sys.argv[1])
    print("ready", flush=True)
    i = 1
    while True:
        versions[i % 2].save(sys.argv[1])
        i += 1
    """
)


def test_interpreter_killed_at_random_moments_while_saving(tmp_path):
    d = tmp_path / "rec"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SAVER, str(d)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout.readline().strip() == b"ready"
        rng = np.random.default_rng(0)
        enc = HashingEncoder(64)
        expected = ({f"a{i}" for i in range(200)}, {f"a{i}" for i in range(150, 400)})
        for _ in range(3):
            time.sleep(float(rng.uniform(0.05, 0.4)))
            proc.send_signal(signal.SIGSTOP)  # freeze it wherever it is, inspect a copy, let it go on
            snap = tmp_path / f"snap{_}"
            shutil.copytree(d, snap)
            proc.send_signal(signal.SIGCONT)
            assert set(SessionRecommender.load(snap, encoder=enc).index.ids()) in expected
        time.sleep(float(rng.uniform(0.05, 0.4)))
    finally:
        proc.kill()  # SIGKILL
        proc.wait()
    assert set(SessionRecommender.load(d, encoder=enc).index.ids()) in expected


# ------------------------------------------------------------------ the event log


def test_event_log_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    events = [make_event("s", "page_view", url=f"https://site.test/{i}", ts=float(i)) for i in range(5)]
    for e in events:
        log.append(e)
    # a crash mid-write: half of the next record, no newline
    line = json.dumps(make_event("s", "search", query="cut off").to_dict())
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line[: len(line) // 2])
    assert [e.event_id for e in EventLog(path).iter_events()] == [e.event_id for e in events]
    reopened = EventLog(path)  # a restarted writer starts on a fresh line
    later = make_event("s", "page_view", url="https://site.test/later", ts=9.0)
    reopened.append(later)
    assert [e.event_id for e in reopened] == [e.event_id for e in [*events, later]]


def test_event_log_writer_killed_mid_stream(tmp_path):
    path = tmp_path / "events.jsonl"
    code = textwrap.dedent(
        """
        import sys
        from plugin.event_log import EventLog
        from plugin.events import make_event
        log = EventLog(sys.argv[1])
        i = 0
        while True:
            log.append(make_event("s", "page_view", url=f"https://site.test/{i}", text="x" * 500, ts=float(i)))
            i += 1
            if i == 50:
                print("go", flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.readline().strip() == b"go"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # and, as a disk might, lose part of the last write
        fh.truncate(size - 7)
    urls = [e.url for e in EventLog(path)]
    assert len(urls) >= 49
    assert urls == [f"https://site.test/{i}" for i in range(len(urls))]  # a clean prefix, nothing skipped


def test_half_written_index_is_reported_not_loaded(tmp_path):
    _index(["a", "b"], 0).save(tmp_path)
    meta = tmp_path / "index.json"
    meta.write_text(meta.read_text()[:40])
    with pytest.raises(IndexFormatError):
        ArticleIndex.load(tmp_path)


def test_erasing_a_session_loses_nothing_another_process_appends(tmp_path):
    """uvicorn workers share one log: an erase in one (read, filter, rename) must not drop lines that another
    appended between its read and its rename."""
    path = tmp_path / "events.jsonl"
    n = 1500
    code = textwrap.dedent(
        """
        import sys
        from plugin.event_log import EventLog
        from plugin.events import make_event
        log = EventLog(sys.argv[1])
        print("go", flush=True)
        for i in range(int(sys.argv[2])):
            log.append(make_event("keep", "page_view", url=f"https://site.test/{i}", ts=float(i)))
        """
    )
    log = EventLog(path)
    for i in range(2000):  # a log long enough that an erase's read-to-rename window is wide
        log.append(make_event("bulk", "page_view", url=f"https://site.test/bulk/{i}", ts=float(i)))
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path), str(n)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.readline().strip() == b"go"
    erases = 0
    while True:
        log.append(make_event("gone", "page_view", url="https://site.test/gone", ts=0.0))
        assert log.erase_session("gone") == 1
        erases += 1
        if proc.poll() is not None:
            break
    assert proc.wait() == 0 and erases > 1
    kept = [e.url for e in EventLog(path) if e.session_id == log.pseudonym("keep")]
    assert kept == [f"https://site.test/{i}" for i in range(n)]
    assert sum(e.session_id == log.pseudonym("bulk") for e in EventLog(path)) == 2000
