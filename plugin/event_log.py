"""An append-only JSONL log of session events, so logged sessions can later train the session model.

One JSON object per line. A crash can leave a torn last line: readers skip it (and count it), writers
start on a fresh line. Raw page text is not logged unless `log_text=True` (privacy by default).

Several processes (uvicorn workers) may share one log: every append and every erase holds an exclusive
`flock` on the sidecar `<log>.lock`, so an erase (read, filter, atomic rename) never drops a line another
process appended meanwhile. Readers need no lock: they see the old file or the new one, never a torn one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: the thread lock alone, so one writing process per log
    fcntl = None  # type: ignore[assignment]

from .atomic import atomic_write_with
from .events import Event

__all__ = ["EventLog"]

logger = logging.getLogger(__name__)


class EventLog:
    def __init__(self, path: str | os.PathLike[str], *, log_text: bool = False) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.log_text = log_text
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._mend_torn_tail()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads and every other process writing the log, one at a time. The lock file is
        opened per call: a descriptor inherited across fork would share its lock with the parent."""
        with self._lock:
            if fcntl is None:
                yield
                return
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the flock

    def _mend_torn_tail(self) -> None:
        with self._locked():
            if not self.path.exists() or self.path.stat().st_size == 0:
                return
            with open(self.path, "rb+") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")  # the torn record stays on its own line and is skipped by readers

    def append(self, event: Event) -> None:
        record = event.to_dict()
        if not self.log_text:
            record.pop("text", None)
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        # Opened under the lock: after another process's erase renamed a new file in, write to that one.
        with self._locked(), open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)

    def __iter__(self) -> Iterator[Event]:
        return self.iter_events()

    def iter_events(self) -> Iterator[Event]:
        """Every readable event, oldest first; torn or foreign lines are skipped with a warning."""
        if not self.path.exists():
            return
        skipped = 0
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield Event.from_dict(json.loads(line))
                except (ValueError, TypeError):
                    skipped += 1
        if skipped:
            logger.warning("skipped %d unreadable line(s) in %s", skipped, self.path)

    def erase_session(self, session_id: str) -> int:
        """Remove every logged event of the session (atomic rewrite); return how many were removed."""
        with self._locked():
            if not self.path.exists():
                return 0
            removed = 0
            kept: list[str] = []
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        sid = json.loads(line).get("session_id")
                    except (ValueError, AttributeError):
                        sid = None
                    if sid == session_id:
                        removed += 1
                    elif line.strip():
                        kept.append(line if line.endswith("\n") else line + "\n")

            def write(tmp: str) -> None:
                with open(tmp, "w", encoding="utf-8") as out:
                    out.writelines(kept)

            if removed:
                atomic_write_with(self.path, write)
            return removed
