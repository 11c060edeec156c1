"""An append-only JSONL log of session events, so logged sessions can later train the session model.

One JSON object per line. A crash can leave a torn last line: readers skip it (and count it), writers
start on a fresh line. Raw page text is not logged unless `log_text=True` (privacy by default).

Urls are logged without their query string, fragment, path parameters (`;jsessionid=…`) and user info
(`https://user:pass@host`): the widget reports the page the visitor is on, and a page's url can carry a
credential of the site itself — a password-reset token, a signed download link, an OAuth code, a servlet session.
What training and reports need of a url is the page it names: the article id (kept) or its path.

The log never holds a session id: a session id is a bearer credential, and a log is read by analysts, copied
into backups and sometimes leaked. Each line's `session_id` is a pseudonym instead, `p-` + 32 hex characters of
HMAC-SHA256(key, session id): it groups one session's events for training and reports, and `erase_session`
finds them again, but it is not an id the API accepts. The key should be derived from the server secret
(`adapters.http.signing.log_pseudonym_keys`) so that every worker, and every restart, writes the same pseudonym
for a session; without one, a random key is drawn once and kept beside the log in `<log>.key` (mode 0600), which
every process sharing the log reads. Several keys may be given (key rotation): the first writes, all are tried
on erase.

`click_sessions` is the one reader every trainer uses (`python -m plugin train-intent`, the lab's
`data.read_jsonl_events`): what a visitor clicked, per session, in time order. Impressions are not clicks. A
session gives at most its last `MAX_CLICKS_PER_SESSION` clicks: a session is what one visitor's browser reports,
and one that replays 20,000 clicks A, B, A, B… was 20,000 of a log's training examples (every prefix is one)
and 10,000 A -> B transition counts; it now weighs no more than the session store lets a session hold.

Clicks are reported by the visitor's browser, so a script can report any (docs/security.md, round 3). Two rules keep
one scripted session from teaching more about an article than one visitor who read it: a `suggestion_click`
counts only when the same session reported an impression of that article before it (the widget reports the cards
it shows; a click of a card never shown is no visitor's click), and an article counts once per session, at its
first visit (a later revisit is dropped: the recommender never suggests what a session has read, so a revisit
teaches it nothing it can serve, and "A, T, B, T, C, T…" made one session 100 examples of T). `read_click_log`
says how many events each rule ignored; `python -m plugin train-intent` prints it. The API still stores such
events: only training ignores them.

Several processes (uvicorn workers) may share one log: every append and every erase holds an exclusive
`flock` on the sidecar `<log>.lock`, so an erase (read, filter, atomic rename) never drops a line another
process appended meanwhile. Readers need no lock: they see the old file or the new one, never a torn one.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: the thread lock alone, so one writing process per log
    fcntl = None  # type: ignore[assignment]

from .atomic import atomic_write_with
from .errors import ConfigError, DataFormatError, IndexFormatError, shown
from .events import CLICK_KINDS, Event
from .urls import logged_url

__all__ = [
    "EventLog",
    "PSEUDONYM_PREFIX",
    "LoggedSession",
    "ClickLog",
    "read_records",
    "read_click_log",
    "click_sessions",
    "parse_ts",
    "MAX_CLICKS_PER_SESSION",
]

logger = logging.getLogger(__name__)

PSEUDONYM_PREFIX = "p-"
# The most clicks one logged session gives a trainer: the events a live session holds by default
# (`SessionSettings.max_events`), so what one session can show the recommender is what it can teach the trainer.
MAX_CLICKS_PER_SESSION = 200
_PSEUDONYM_DOMAIN = b"session-suggest/log-pseudonym/v1"


class EventLog:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        log_text: bool = False,
        pseudonym_keys: Sequence[bytes | str] | bytes | str | None = None,
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.log_text = log_text
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._given: list[bytes] | None = None  # None: the key file, read when first needed (readers never need it)
        if pseudonym_keys is not None:
            keys = [pseudonym_keys] if isinstance(pseudonym_keys, (bytes, str)) else list(pseudonym_keys)
            self._given = [k.encode("utf-8") if isinstance(k, str) else bytes(k) for k in keys]
            if not self._given or any(len(k) < 16 for k in self._given):
                raise ConfigError(
                    "EventLog pseudonym keys must be at least 16 bytes each (derive them from the server secret)"
                )
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

    @property
    def _keys(self) -> list[bytes]:
        if self._given is None:
            self._given = [self._key_file()]
        return self._given

    def _key_file(self) -> bytes:
        """The log's own pseudonym key from `<log>.key`, drawn at random by the first process to need it."""
        key_path = self.path.with_name(self.path.name + ".key")
        with self._locked():
            try:
                key = key_path.read_bytes()
            except FileNotFoundError:
                key = secrets.token_bytes(32)
                fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(key)
                    fh.flush()
                    os.fsync(fh.fileno())
        if len(key) != 32:
            raise IndexFormatError(f"{key_path} is not a 32-byte pseudonym key; remove it only if the log is empty")
        return key

    def _mend_torn_tail(self) -> None:
        with self._locked():
            if not self.path.exists() or self.path.stat().st_size == 0:
                return
            with open(self.path, "rb+") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")  # the torn record stays on its own line and is skipped by readers

    def pseudonym(self, session_id: str, key: bytes | None = None) -> str:
        """What the log writes instead of this session id (with the first key unless another is given)."""
        mac = hmac.new(key or self._keys[0], _PSEUDONYM_DOMAIN + session_id.encode("utf-8"), hashlib.sha256)
        return PSEUDONYM_PREFIX + mac.hexdigest()[:32]

    def append(self, event: Event) -> None:
        record = event.to_dict()
        record["session_id"] = self.pseudonym(event.session_id)
        if not self.log_text:
            record.pop("text", None)
        if record.get("url"):
            record["url"] = logged_url(record["url"])
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        # Opened under the lock: after another process's erase renamed a new file in, write to that one. Created
        # 0600 like the key beside it (and like the file an erase renames in): the log holds what visitors searched
        # for, and `open(..., "a")` made it readable by every local user (0644 under the usual umask).
        with self._locked():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(line)

    def __iter__(self) -> Iterator[Event]:
        return self.iter_events()

    def iter_events(self) -> Iterator[Event]:
        """Every readable event, oldest first; torn or foreign lines are skipped with a warning."""
        skipped = 0
        for record in read_records(self.path):
            try:
                yield Event.from_dict(record)
            except (ValueError, TypeError):
                skipped += 1
        if skipped:
            logger.warning("skipped %d record(s) in %s that are not events", skipped, self.path)

    def erase_session(self, session_id: str) -> int:
        """Remove every logged event of the session (atomic rewrite); return how many were removed.
        Lines written under any of the keys go, and so do lines an older version wrote with the raw id."""
        names = {session_id, *(self.pseudonym(session_id, k) for k in self._keys)}
        with self._locked():
            if not self.path.exists():
                return 0
            removed = 0
            kept: list[str] = []
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        sid = json.loads(line).get("session_id")
                    except (ValueError, AttributeError, RecursionError):  # RecursionError: nested too deep
                        sid = None
                    if sid in names:
                        removed += 1
                    elif line.strip():
                        kept.append(line if line.endswith("\n") else line + "\n")

            def write(tmp: str) -> None:
                with open(tmp, "w", encoding="utf-8") as out:
                    out.writelines(kept)

            if removed:
                atomic_write_with(self.path, write)
            return removed


