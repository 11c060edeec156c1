"""`./dev` installs into .venv only when pyproject.toml changed (a stamp in .venv holds the hash it installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >>"$(dirname "$0")/../../calls.log"
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    if shutil.which("bash") is None or shutil.which("sha256sum") is None:
        pytest.skip("needs bash and sha256sum")
    shutil.copy(ROOT / "dev", tmp_path / "dev")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "pip"):  # stand-ins that record how they were called instead of installing
        (bin_dir / name).write_text(_RECORDER)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def _demo(checkout: Path) -> list[str]:
    subprocess.run(["bash", "./dev", "demo", "--no-serve"], cwd=checkout, check=True, capture_output=True, timeout=60)
    return (checkout / "calls.log").read_text().splitlines()


def test_dev_installs_once_then_only_after_pyproject_changes(checkout: Path) -> None:
    first = _demo(checkout)
    assert first == ["pip install -q -e .[all]", "python -m plugin demo --no-serve"]
    second = _demo(checkout)
    assert second[2:] == ["python -m plugin demo --no-serve"]  # no pip: nothing changed
    with open(checkout / "pyproject.toml", "a") as fh:
        fh.write("\n# a new dependency would go here\n")
    third = _demo(checkout)
    assert third[3:] == ["pip install -q -e .[all]", "python -m plugin demo --no-serve"]


def test_a_failed_install_is_retried(checkout: Path) -> None:
    pip = checkout / ".venv" / "bin" / "pip"
    pip.write_text("#!/bin/sh\nexit 1\n")
    with pytest.raises(subprocess.CalledProcessError):
        _demo(checkout)
    assert not (checkout / ".venv" / ".installed-all").exists()  # no stamp: the next run installs again
