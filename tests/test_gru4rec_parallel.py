"""GRU4Rec's official training scheme (`scheme="session-parallel"`): its optimiser, its lanes, its net, and that it
learns — offline, 1 thread, small."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_models_learn import markov_slice

from plugin import ConfigError
from plugin.models import get_model
from plugin.models.adagrad import AdagradMomentum
from plugin.models.data import Examples, augment
from plugin.models.evaluation import evaluate
from plugin.models.gru4rec import Lanes
from plugin.models.metrics import popularity_ranks, rank_metrics

torch.set_num_threads(1)

OFFICIAL = {"scheme": "session-parallel", "negatives": "sampled", "loss": "bpr-max", "elu_param": 1.0}


def test_adagrad_momentum_known_answer_dense():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = AdagradMomentum([p], lr=0.1, momentum=0.5, eps=1e-6)
    acc, mom, want = np.zeros(2), np.zeros(2), np.array([1.0, -2.0])
    for g in ([0.5, -1.0], [0.2, 0.4]):
        p.grad = torch.tensor(g)
        opt.step()
        acc += np.square(g)
        mom = 0.5 * mom + 0.1 * np.asarray(g) / np.sqrt(acc + 1e-6)
        want = want - mom
    np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-6)


def test_adagrad_momentum_sparse_updates_only_the_rows_it_read_and_sums_duplicates():
    torch.manual_seed(0)
    sparse = torch.nn.Embedding(6, 3, sparse=True)
    dense = torch.nn.Embedding(6, 3, sparse=False)
    dense.weight.data.copy_(sparse.weight.data)
    before = sparse.weight.detach().clone()
    opts = [AdagradMomentum(m.parameters(), lr=0.05, momentum=0.2) for m in (sparse, dense)]
    after_first = None
    for rows in ([1, 2, 2], [2, 4]):  # row 2 read twice in one step: its gradients are summed first
        for m, opt in zip((sparse, dense), opts):
            opt.zero_grad()
            m(torch.tensor(rows)).square().sum().backward()
            opt.step()
        if after_first is None:
            after_first = sparse.weight.detach().clone()
            torch.testing.assert_close(sparse.weight, dense.weight)  # one step: sparse and dense agree
    assert sparse.weight.grad is not None and sparse.weight.grad.is_sparse
    # rows read in the last step moved as the dense update moves them; row 1, not read then, kept its place
    # (its momentum waits, as in the official optimiser; the dense one moved it by momentum alone)
    torch.testing.assert_close(sparse.weight[[2, 4]], dense.weight[[2, 4]])
    torch.testing.assert_close(sparse.weight[1], after_first[1])
    assert not torch.equal(dense.weight[1], after_first[1])
    torch.testing.assert_close(sparse.weight[[0, 3, 5]], before[[0, 3, 5]])  # never read, never moved
    with pytest.raises(ConfigError):
        AdagradMomentum([torch.nn.Parameter(torch.zeros(1))], lr=0.0)


def _units(sessions: list[list[int]]) -> Examples:
    model = get_model("gru4rec", **OFFICIAL, dim=8, hidden=8, n_sample=4)
    model._start_fit(20, None)
    return model.training_units([np.asarray(s, dtype=np.int64) for s in sessions])


def test_lanes_give_every_pair_once_in_order_and_reset_at_each_session_start():
    sessions = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10, 11], [12, 13, 14], [15, 16]]
    lanes = Lanes(_units(sessions), batch_size=2)
    assert lanes.planned == sum(len(s) - 1 for s in sessions)
    owner = [0, 1]  # which session each lane reads
    following = 2
    seen: dict[int, list[tuple[int, int]]] = {i: [] for i in range(len(sessions))}
    while lanes.width:
        now, nxt = lanes.clicks()
        for lane, (a, b) in enumerate(zip(now.tolist(), nxt.tolist())):
            seen[owner[lane]].append((a, b))
        fresh, keep = lanes.advance()
        for lane in fresh.tolist():  # the lane's state goes back to zero: it starts the next session in order
            owner[lane] = following
            following += 1
            assert lanes.clicks()[0][lane] == sessions[owner[lane]][0]
        if keep is not None:
            owner = [owner[i] for i in keep.tolist()]
    for i, s in enumerate(sessions):
        assert seen[i] == list(zip(s[:-1], s[1:])), i


def _fit(sessions, n_items, **options):
    cut = int(0.9 * len(sessions))
    train, held = sessions[:cut], augment(sessions[cut:])
    model = get_model("gru4rec", **{**OFFICIAL, "dim": 48, "hidden": 48, "n_sample": 256, **options})
    config = type(model).default_train_config(
        lr=0.05, lr_decay=1.0, batch_size=64, epochs=3, patience=3, bf16=False, progress=False
    )
    report = model.fit(train, n_items, valid=held, train_config=config)
    return model, report, train, held


def test_session_parallel_gru4rec_learns_far_above_pop():
    sessions = markov_slice()
    model, report, train, held = _fit(sessions, 400, momentum=0.1)
    assert report["first_valid_beats_pop"] is True, report["warnings"]
    assert report["epochs"][0]["units"] == sum(s.size - 1 for s in train)  # every click once an epoch
    counts = np.bincount(np.concatenate(train), minlength=401)
    pop = rank_metrics(popularity_ranks(counts, held.targets), ks=(20,))
    got = evaluate(model, held, ks=(20,), beyond_accuracy=False, screen=False).metrics
    assert got["HR@20"] > 2 * pop["HR@20"] and got["MRR@20"] > 10 * pop["MRR@20"], (got, pop)


def test_session_parallel_model_saves_and_serves_through_an_inner_product(tmp_path):
    sessions = markov_slice(n_sessions=600)
    model, _, _, held = _fit(sessions, 400, loss="cross-entropy", elu_param=0.0)
    prefixes = held.batch(np.arange(20))[0]
    q, items = model.query_vectors(prefixes), model.item_vectors()  # (20, H+1), (N, H+1): the bias rides along
    np.testing.assert_allclose(q @ items.T, model.score(prefixes)[:, 1:], rtol=1e-4, atol=1e-4)
    model.save(tmp_path / "m")
    again = type(model).load(tmp_path / "m")
    np.testing.assert_array_equal(again.score(prefixes), model.score(prefixes))


@pytest.mark.parametrize(
    "options",
    [
        {"scheme": "session-parallel", "dim": 16, "hidden": 32, "negatives": "sampled"},
        {"scheme": "session-parallel", "dim": 16, "hidden": 16, "negatives": "all"},
        {"scheme": "session-parallel", "dim": 16, "hidden": 16, "negatives": "sampled", "layers": 2},
        {"scheme": "parallel"},
        {"momentum": 1.0},
    ],
)
def test_session_parallel_rejects_what_the_official_net_cannot_be(options):
    with pytest.raises(ConfigError):
        get_model("gru4rec", **options)


def test_session_parallel_refuses_weight_decay():
    sessions = markov_slice(n_sessions=200)
    model = get_model("gru4rec", **OFFICIAL, dim=8, hidden=8, n_sample=8)
    config = type(model).default_train_config(lr=0.05, weight_decay=1e-4, epochs=1, progress=False, bf16=False)
    with pytest.raises(ConfigError, match="weight decay"):
        model.fit(sessions, 400, train_config=config)


def test_session_parallel_honours_the_time_budget_and_on_epoch():
    sessions = markov_slice()  # ~220 steps an epoch of a few ms each; the budget is checked every 50 steps
    model = get_model("gru4rec", **OFFICIAL, dim=8, hidden=8, n_sample=8)
    config = type(model).default_train_config(lr=0.05, epochs=3, time_budget_s=0.05, progress=False, bf16=False)
    report = model.fit(sessions, 400, train_config=config)
    assert report["full_epochs"] == 0 and report["stopped"] == "time budget"
    assert report["epochs"][0]["complete"] is False  # what bench/retrain_full.py keeps no snapshot of
    assert "no full epoch was trained" in report["warnings"][0]
    seen = []
    config = type(model).default_train_config(lr=0.05, epochs=3, progress=False, bf16=False)
    report = model.fit(sessions[:300], 400, train_config=config, on_epoch=lambda rec: seen.append(rec.epoch) or True)
    assert seen == [1] and report["stopped"] == "on_epoch" and report["full_epochs"] == 1
    assert report["epochs"][0]["complete"] is True