def read_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every JSON object of a JSONL log, in file order. A torn line (a crash mid-append) or any line that is
    not a JSON object is skipped and counted in one warning: a log is never lost to one bad line."""
    path = Path(path)
    if not path.exists():
        return
    skipped = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # RecursionError: arrays nested too deep for the decoder
                record = None
            if isinstance(record, dict):
                yield record
            else:
                skipped += 1
    if skipped:
        logger.warning("skipped %d unreadable line(s) in %s", skipped, path)


@dataclass(frozen=True)
class LoggedSession:
    session_id: str
    items: tuple[str, ...]  # clicked article ids (or urls), oldest first
    last_ts: float  # time of the session's last click


def parse_ts(value: Any) -> float:
    """Epoch seconds, or an ISO-8601 string (lab logs written by other tools)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                return float(calendar.timegm(dt.timetuple())) + dt.microsecond / 1e6
            return dt.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataFormatError(f"not a time: {shown(value)}")
    return float(value)


# Why `read_click_log` ignored an event, as its report names it.
UNSHOWN_CLICK = "suggestion_click of an article the session was not shown"
REVISIT = "revisit of an article the session had already read"


@dataclass(frozen=True)
class ClickLog:
    sessions: list[LoggedSession]  # ordered by their last click
    ignored: dict[str, int]  # reason (UNSHOWN_CLICK, REVISIT) -> events that reason kept out of training
    capped: int = 0  # sessions longer than max_length clicks, cut to their last max_length

    def describe(self) -> str:
        """One line for a training report: what was ignored and why (empty when nothing was)."""
        parts = [f"{n} {reason}" for reason, n in self.ignored.items() if n]
        if self.capped:
            parts.append(f"the earliest clicks of {self.capped} session(s) longer than a session holds")
        return "ignored: " + "; ".join(parts) if parts else ""


