from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from models_fixtures import N_ITEMS, sessions, valid_examples  # noqa: F401  (fixtures)

from plugin.errors import ConfigError, DimensionMismatchError
from plugin.models import get_model, load_model
from plugin.models.data import augment
from plugin.models.evaluation import evaluate
from plugin.models.srgnn import session_graphs
from plugin.models.training import TrainConfig

torch.set_num_threads(1)

NEURAL = ("stamp", "gru4rec", "srgnn", "core")
_SAMPLED = {"dim": 16, "hidden": 16, "negatives": "sampled", "n_sample": 6}
SMALL = {
    "stamp": {"dim": 16},
    "gru4rec": {"dim": 16, "hidden": 16},
    "srgnn": {"dim": 16},
    "core": {"dim": 16, "inner": 32},
    "core-ave": {"dim": 16, "encoder": "ave"},
    "gru4rec-bpr-max": {**_SAMPLED, "loss": "bpr-max", "elu_param": 1.0, "bpreg": 0.5},
    "gru4rec-sampled-ce": {**_SAMPLED, "logq": 1.0},
}
VARIANTS = (*NEURAL, "core-ave", "gru4rec-bpr-max", "gru4rec-sampled-ce")
QUICK = TrainConfig(epochs=1, batch_size=64, lr=1e-2, progress=False, bf16=False)


def _model(variant: str):
    return get_model(variant.split("-")[0], **SMALL[variant])


def _fitted(variant: str, sessions, **train):  # noqa: F811
    m = _model(variant)
    m.fit(sessions, N_ITEMS, train_config=TrainConfig(**{**QUICK.__dict__, **train}))
    return m


@pytest.mark.parametrize("name", VARIANTS)
def test_overfits_one_tiny_batch(name: str, sessions) -> None:  # noqa: F811
    torch.manual_seed(0)
    m = _model(name)
    m._start_fit(N_ITEMS, None)
    m.net = m.build_net()
    units = m.training_units(sessions[:8])
    idx = np.arange(len(units))
    opt = torch.optim.Adam(m.net.parameters(), lr=3e-2)
    first = None
    for _ in range(150):
        loss = m.batch_loss(units, idx, None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    assert float(loss.detach()) < 0.35 * first, (first, float(loss.detach()))


def test_early_stopping_restores_the_best_epoch(sessions, valid_examples) -> None:  # noqa: F811
    m = get_model("stamp", dim=16)
    rep = m.fit(
        sessions,
        N_ITEMS,
        valid=valid_examples,
        train_config=TrainConfig(epochs=4, batch_size=64, lr=1e-2, patience=0, progress=False, bf16=False),
    )
    assert 1 <= rep["best_epoch"] <= len(rep["epochs"])
    best = rep["epochs"][rep["best_epoch"] - 1]["valid"]
    again = evaluate(m, valid_examples, ks=(10, 20), beyond_accuracy=False).metrics
    assert again["MRR@20"] == pytest.approx(best["MRR@20"])


def test_hybrid_stamp_uses_the_content_matrix(sessions, tmp_path: Path) -> None:  # noqa: F811
    rng = np.random.default_rng(0)
    content = rng.normal(size=(N_ITEMS, 8)).astype(np.float32)
    m = get_model("stamp", dim=16, mode="hybrid")
    with pytest.raises(DimensionMismatchError):
        m.fit(sessions, N_ITEMS, train_config=QUICK, content=content[:5])
    m.fit(sessions, N_ITEMS, train_config=QUICK, content=content)
    net = m.net
    expected = net.emb.weight[1:] + net.proj(torch.from_numpy(content))
    np.testing.assert_allclose(m.item_vectors(), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    m.save(tmp_path)
    np.testing.assert_array_equal(load_model(tmp_path).item_vectors(), m.item_vectors())


def test_srgnn_session_graph_known_answer() -> None:
    alias, a_in, a_out = session_graphs(torch.tensor([[1, 2, 1, 3, 0]]))
    assert alias[0, :4].tolist() == [0, 1, 0, 3]
    # edges over slots: 0->1, 1->0, 0->3 (slot 0 = item 1, slot 1 = item 2, slot 3 = item 3)
    expected_out = torch.zeros(5, 5)
    expected_out[0, 1] = expected_out[0, 3] = 0.5
    expected_out[1, 0] = 1.0
    torch.testing.assert_close(a_out[0], expected_out)
    expected_in = torch.zeros(5, 5)  # a_in[v, u] = edge u->v / in-degree(v)
    expected_in[1, 0] = expected_in[0, 1] = expected_in[3, 0] = 1.0
    torch.testing.assert_close(a_in[0], expected_in)


def test_core_last_clicks_keeps_each_rows_newest_clicks_left_aligned() -> None:
    from plugin.models.core import last_clicks

    prefixes = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0], [8, 9, 10, 0, 0]])
    assert last_clicks(prefixes, 3).tolist() == [[3, 4, 5], [6, 7, 0], [8, 9, 10]]
    assert last_clicks(prefixes, 5) is prefixes


