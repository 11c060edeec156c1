from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from plugin.errors import ConfigError, DataFormatError
from plugin.models.data import (
    Click,
    augment,
    load_srgnn_folder,
    pad_left_aligned,
    read_diginetica_clicks,
    read_jsonl_events,
    split_validation,
    srgnn_preprocess,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_augment_is_longest_prefix_first() -> None:
    ex = augment([np.array([5, 6, 7, 8]), np.array([1]), np.array([2, 3])])
    assert len(ex) == 4
    assert [ex.prefix(j).tolist() for j in range(4)] == [[5, 6, 7], [5, 6], [5], [2]]
    assert ex.targets.tolist() == [8, 7, 6, 3]
    sub = ex.subset(np.array([3, 0]))
    assert [sub.prefix(j).tolist() for j in range(2)] == [[2], [5, 6, 7]]


def test_batch_pads_left_aligned_and_truncates_to_the_last_clicks() -> None:
    ex = augment([np.array([5, 6, 7, 8]), np.array([2, 3])])
    x, y = ex.batch(np.array([0, 3]))
    assert x.tolist() == [[5, 6, 7], [2, 0, 0]]
    assert y.tolist() == [8, 3]
    x, _ = ex.batch(np.array([0, 3]), max_len=2)
    assert x.tolist() == [[6, 7], [2, 0]]
    flat = np.array([1, 2, 3])
    assert pad_left_aligned(flat, np.array([0]), np.array([3])).tolist() == [[1, 2, 3]]


def test_validation_is_the_last_tenth_by_order() -> None:
    sessions = [np.array([i, i + 1]) for i in range(1, 21)]
    tr, va = split_validation(sessions, 0.1)
    assert len(tr) == 18 and len(va) == 2
    assert va[0].tolist() == [19, 20]
    with pytest.raises(ConfigError):
        split_validation(sessions, 1.5)


def _clicks(rows: list[tuple[str, str, float, float]]) -> list[Click]:
    return [Click(*r) for r in rows]


def test_srgnn_preprocess_protocol_on_a_toy_log() -> None:
    day = 86400.0
    rows = []
    # 6 training sessions on day 0..5 using items a,b (support >= 5); session s0 clicks out of order
    for k in range(6):
        rows += [(f"s{k}", "b", 2, k * day), (f"s{k}", "a", 1, k * day)]
    rows += [("lone", "a", 1, 0.0)]  # length-1 session: dropped
    rows += [("rare", "a", 1, 0.0), ("rare", "z", 2, 0.0)]  # z has support 1: session left with 1 click, dropped
    rows += [("t1", "a", 1, 20 * day), ("t1", "b", 2, 20 * day), ("t1", "a", 3, 20 * day)]
    d = srgnn_preprocess(_clicks(rows), test_days=7)
    assert d.n_items == 2 and d.item_keys == ("a", "b")  # a first: sorted by timeframe within the session
    assert len(d.train_sessions) == 6 and d.train_sessions[0].tolist() == [1, 2]
    assert [d.test.prefix(j).tolist() for j in range(len(d.test))] == [[1, 2], [1]]
    assert d.test.targets.tolist() == [1, 2]


@pytest.mark.skipif(not (DATA / "diginetica_sample_srgnn").is_dir(), reason="../shared/data is not present")
def test_srgnn_preprocess_matches_the_documented_counts_on_the_diginetica_sample() -> None:
    d = srgnn_preprocess(read_diginetica_clicks(DATA / "diginetica_sample_srgnn" / "sample_train-item-views.csv"))
    assert len(d.train_sessions) == 469
    assert len(d.train_examples()) == 1205
    assert d.n_items == 309
    assert len(d.test) == 99
    assert int((d.test.lengths == 1).sum()) == 39  # one length-1 prefix per test session


def test_srgnn_folder_loader(tmp_path: Path) -> None:
    (tmp_path / "train_sessions.txt").write_text("1 2\n3 4 5\n")
    (tmp_path / "test_examples.tsv").write_text("session_idx\tprefix\ttarget\n0\t1 2\t6\n0\t1\t2\n")
    d = load_srgnn_folder(tmp_path)
    assert d.n_items == 6 and len(d.train_sessions) == 2 and len(d.test) == 2
    assert d.item_counts().tolist() == [0, 1, 1, 1, 1, 1, 0]
    (tmp_path / "test_examples.tsv").write_text("bad header\n")
    with pytest.raises(DataFormatError, match="header"):
        load_srgnn_folder(tmp_path)


def test_jsonl_events_accept_article_id_and_url(tmp_path: Path) -> None:
    events = [
        {"session_id": "A", "kind": "page_view", "url": "/x", "ts": 1},
        {"session_id": "A", "kind": "article_open", "article_id": "y", "ts": 2},
        {"session_id": "A", "kind": "article_open", "article_id": "y", "ts": 3},  # repeat: collapsed
        {"session_id": "A", "kind": "search", "ts": 4},  # no item: ignored
        {"session_id": "B", "kind": "page_view", "url": "/x", "ts": 10},
        {"session_id": "B", "kind": "page_view", "article_id": "y", "url": "/ignored", "ts": 11},
    ]
    p = tmp_path / "events.jsonl"
    p.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    d = read_jsonl_events(p, test_fraction=0.5)
    assert d.item_keys == ("/x", "y")
    assert [s.tolist() for s in d.train_sessions] == [[1, 2]]
    assert d.test.targets.tolist() == [2]
    p.write_text("{not json\n")
    with pytest.raises(DataFormatError):
        read_jsonl_events(p)


@pytest.mark.skipif(not (DATA / "diginetica_srgnn").is_dir(), reason="../shared/data is not present")
def test_real_diginetica_folder_counts() -> None:
    d = load_srgnn_folder(DATA / "diginetica_srgnn")
    assert (len(d.train_sessions), len(d.train_examples()), d.n_items, len(d.test)) == (186670, 719470, 43097, 60858)
