from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from plugin.errors import DataFormatError, DimensionMismatchError
from plugin.models.metrics import coverage, pessimistic_ranks, popularity_bias, rank_metrics, read_rank_tsv

torch.set_num_threads(1)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

FIXTURE = (
    "log_id\tsession_id\titems\tranks\n"
    "0\t7\t10 11 12\t1 25\n"  # ranks 1 and 25
    "1\t8\t13 13\t4\n"  # rank 4
    "2\t9\t14 15 16 17\t20 2 21\n"  # ranks 20, 2, 21
)


def test_rank_tsv_fixture_gives_hand_computed_metrics(tmp_path: Path) -> None:
    p = tmp_path / "ranks.tsv"
    p.write_text(FIXTURE)
    rf = read_rank_tsv(p)
    assert rf.session_ids == ("7", "8", "9")
    np.testing.assert_array_equal(rf.ranks, [1, 25, 4, 20, 2, 21])
    m = rank_metrics(rf.ranks, ks=(5, 20))
    # ranks <= 20: 1, 4, 20, 2 -> 4 of 6; MRR@20 = (1 + 1/4 + 1/20 + 1/2) / 6
    assert m["HR@20"] == pytest.approx(4 / 6)
    assert m["P@20"] == m["HR@20"]
    assert m["MRR@20"] == pytest.approx((1 + 0.25 + 0.05 + 0.5) / 6)
    assert m["HR@5"] == pytest.approx(3 / 6)
    assert m["MRR@5"] == pytest.approx((1 + 0.25 + 0.5) / 6)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / np.log2(5) + 1 / np.log2(3)) / 6)


def test_rank_tsv_rejects_wrong_rank_count(tmp_path: Path) -> None:
    p = tmp_path / "bad.tsv"
    p.write_text("log_id\tsession_id\titems\tranks\n0\t1\t1 2 3\t5\n")
    with pytest.raises(DataFormatError, match="needs 2 ranks"):
        read_rank_tsv(p)


def test_pessimistic_ranks_count_ties_against_the_target() -> None:
    scores = torch.tensor([[float("-inf"), 0.5, 0.9, 0.5, 0.1], [float("-inf"), 3.0, 2.0, 1.0, 0.0]])
    ranks = pessimistic_ranks(scores, torch.tensor([1, 1]))
    # row 0: one item higher (0.9), one tie (item 3) -> rank 3; row 1: top -> rank 1
    assert ranks.tolist() == [3, 1]
    with pytest.raises(DimensionMismatchError):
        pessimistic_ranks(scores, torch.tensor([1]))


def test_coverage_and_popularity_bias() -> None:
    top = np.array([[1, 2], [2, 3]])
    assert coverage(top, n_items=6) == pytest.approx(3 / 6)
    counts = np.array([0, 10, 5, 5, 0, 0, 0])
    assert popularity_bias(top, counts) == pytest.approx((1.0 + 0.5 + 0.5 + 0.5) / 4)


@pytest.mark.skipif(not (DATA / "stamp_reference_ranks").is_dir(), reason="../shared/data is not present")
@pytest.mark.parametrize(
    ("name", "hr", "mrr"),
    [("rsc15_64", 0.687484, 0.296793), ("rsc15_4", 0.704444, 0.300045), ("cikm16", 0.620395, 0.273871)],
)
def test_stamp_reference_ranks_reproduce_six_decimals(name: str, hr: float, mrr: float) -> None:
    m = rank_metrics(read_rank_tsv(DATA / "stamp_reference_ranks" / f"{name}_stamp_ranks.tsv").ranks, ks=(20,))
    assert round(m["P@20"], 6) == hr
    assert round(m["MRR@20"], 6) == mrr