def test_core_scores_are_cosines_over_the_temperature_and_longer_sessions_see_their_last_clicks(sessions) -> None:  # noqa: F811
    # The consistent space: a query is a unit vector, the served item vectors are unit vectors / tau, so a score
    # is a cosine / tau (FAISS inner product ranks exactly like the model), and a click before the encoder's
    # window changes nothing.
    m = get_model("core", dim=16, inner=32, max_len=3, temperature=0.1)
    m.fit(sessions[:40], N_ITEMS, train_config=QUICK)
    items = m.item_vectors()  # (N, 16)
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 10.0, rtol=1e-5)
    prefix = np.array([[3, 4, 5, 6], [9, 4, 5, 6], [4, 5, 6, 0]])
    q = m.query_vectors(prefix)  # (3, 16)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(q[0], q[1], atol=1e-6)  # only the first click differs, outside the window of 3
    np.testing.assert_allclose(q[0], q[2], atol=1e-6)  # the same last three clicks
    np.testing.assert_allclose(m.score(prefix)[:, 1:], q @ items.T, rtol=1e-4, atol=1e-4)


def test_plugin_stamp_module_reproduces_the_trained_models_query(sessions) -> None:  # noqa: F811
    # The lab trains the same maths the plugin serves: its STAMP weights, loaded into plugin.stamp.STAMP and
    # run over the prefix's item vectors, give the model's own query vectors.
    from plugin.stamp import STAMP, STAMPConfig

    m = get_model("stamp", dim=16)
    m.fit(sessions[:20], N_ITEMS, train_config=QUICK)
    served = STAMP(STAMPConfig(dim=16))
    served.load_state_dict(m.net.stamp.state_dict())
    prefix = np.array([[3, 4, 5, 0], [12, 0, 0, 0]])
    items = torch.from_numpy(np.vstack([np.zeros((1, 16), np.float32), m.item_vectors()])[prefix])  # (2, 4, 16)
    with torch.no_grad():
        query = served(items, torch.from_numpy(prefix > 0)).query  # (2, 16)
    np.testing.assert_allclose(query.numpy(), m.query_vectors(prefix), rtol=1e-5, atol=1e-6)


def test_saved_stamp_serves_through_a_faiss_inner_product_index(sessions, tmp_path: Path) -> None:  # noqa: F811
    faiss = pytest.importorskip("faiss")
    faiss.omp_set_num_threads(1)
    m = get_model("stamp", dim=16)
    m.fit(sessions, N_ITEMS, item_keys=[f"a{i}" for i in range(1, N_ITEMS + 1)], train_config=QUICK)
    m.save(tmp_path)
    served = load_model(tmp_path)
    index = faiss.IndexFlatIP(16)
    index.add(np.ascontiguousarray(served.item_vectors()))
    prefix = np.array([[served.index_of("a2"), served.index_of("a3")]])
    _, rows = index.search(np.ascontiguousarray(served.query_vectors(prefix)), 5)
    expected = np.argsort(-m.score(prefix)[0])[:5]  # item indices (column = item id)
    assert (rows[0] + 1).tolist() == expected.tolist()  # row j of item_vectors is item j+1
    assert served.item_keys[rows[0][0]] == f"a{expected[0]}"


@pytest.mark.parametrize("bf16", [False, True])
def test_fused_full_softmax_loss_matches_cross_entropy(bf16: bool) -> None:
    from torch.nn import functional as F

    from plugin.models._neural import full_softmax_loss

    g = torch.Generator().manual_seed(0)
    q = torch.randn(6, 8, generator=g, requires_grad=True)
    table = torch.randn(12, 8, generator=g, requires_grad=True)
    t = torch.tensor([1, 3, 3, 11, 5, 2])
    logits = q @ table.t()
    ref = F.cross_entropy(logits.masked_fill(torch.arange(12) == 0, float("-inf")), t)
    gq, gt = torch.autograd.grad(ref, (q, table))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = full_softmax_loss(q, table, t)
    fq, ft = torch.autograd.grad(loss, (q, table))
    tol = 3e-2 if bf16 else 1e-5
    torch.testing.assert_close(loss.detach(), ref.detach(), rtol=tol, atol=tol)
    torch.testing.assert_close(fq, gq, rtol=tol, atol=tol)
    torch.testing.assert_close(ft, gt, rtol=tol, atol=tol)
    assert float(ft[0].abs().sum()) == 0.0  # padding row gets no gradient


