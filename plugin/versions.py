"""Versioned index folders: every save is a new, complete version, committed by one atomic rename.

    DIR/
      CURRENT            the committed version's name ("7\\n"), replaced atomically: the commit point
      versions/6/        an older version, kept a while for workers still loading it
      versions/7/        index.json, index.faiss, articles.jsonl, embeddings.npz, settings.json, intent_model.*
      versions/.tmp-8-…  a version being written (or a crashed writer's leftover): never read
      .lock              serialises writers (readers never take it)

A reader resolves CURRENT to a folder and loads it; a version is written in full under a temporary name,
renamed into `versions/`, and only then named by CURRENT, so a half-written version can never be served,
and a running server notices a new one by reading a few bytes (`current_version`).

A folder with `index.json` at its top and no CURRENT is a flat index from before versioning: it still
loads, and its first versioned save moves it to `versions/` (the flat files are removed once CURRENT names
the new version).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from .atomic import atomic_write_text, fsync_dir
from .errors import ConfigError, IndexFormatError

__all__ = [
    "CURRENT",
    "VERSIONS",
    "commit_version",
    "current_version",
    "is_index_dir",
    "prune_versions",
    "resolve_version",
]

logger = logging.getLogger(__name__)

CURRENT = "CURRENT"
VERSIONS = "versions"
_TMP_PREFIX = ".tmp-"
# What a flat (pre-versioning) index folder holds: removed from the top once a version supersedes them.
_FLAT_FILES = (
    "index.json",
    "index.faiss",
    "index.prev.faiss",
    "articles.jsonl",
    "embeddings.npz",
    "settings.json",
    "intent_model.json",
    "intent_model.pt",
    "intent_model.prev.pt",
    "intent_model.npz",
    "intent_model.prev.npz",
)


def current_version(directory: str | os.PathLike[str]) -> str | None:
    """The committed version's name, or None for a flat or missing index. Cheap: one read of a tiny file,
    so servers can poll it between requests."""
    try:
        name = (Path(directory) / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexFormatError(f"cannot read {Path(directory) / CURRENT}: {exc}") from None
    if not name.isdigit():
        raise IndexFormatError(f"{Path(directory) / CURRENT} should name a version number, holds {name[:40]!r}")
    return name


def resolve_version(directory: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """The folder to load (the committed version, or `directory` itself when it is flat) and its version."""
    d = Path(directory)
    name = current_version(d)
    if name is None:
        return d, None
    folder = d / VERSIONS / name
    if not folder.is_dir():
        raise IndexFormatError(
            f"{d / CURRENT} names version {name}, but {folder} is missing; "
            f"rebuild with `python -m plugin index SOURCE --out {d}`"
        )
    return folder, name


def is_index_dir(directory: str | os.PathLike[str]) -> bool:
    """Whether `directory` holds a saved index (versioned or flat)."""
    d = Path(directory)
    return (d / CURRENT).exists() or (d / "index.json").exists()


def _numbered(versions: Path) -> list[int]:
    try:
        return sorted(int(p.name) for p in versions.iterdir() if p.name.isdigit() and p.is_dir())
    except FileNotFoundError:
        return []


def commit_version(directory: str | os.PathLike[str], write: Callable[[Path], None], *, keep: int = 3) -> Path:
    """Call write(folder) to fill an empty folder, then commit it as the next version of `directory`.

    Writers are serialised by a lock file; readers are never blocked. The `keep` newest versions stay on
    disk (the committed one always among them), so a worker that began loading the previous version
    finishes reading it. Returns the committed version's folder.
    """
    if keep < 1:
        raise ConfigError(f"keep must be at least 1 (the committed version), got {keep}")
    d = Path(directory)
    versions = d / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    with FileLock(str(d / ".lock")):
        # Under the lock no other writer runs, so any temporary folder left here is a crashed writer's.
        for stale in versions.glob(_TMP_PREFIX + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        committed = current_version(d)
        number = max([*_numbered(versions), int(committed or 0)]) + 1
        tmp = versions / f"{_TMP_PREFIX}{number}-{os.getpid()}"
        tmp.mkdir()
        try:
            write(tmp)
            fsync_dir(tmp)
            folder = versions / str(number)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(versions)
        atomic_write_text(d / CURRENT, f"{number}\n")  # the commit point
        _drop_flat_files(d)
        prune_versions(d, keep=keep)
    logger.info("committed version %s of %s", number, d)
    return folder


def prune_versions(directory: str | os.PathLike[str], *, keep: int = 3) -> list[str]:
    """Remove all but the `keep` newest versions, never the committed one; returns the removed names."""
    d = Path(directory)
    committed = current_version(d)
    if committed is None:
        return []  # nothing committed yet: no version can be told from a half-finished one
    # the committed version plus the keep - 1 newest others stay
    old = [n for n in _numbered(d / VERSIONS) if str(n) != committed][: -keep + 1 or None]
    for n in old:
        shutil.rmtree(d / VERSIONS / str(n), ignore_errors=True)
    return [str(n) for n in old]


def _drop_flat_files(d: Path) -> None:
    if not (d / "index.json").exists():
        return
    for name in _FLAT_FILES:  # index.json first: the folder stops looking flat at once
        (d / name).unlink(missing_ok=True)
