"""Session data for the session models: loaders, SR-GNN preprocessing, prefix augmentation, padding.

Three sources, one result (`SessionData`):

* an SR-GNN-format folder (``train_sessions.txt``, ``test_examples.tsv``; see ``../shared/data/README.md``);
* a raw click log (DIGINETICA ``session_id;user_id;item_id;timeframe;eventdate`` or a plain
  ``session,item,time`` CSV) run through the SR-GNN ``preprocess.py`` protocol (`srgnn_preprocess`);
* the plugin's own JSONL event log (``{"session_id", "kind", "article_id" | "url", "ts"}`` per line).

Items are integers 1..n_items; 0 is padding. ``item_keys[i]`` is the original id (string) of item i, so a
trained model can map article ids to its indices. Prefix examples are stored flat (CSR: ``items`` +
``offsets``) so 719k DIGINETICA prefixes cost a few MB and no Python objects.
"""

from __future__ import annotations

import calendar
import csv
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataFormatError
from ..event_log import click_sessions, parse_ts
from ..events import CLICK_KINDS

__all__ = [
    "Examples",
    "SessionData",
    "augment",
    "split_validation",
    "load_srgnn_folder",
    "read_diginetica_clicks",
    "read_click_csv",
    "read_jsonl_events",
    "srgnn_preprocess",
    "pad_left_aligned",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Examples:
    """Prefix -> next-item examples in CSR form: prefix j is ``items[offsets[j]:offsets[j+1]]`` (oldest first)."""

    items: np.ndarray  # (total,) int64 item ids >= 1
    offsets: np.ndarray  # (n+1,) int64
    targets: np.ndarray  # (n,) int64

    def __post_init__(self) -> None:
        if self.offsets.ndim != 1 or self.offsets.size != self.targets.size + 1:
            raise DataFormatError("Examples.offsets must have one more entry than targets")
        if self.targets.size and bool((np.diff(self.offsets) < 1).any()):
            raise DataFormatError("every example needs a non-empty prefix")

    def __len__(self) -> int:
        return int(self.targets.size)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)  # (n,)

    def prefix(self, j: int) -> np.ndarray:
        return self.items[self.offsets[j] : self.offsets[j + 1]]

    def subset(self, idx: np.ndarray) -> Examples:
        idx = np.asarray(idx, dtype=np.int64)
        lengths = self.lengths[idx]
        offsets = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = _ragged_gather(self.offsets[idx], lengths)
        return Examples(items=self.items[gather], offsets=offsets, targets=self.targets[idx])

    def batch(self, idx: np.ndarray, max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(B, L) left-aligned int64 prefixes padded with 0 (last ``max_len`` clicks kept), and targets (B,)."""
        idx = np.asarray(idx, dtype=np.int64)
        return pad_left_aligned(self.items, self.offsets[idx], self.offsets[idx + 1], max_len), self.targets[idx]


def _ragged_gather(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat indices of the ranges [start, start+len) concatenated."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    row_start = np.repeat(np.cumsum(lengths) - lengths, lengths)  # (total,)
    return np.repeat(starts, lengths) + (np.arange(total) - row_start)


def pad_left_aligned(flat: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int | None = None) -> np.ndarray:
    """Rows flat[start:end] (truncated to their last ``max_len``) into a (B, L) array, left-aligned, 0-padded."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if max_len is not None:
        starts = np.maximum(starts, ends - max_len)
    lengths = ends - starts  # (B,)
    width = int(lengths.max(initial=1))
    out = np.zeros((starts.size, width), dtype=np.int64)  # (B, L)
    rows = np.repeat(np.arange(starts.size), lengths)
    cols = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = flat[_ragged_gather(starts, lengths)]
    return out


@dataclass(frozen=True)
class SessionData:
    """Training sessions (date order), test examples, and the item id space 1..n_items."""

    train_sessions: tuple[np.ndarray, ...]
    test: Examples
    n_items: int
    item_keys: tuple[str, ...] | None = None  # item_keys[i-1] is the original id of item i, when known
    name: str = ""

    def __post_init__(self) -> None:
        if self.n_items < 1:
            raise DataFormatError("a dataset needs at least one item")
        if self.item_keys is not None and len(self.item_keys) != self.n_items:
            raise DataFormatError(f"item_keys has {len(self.item_keys)} entries for {self.n_items} items")

    def train_examples(self) -> Examples:
        return augment(self.train_sessions)

    def item_counts(self) -> np.ndarray:
        """(n_items+1,) click counts over the training sessions; index 0 (padding) is 0."""
        flat = np.concatenate(self.train_sessions) if self.train_sessions else np.zeros(0, dtype=np.int64)
        return np.bincount(flat, minlength=self.n_items + 1).astype(np.int64)


def augment(sessions: Sequence[np.ndarray]) -> Examples:
    """SR-GNN augmentation: [x1..xn] gives ([x1..x(n-i)], x(n-i+1)) for i = 1..n-1, longest prefix first."""
    items: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    for s in sessions:
        n = len(s)
        if n < 2:
            continue
        plen = np.arange(n - 1, 0, -1)  # (n-1,) longest first
        items.append(s[_ragged_gather(np.zeros(n - 1, dtype=np.int64), plen)])
        lengths.append(plen)
        targets.append(s[plen])
    if not targets:
        raise DataFormatError("no session has two or more clicks, so there is no prefix -> next-item example")
    lens = np.concatenate(lengths)
    offsets = np.zeros(lens.size + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    return Examples(items=np.concatenate(items).astype(np.int64), offsets=offsets, targets=np.concatenate(targets))


def split_validation(
    sessions: Sequence[np.ndarray], fraction: float = 0.1
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """(train, valid): the last ``fraction`` of the sessions by order (= by date in SR-GNN folders) is validation."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    n_valid = max(1, int(round(len(sessions) * fraction)))
    if n_valid >= len(sessions):
        raise ConfigError(f"{len(sessions)} sessions are too few to carve a validation split")
    cut = len(sessions) - n_valid
    return tuple(sessions[:cut]), tuple(sessions[cut:])


def _parse_int_line(line: str, path: Path, lineno: int) -> np.ndarray:
    try:
        return np.asarray([int(x) for x in line.split()], dtype=np.int64)
    except ValueError as exc:
        raise DataFormatError(f"{path}:{lineno}: expected space-separated integer item ids ({exc})") from exc


def load_srgnn_folder(directory: str | Path, n_items: int | None = None) -> SessionData:
    """Load ``train_sessions.txt`` and ``test_examples.tsv`` (``session_idx<TAB>prefix<TAB>target``).

    The id space is 1..max id seen in either file (YOOCHOOSE 1/64 uses ids up to 37,483 with 17,376 seen in
    training; SR-GNN ranks over the whole space) unless ``n_items`` or ``stats.json``'s ``max_item_id`` says more.
    """
    directory = Path(directory)
    train_path, test_path = directory / "train_sessions.txt", directory / "test_examples.tsv"
    for p in (train_path, test_path):
        if not p.is_file():
            raise DataFormatError(f"{directory} is not an SR-GNN-format folder: {p.name} is missing")
    with train_path.open() as f:
        sessions = tuple(_parse_int_line(line, train_path, i) for i, line in enumerate(f, 1) if line.strip())
    prefixes: list[np.ndarray] = []
    targets: list[int] = []
    with test_path.open() as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["session_idx", "prefix", "target"]:
            raise DataFormatError(f"{test_path}: expected header 'session_idx, prefix, target', got {header}")
        for lineno, line in enumerate(f, 2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                raise DataFormatError(f"{test_path}:{lineno}: expected 3 tab-separated columns, got {len(parts)}")
            prefixes.append(_parse_int_line(parts[1], test_path, lineno))
            try:
                targets.append(int(parts[2]))
            except ValueError as exc:
                raise DataFormatError(f"{test_path}:{lineno}: target {parts[2]!r} is not an item id") from exc
    lens = np.asarray([p.size for p in prefixes], dtype=np.int64)
    offsets = np.zeros(lens.size + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    test = Examples(
        items=np.concatenate(prefixes) if prefixes else np.zeros(0, dtype=np.int64),
        offsets=offsets,
        targets=np.asarray(targets, dtype=np.int64),
    )
    max_id = max(
        int(max((s.max() for s in sessions), default=0)),
        int(test.items.max(initial=0)),
        int(test.targets.max(initial=0)),
    )
    stats = directory / "stats.json"
    if stats.is_file():
        try:
            max_id = max(max_id, int(json.loads(stats.read_text()).get("max_item_id", 0)))
        except (ValueError, TypeError) as exc:
            raise DataFormatError(f"{stats}: not valid JSON ({exc})") from exc
    if n_items is not None:
        if n_items < max_id:
            raise ConfigError(f"n_items={n_items} is below the largest item id in {directory} ({max_id})")
        max_id = n_items
    if bool((test.items < 1).any()) or bool((test.targets < 1).any()) or any(bool((s < 1).any()) for s in sessions):
        raise DataFormatError(f"{directory}: item ids must be >= 1 (0 is padding)")
    return SessionData(train_sessions=sessions, test=test, n_items=max_id, name=directory.name)


# --- raw click logs and the SR-GNN preprocess.py protocol ---------------------------------------------------


@dataclass(frozen=True)
class Click:
    session: str
    item: str
    order: float  # within-session sort key (DIGINETICA timeframe, a timestamp)
    time: float  # seconds; the session's date is the time of its last row *as read*


def _read_csv_clicks(
    path: str | Path, need: set[str], delimiter: str, click: Callable[[dict[str, str]], Click]
) -> list[Click]:
    """Every row of a headed CSV as a Click; DataFormatError names the file when a column is missing or a value
    does not parse."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            if reader.fieldnames is None or not need <= set(reader.fieldnames):
                raise DataFormatError(f"{path}: expected columns {sorted(need)}, got {reader.fieldnames}")
            return [click(row) for row in reader]
    except ValueError as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise DataFormatError(f"{path}: {exc}") from exc


def read_diginetica_clicks(path: str | Path) -> list[Click]:
    """DIGINETICA ``train-item-views.csv``: ``session_id;user_id;item_id;timeframe;eventdate`` (``;``-separated)."""

    def click(row: dict[str, str]) -> Click:
        day = date.fromisoformat(row["eventdate"])
        return Click(
            row["session_id"], row["item_id"], float(row["timeframe"]), float(calendar.timegm(day.timetuple()))
        )

    return _read_csv_clicks(path, {"session_id", "item_id", "timeframe", "eventdate"}, ";", click)


def read_click_csv(
    path: str | Path,
    session_col: str = "session",
    item_col: str = "item",
    time_col: str = "time",
    delimiter: str = ",",
) -> list[Click]:
    """A plain click CSV with a header; time is epoch seconds or ISO-8601."""

    def click(row: dict[str, str]) -> Click:
        t = parse_ts(row[time_col])
        return Click(row[session_col], row[item_col], t, t)

    return _read_csv_clicks(path, {session_col, item_col, time_col}, delimiter, click)


def srgnn_preprocess(
    clicks: Iterable[Click],
    test_days: float = 7.0,
    min_item_support: int = 5,
    sort_within_session: bool = True,
    name: str = "",
) -> SessionData:
    """SR-GNN ``datasets/preprocess.py`` as read (see ``diginetica_srgnn/SOURCE.md``), on clicks in file order.

    1. group by session (sorted by ``order`` when ``sort_within_session``); session date = time of its last row read;
    2. drop length-1 sessions; 3. drop items with support < 5 (one pass), then sessions shorter than 2;
    4. test = dated after maxdate - test_days, train = dated before (a session exactly on the cut is in neither);
    5. sort by date (stable), renumber items 1..N by first appearance in training;
    6. test: drop unseen items, then sessions shorter than 2; 7. prefix augmentation of the test sessions.
    """
    sess_clicks: dict[str, list[tuple[str, float]]] = {}
    sess_date: dict[str, float] = {}
    for c in clicks:
        sess_clicks.setdefault(c.session, []).append((c.item, c.order))
        sess_date.pop(c.session, None)  # re-insert so dict order follows each session's last row, as in SR-GNN
        sess_date[c.session] = c.time
    seqs: dict[str, list[str]] = {}
    for s, cl in sess_clicks.items():
        if sort_within_session:
            cl = sorted(cl, key=lambda x: x[1])  # stable, as Python's sorted in preprocess.py
        seqs[s] = [i for i, _ in cl]
    seqs = {s: q for s, q in seqs.items() if len(q) > 1}
    counts: dict[str, int] = {}
    for q in seqs.values():
        for i in q:
            counts[i] = counts.get(i, 0) + 1
    kept: dict[str, list[str]] = {}
    for s, q in seqs.items():
        f = [i for i in q if counts[i] >= min_item_support]
        if len(f) >= 2:
            kept[s] = f
    dates = [(s, d) for s, d in sess_date.items() if s in kept]
    if not dates:
        raise DataFormatError("no session survives the SR-GNN filters (length >= 2, item support >= 5)")
    split = max(d for _, d in dates) - 86400.0 * test_days
    train_ids = sorted((x for x in dates if x[1] < split), key=lambda x: x[1])
    test_ids = sorted((x for x in dates if x[1] > split), key=lambda x: x[1])
    item_index: dict[str, int] = {}
    train: list[np.ndarray] = []
    for s, _ in train_ids:
        out = []
        for i in kept[s]:
            if i not in item_index:
                item_index[i] = len(item_index) + 1
            out.append(item_index[i])
        train.append(np.asarray(out, dtype=np.int64))
    test_sessions = []
    for s, _ in test_ids:
        out = [item_index[i] for i in kept[s] if i in item_index]
        if len(out) >= 2:
            test_sessions.append(np.asarray(out, dtype=np.int64))
    if not train or not test_sessions:
        raise DataFormatError(
            f"the SR-GNN split gives {len(train)} training and {len(test_sessions)} test sessions; need both non-empty"
        )
    keys = tuple(sorted(item_index, key=item_index.__getitem__))
    return SessionData(tuple(train), augment(test_sessions), len(item_index), keys, name)


# --- the plugin's JSONL event log ---------------------------------------------------------------------------


def read_jsonl_events(
    path: str | Path,
    kinds: Iterable[str] | None = None,
    test_fraction: float = 0.1,
    collapse_repeats: bool = True,
    name: str = "",
) -> SessionData:
    """Sessions from the plugin's event log (``event_log.click_sessions``, the reader every trainer shares): one
    JSON object a line with ``session_id``, ``kind``, ``ts`` and ``article_id`` or ``url`` (article_id wins).

    Events are ordered by ``ts`` within a session and sessions by their last event; the last ``test_fraction``
    of sessions is the test split. ``collapse_repeats`` merges back-to-back events on the same item (a
    ``page_view`` followed by ``article_open`` of the same article is one click). ``kinds`` keeps only those
    event kinds (default: the clicks, page_view, article_open and suggestion_click; an impression is not a
    click). Torn or foreign lines are skipped with a warning. Items are numbered by first appearance in training.
    """
    path = Path(path)
    logged = click_sessions(
        path,
        kinds=CLICK_KINDS if kinds is None else frozenset(kinds),
        url_items=True,
        collapse_repeats=collapse_repeats,
    )
    sessions = [(s.last_ts, list(s.items)) for s in logged]
    if len(sessions) < 2:
        raise DataFormatError(f"{path}: fewer than two sessions with two or more clicked items")
    n_test = max(1, int(round(len(sessions) * test_fraction)))
    train_raw, test_raw = sessions[:-n_test], sessions[-n_test:]
    item_index: dict[str, int] = {}
    train = []
    for _, keys in train_raw:
        train.append(np.asarray([item_index.setdefault(k, len(item_index) + 1) for k in keys], dtype=np.int64))
    test = [np.asarray([item_index[k] for k in keys if k in item_index], dtype=np.int64) for _, keys in test_raw]
    test = [s for s in test if s.size >= 2]
    if not test:
        test_examples = Examples(np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64))
    else:
        test_examples = augment(test)
    keys_sorted = tuple(sorted(item_index, key=item_index.__getitem__))
    logger.info(
        "%s: %d training sessions, %d test examples, %d items", path, len(train), len(test_examples), len(keys_sorted)
    )
    return SessionData(tuple(train), test_examples, len(keys_sorted), keys_sorted, name or path.stem)