@pytest.mark.parametrize("bf16", [False, True])
def test_softmax_workspace_is_reused_and_never_shared_by_two_live_losses(bf16: bool) -> None:
    from torch.nn import functional as F

    from plugin.models._neural import SoftmaxWorkspace, full_softmax_loss

    g = torch.Generator().manual_seed(1)
    table = torch.randn(12, 8, generator=g, requires_grad=True)
    qs = [torch.randn(6, 8, generator=g, requires_grad=True) for _ in range(2)]
    ts = [torch.tensor([1, 3, 3, 11, 5, 2]), torch.tensor([4, 4, 7, 1, 9, 10])]
    ws = SoftmaxWorkspace()
    tol = 3e-2 if bf16 else 1e-5
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        with torch.no_grad():  # no backward will come: the buffer must be given back at once
            full_softmax_loss(qs[0], table, ts[0], ws)
        losses = [full_softmax_loss(q, table, t, ws) for q, t in zip(qs, ts)]  # both alive before backward
    got = torch.autograd.grad(losses[0] + losses[1], (qs[0], qs[1], table))
    mask = torch.arange(12) == 0
    ref = sum(F.cross_entropy((q @ table.t()).masked_fill(mask, float("-inf")), t) for q, t in zip(qs, ts))
    want = torch.autograd.grad(ref, (qs[0], qs[1], table))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    buf = ws._buf
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = full_softmax_loss(qs[0], table, ts[0], ws)
    loss.backward()
    assert ws._buf is buf  # the same memory serves the next step


def test_bpr_max_loss_known_answer() -> None:
    from plugin.models.gru4rec import bpr_max_loss

    scores = torch.tensor([[2.0, 0.0, 1.0, 5.0]])
    negative = torch.tensor([[False, True, True, False]])  # column 3 is a copy of the target: not a negative
    w = torch.softmax(torch.tensor([0.0, 1.0]), 0)
    hit = w[0] * torch.sigmoid(torch.tensor(2.0)) + w[1] * torch.sigmoid(torch.tensor(1.0))
    want = -torch.log(hit) + 0.5 * (w[0] * 0.0 + w[1] * 1.0)
    got = bpr_max_loss(scores, torch.tensor([0]), negative, bpreg=0.5)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    "options", [{"loss": "bpr-max"}, {"loss": "top1"}, {"negatives": "some"}, {"negatives": "sampled", "n_sample": -1}]
)
def test_gru4rec_rejects_bad_loss_options(options) -> None:
    from plugin.errors import ConfigError

    with pytest.raises(ConfigError):
        get_model("gru4rec", **options)


def test_batch_order_visits_every_unit_once_with_similar_lengths_per_batch() -> None:
    from plugin.models.training import batch_order

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=5000)
    for bucket in (0, 8):
        batches = batch_order(lengths, 32, np.random.default_rng(1), bucket)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(5000))
        assert all(1 <= b.size <= 32 for b in batches)
    plain = batch_order(lengths, 32, np.random.default_rng(1), 0)
    bucketed = batch_order(lengths, 32, np.random.default_rng(1), 8)
    spread = lambda bs: np.mean([lengths[b].max() - lengths[b].min() for b in bs])  # noqa: E731
    assert spread(bucketed) < 0.25 * spread(plain)  # far less padding
    assert len({int(b[0]) for b in bucketed[:10]}) == 10  # batches still come in random order


