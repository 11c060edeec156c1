"""Crash-safe writes: temp file in the same directory, fsync, rename, fsync the directory.

A reader therefore sees either the previous complete file or the new complete file, never a torn one,
even if the writer is killed with SIGKILL mid-save.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import IndexFormatError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_with",
    "committed_file",
    "fsync_dir",
    "read_committed",
    "recorded_sha256",
    "replace_keeping_committed",
    "replace_keeping_committed_with",
]


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """fsync a directory, so a rename inside it survives a power cut (a no-op where that is not allowed)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_with(path: str | os.PathLike[str], writer: Callable[[str], None]) -> None:
    """Call writer(temp_path) to produce the file, then atomically move it to path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    atomic_write_with(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False))


# A data file and the JSON metadata that describes it are two renames, and a crash can fall between them.
# The metadata records the data's sha256 and is written last (the commit point); before the data file is
# replaced, the committed version is kept as `<name>.prev<suffix>`. A reader whose data does not match the
# metadata's hash (crash between the two renames) reads the backup instead.


def _backup(path: Path) -> Path:
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def replace_keeping_committed(path: str | os.PathLike[str], data: bytes, committed_sha256: str | None) -> str:
    """Atomically write data to path, first keeping the committed version as a backup; return data's sha256.

    `committed_sha256` is the hash the currently committed metadata names (None if there is none): only a
    file that matches it is kept, so an uncommitted leftover of a crashed save never replaces a good backup.
    """

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return replace_keeping_committed_with(path, write, committed_sha256)


def replace_keeping_committed_with(
    path: str | os.PathLike[str], writer: Callable[[str], None], committed_sha256: str | None
) -> str:
    """`replace_keeping_committed` for data that a writer puts in a file itself (a gigabyte-sized FAISS index is
    never held in memory twice); returns the written file's sha256."""
    target = Path(path)
    if committed_sha256 and target.exists() and _sha256_file(target) == committed_sha256:
        atomic_write_with(_backup(target), lambda tmp: os.replace(_link_or_copy(target, tmp), tmp))
    atomic_write_with(target, writer)
    return _sha256_file(target)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _link_or_copy(src: Path, tmp: str) -> str:
    # A hard link costs nothing and keeps the old inode once `src` is replaced; copy where links fail.
    staged = f"{tmp}.link"
    try:
        os.link(src, staged)
    except OSError:
        with open(src, "rb") as fin, open(staged, "wb") as fout:
            fout.write(fin.read())
    return staged


def read_committed(path: str | os.PathLike[str], sha256: str | None) -> bytes:
    """The bytes of path if they match the metadata's sha256 (or it names none), else of its intact backup."""
    return committed_file(path, sha256).read_bytes()


def committed_file(path: str | os.PathLike[str], sha256: str | None) -> Path:
    """path if its bytes match the metadata's sha256 (or it names none), else its intact backup (hashed as a
    stream: the file may be larger than memory should hold twice)."""
    target = Path(path)
    if sha256 is None or _sha256_file(target) == sha256:
        return target
    backup = _backup(target)
    if backup.exists() and _sha256_file(backup) == sha256:
        return backup
    raise IndexFormatError(
        f"{target} does not match the sha256 its metadata records and no intact {backup.name} exists; "
        "the file was modified or damaged: save it again"
    )


def recorded_sha256(meta_path: str | os.PathLike[str], key: str = "sha256") -> str | None:
    """The data hash a committed JSON metadata file records (None if it is missing, unreadable or has none)."""
    try:
        value = json.loads(Path(meta_path).read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
