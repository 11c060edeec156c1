"""Threads are pinned to one on every serving path by default; SESSION_SUGGEST_THREADS changes or disables it.
Each case runs in a fresh interpreter started with 3 OpenMP threads, so "pinned" and "left alone" differ."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from plugin import ConfigError
from plugin.threads import threads_setting

_PROBE = """
import json, sys, faiss
from plugin import HashingEncoder, SessionRecommender, Article
TOPIC_ARTICLES = [Article(f"a{i}", f"Article {i}", f"https://kb.test/{i}", f"text about topic {i}") for i in range(4)]
path = sys.argv[1]
before = faiss.omp_get_max_threads()
if path == "build":
    SessionRecommender.build(TOPIC_ARTICLES, encoder=HashingEncoder(64), progress=False)
elif path == "load":
    rec = SessionRecommender.build(TOPIC_ARTICLES, encoder=HashingEncoder(64), progress=False)
    rec.save(sys.argv[2])
    faiss.omp_set_num_threads(3)
    SessionRecommender.load(sys.argv[2], encoder=HashingEncoder(64))
elif path == "http":
    from adapters.http.app import single_threaded_compute
    single_threaded_compute()
import torch
from threadpoolctl import threadpool_info
blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
print(json.dumps({"before": before, "faiss": faiss.omp_get_max_threads(), "torch": torch.get_num_threads(),
                  "blas": blas}))
"""


def _probe(path: str, tmp_path, threads: str | None) -> dict[str, int]:
    env = {k: v for k, v in os.environ.items() if k not in ("SESSION_SUGGEST_THREADS",)}
    env["OMP_NUM_THREADS"] = "3"
    if threads is not None:
        env["SESSION_SUGGEST_THREADS"] = threads
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, path, str(tmp_path / "idx")],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", ["build", "load", "http"])
def test_serving_paths_pin_one_thread_by_default(path, tmp_path):
    got = _probe(path, tmp_path, None)
    assert got["before"] == 3  # the probe really starts unpinned
    assert got["faiss"] == 1 and got["torch"] == 1
    assert got["blas"] and set(got["blas"]) == {1}  # numpy's BLAS too (MMR's matrix product)


def test_opt_out_keeps_the_libraries_defaults(tmp_path):
    untouched = _probe("bare", tmp_path, None)  # what the libraries choose in this environment
    got = _probe("load", tmp_path, "0")
    assert untouched["faiss"] == got["faiss"] == 3
    assert got["torch"] == untouched["torch"] and sorted(got["blas"]) == sorted(untouched["blas"])


def test_a_count_is_honoured(tmp_path):
    got = _probe("build", tmp_path, "2")
    assert got["faiss"] == 2 and got["torch"] == 2 and set(got["blas"]) == {2}


@pytest.mark.parametrize("raw", ["-1", "two", "1.5", "²"])
def test_bad_setting_names_what_is_valid(raw):
    with pytest.raises(ConfigError, match="whole number of threads"):
        threads_setting({"SESSION_SUGGEST_THREADS": raw})