def test_interrupt_keeps_the_best_validated_epoch(sessions, valid_examples) -> None:  # noqa: F811
    m = get_model("stamp", dim=16)
    cfg = TrainConfig(epochs=5, batch_size=64, lr=1e-2, patience=5, progress=False, bf16=False)
    original = type(m).batch_loss
    calls = {"n": 0}
    per_epoch = -(-len(augment(sessions)) // 64)

    def interrupting(self, units, idx, max_len):
        calls["n"] += 1
        if calls["n"] == per_epoch + 3:  # a few batches into epoch 2
            raise KeyboardInterrupt
        return original(self, units, idx, max_len)

    m.batch_loss = interrupting.__get__(m)
    rep = m.fit(sessions, N_ITEMS, valid=valid_examples, train_config=cfg)
    assert rep["stopped"] == "interrupted" and rep["best_epoch"] == 1 and len(rep["epochs"]) == 1
    again = evaluate(m, valid_examples, ks=(10, 20), beyond_accuracy=False).metrics
    assert again["MRR@20"] == pytest.approx(rep["epochs"][0]["valid"]["MRR@20"])  # epoch 1's weights, restored


@pytest.mark.parametrize("name", NEURAL)
def test_every_neural_fit_reports_epochs_and_stops_when_on_epoch_says(name: str, sessions) -> None:  # noqa: F811
    # bench/retrain_full.py snapshots each epoch through on_epoch; STAMP's fit once did not accept it
    seen: list[int] = []

    def on_epoch(rec) -> bool:
        seen.append(rec.epoch)
        return rec.epoch == 2

    rep = _model(name).fit(
        sessions[:40], N_ITEMS, train_config=TrainConfig(**{**QUICK.__dict__, "epochs": 5}), on_epoch=on_epoch
    )
    assert seen == [1, 2] and rep["stopped"] == "on_epoch"


def test_srgnn_gated_step_is_the_official_cell() -> None:
    """SR-GNN's GNNCell as the official code writes it (CRIPAC-DIG/SR-GNN pytorch_code/model.py), with this net's
    weights: the node biases b_iah / b_oah are added after the adjacency product, so a node without in-edges (the
    first click) still gets b_iah."""
    from plugin.models.srgnn import SRGNN, SRGNNConfig

    torch.manual_seed(0)
    m = SRGNN(SRGNNConfig(dim=8))
    m.n_items = 5
    net = m.build_net()
    prefixes = torch.tensor([[1, 2, 3, 2, 0], [4, 4, 5, 0, 0]])
    _, a_in, a_out = session_graphs(prefixes)
    h = net.item_table()[prefixes]  # (B, L, d)
    A = torch.cat([a_in, a_out], dim=2)  # the official (B, n, 2n) adjacency
    n = A.shape[1]
    input_in = torch.matmul(A[:, :, :n], net.edge_in(h)) + net.node_in_bias
    input_out = torch.matmul(A[:, :, n : 2 * n], net.edge_out(h)) + net.node_out_bias
    gi = torch.nn.functional.linear(torch.cat([input_in, input_out], 2), net.gate_input.weight, net.gate_input.bias)
    gh = torch.nn.functional.linear(h, net.gate_hidden.weight, net.gate_hidden.bias)
    i_r, i_i, i_n = gi.chunk(3, 2)
    h_r, h_i, h_n = gh.chunk(3, 2)
    resetgate, inputgate = torch.sigmoid(i_r + h_r), torch.sigmoid(i_i + h_i)
    newgate = torch.tanh(i_n + resetgate * h_n)
    official = newgate + inputgate * (h - newgate)
    torch.testing.assert_close(net._ggnn_step(h, a_in, a_out), official)
    assert a_in[0, 0].abs().sum() == 0 and net.node_in_bias.abs().sum() > 0  # the first click: bias only


def test_srgnn_saved_before_the_node_biases_loads_as_the_same_model(sessions, tmp_path: Path) -> None:  # noqa: F811
    m = _fitted("srgnn", sessions)
    with torch.no_grad():  # the older net had no node biases: the same net with them at zero
        m.net.node_in_bias.zero_()
        m.net.node_out_bias.zero_()
    prefixes = np.array([[1, 2, 3, 0], [4, 5, 0, 0]])
    before = m.score(prefixes)
    full = m.state_arrays()
    older = {k: v for k, v in full.items() if "node_" not in k}  # what the older code saved
    assert len(older) == len(full) - 2
    m.state_arrays = lambda: older  # type: ignore[method-assign]
    m.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.score(prefixes), before, rtol=1e-6, atol=1e-6)


def test_lr_schedule_first_decay_may_come_earlier_than_the_rest() -> None:
    from plugin.models.training import lr_schedule

    def lrs(**cfg) -> list[float]:
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.Adam([p], lr=1e-3)
        sched = lr_schedule(opt, TrainConfig(lr=1e-3, lr_decay=0.1, **cfg))
        out = []
        for _ in range(8):  # the trainer steps the schedule after each epoch
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    # SR-GNN's official code steps StepLR(3) at the start of each epoch: 2 epochs at 1e-3, then 3 at each rate
    np.testing.assert_allclose(lrs(lr_decay_every=3, lr_decay_first=2), [1e-3] * 2 + [1e-4] * 3 + [1e-5] * 3)
    np.testing.assert_allclose(lrs(lr_decay_every=3), [1e-3] * 3 + [1e-4] * 3 + [1e-5] * 2)  # plain StepLR
    with pytest.raises(ConfigError):
        TrainConfig(lr_decay_first=0)