def click_sessions(
    source: str | os.PathLike[str] | EventLog | Iterable[Event | dict[str, Any]],
    *,
    kinds: Collection[str] = CLICK_KINDS,
    known: Collection[str] | None = None,
    url_items: bool = False,
    collapse_repeats: bool = True,
    min_length: int = 2,
    max_length: int | None = MAX_CLICKS_PER_SESSION,
) -> list[LoggedSession]:
    """What each logged session clicked, in time order; sessions ordered by their last click
    (`read_click_log(...).sessions`: see there)."""
    return read_click_log(
        source,
        kinds=kinds,
        known=known,
        url_items=url_items,
        collapse_repeats=collapse_repeats,
        min_length=min_length,
        max_length=max_length,
    ).sessions


def read_click_log(
    source: str | os.PathLike[str] | EventLog | Iterable[Event | dict[str, Any]],
    *,
    kinds: Collection[str] = CLICK_KINDS,
    known: Collection[str] | None = None,
    url_items: bool = False,
    collapse_repeats: bool = True,
    min_length: int = 2,
    max_length: int | None = MAX_CLICKS_PER_SESSION,
) -> ClickLog:
    """What each logged session clicked, in time order; sessions ordered by their last click; and what was ignored.

    `source`: a log path, an EventLog, or events/records already read. An item is the event's article id
    (`url_items`: else its url, for logs of pages outside any KB); `known` keeps only those items. Only
    `kinds` count (default page_view, article_open, suggestion_click: a suggestion_impression says what
    was shown, not what was read). `collapse_repeats` merges back-to-back events on one item (a
    suggestion_click and the page_view it leads to are one click). Records without a session id or with
    an unreadable time are skipped, like torn lines. A suggestion_click counts only after an impression of its
    article in the same session, and an article only at its first visit in a session (the module's docstring says
    why). A session longer than `max_length` clicks (after these rules) gives its last `max_length` (None: all),
    so that one visitor's flood of clicks cannot outweigh the log.
    """
    if max_length is not None and max_length < max(min_length, 1):
        raise ConfigError(f"max_length must be None or at least min_length ({min_length}), got {max_length}")
    if isinstance(source, EventLog):
        source = source.path
    records: Iterable[Event | dict[str, Any]] = (
        read_records(source) if isinstance(source, (str, os.PathLike)) else source
    )
    wanted = frozenset(kinds)
    # (ts, file order, item, is_shown): impressions are read whatever `kinds` says, as proof that a card was shown
    per: dict[str, list[tuple[float, int, str, bool, bool]]] = {}
    skipped = 0
    for n, r in enumerate(records):
        rec = r.to_dict() if isinstance(r, Event) else r
        kind = rec.get("kind")
        shown = kind == "suggestion_impression"
        if kind not in wanted and not shown:
            continue
        item = rec.get("article_id") or (rec.get("url") if url_items else None)
        sid = rec.get("session_id")
        if not item or sid is None:
            skipped += sid is None and not shown
            continue
        try:
            ts = parse_ts(rec.get("ts", 0.0))
        except ValueError:
            skipped += not shown
            continue
        if shown or known is None or item in known:
            per.setdefault(str(sid), []).append((ts, n, str(item), shown, kind == "suggestion_click"))
    if skipped:
        logger.warning("skipped %d click record(s) without a session id or a readable time", skipped)
    out = []
    capped = 0
    ignored = {UNSHOWN_CLICK: 0, REVISIT: 0}
    for sid, evs in per.items():
        evs.sort()
        seen_cards: set[str] = set()
        items: list[str] = []
        last_ts = None
        for ts, _, item, shown, click in evs:
            if shown:
                seen_cards.add(item)
                continue
            if click and item not in seen_cards:
                ignored[UNSHOWN_CLICK] += 1
                continue
            items.append(item)
            last_ts = ts
        if collapse_repeats:
            items = [a for j, a in enumerate(items) if j == 0 or a != items[j - 1]]
        read: set[str] = set()
        first_visits: list[str] = []
        for a in items:
            if a in read and a != first_visits[-1]:  # back-to-back repeats are collapse_repeats' to decide
                ignored[REVISIT] += 1
                continue
            read.add(a)
            first_visits.append(a)
        items = first_visits
        if max_length is not None and len(items) > max_length:
            capped += 1
            items = items[-max_length:]
        if len(items) >= min_length and last_ts is not None:
            out.append(LoggedSession(sid, tuple(items), last_ts))
    if capped:
        logger.warning("%d session(s) longer than %d clicks: only their last %d kept", capped, max_length, max_length)
    if ignored[UNSHOWN_CLICK]:
        logger.warning("ignored %d %s", ignored[UNSHOWN_CLICK], UNSHOWN_CLICK)
    out.sort(key=lambda s: s.last_ts)
    return ClickLog(out, ignored, capped)
