"""Spec = server, a bounded run for CI: schemathesis with every check against the hardened app over uvicorn
(bench/spec_conformance.py; the benchmark run uses --examples 100, 1,636 cases)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("schemathesis")
pytest.importorskip("uvicorn")

pytestmark = pytest.mark.slow


def test_schemathesis_all_checks_find_nothing():
    path = Path(__file__).resolve().parents[1] / "bench" / "spec_conformance.py"
    spec = importlib.util.spec_from_file_location("bench_spec_conformance", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    code, out = mod.run(examples=5, seed=0, extra=[])
    assert code == 0 and "No issues found" in out, out[-6000:]
    generated = int(out.split(" generated")[0].rsplit("\n", 1)[-1].split()[-1])
    assert generated >= 200, out[-2000:]
