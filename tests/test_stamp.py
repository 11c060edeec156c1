from __future__ import annotations

import numpy as np
import pytest
import torch

from plugin import STAMP, STAMPConfig
from plugin.encoder import l2_normalize
from plugin.errors import ConfigError, DimensionMismatchError
from plugin.intent import ContentSTAMP


def _batch(b=3, L=5, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = torch.randn(b, L, d, generator=g)
    lengths = torch.tensor([5, 3, 1])[:b]
    mask = torch.arange(L)[None, :] < lengths[:, None]
    return items, mask


@pytest.mark.parametrize("attention", ["additive", "similarity"])
def test_shapes_and_padding_invariance(attention):
    torch.manual_seed(0)
    model = STAMP(STAMPConfig(dim=8, attention=attention))
    items, mask = _batch()
    out = model(items, mask)
    assert out.query.shape == (3, 8)
    assert out.attention.shape == (3, 5)
    assert torch.all(out.attention[~mask] == 0)
    # changing what sits in the padding must not change anything
    noisy = items.clone()
    noisy[~mask] = 100.0
    out2 = model(noisy, mask)
    assert torch.allclose(out.query, out2.query, atol=1e-6)
    # a padded session equals the same session run alone, unpadded
    alone = model(items[1:2, :3], mask[1:2, :3])
    assert torch.allclose(alone.query, out.query[1:2], atol=1e-6)
    scores = STAMP.score(out.query, torch.randn(11, 8))
    assert scores.shape == (3, 11)


def test_rejects_bad_inputs():
    model = STAMP(STAMPConfig(dim=8))
    items, mask = _batch()
    with pytest.raises(DimensionMismatchError, match=r"\(batch, length, 8\)"):
        model(items[..., :4], mask)
    with pytest.raises(DimensionMismatchError):
        model(items, mask[:, :2])
    with pytest.raises(ValueError, match="at least one item"):
        model(items, torch.zeros_like(mask))
    with pytest.raises(ConfigError, match="Valid modes are: additive, similarity"):
        STAMPConfig(attention="dot")


def test_overfits_a_tiny_batch():
    """With item-ID embeddings and trilinear scoring, STAMP memorises 8 prefix -> next-item pairs."""
    torch.manual_seed(0)
    n_items, d = 20, 16
    emb = torch.nn.Embedding(n_items, d)
    model = STAMP(STAMPConfig(dim=d))
    prefixes = torch.randint(0, n_items, (8, 4))
    targets = torch.randint(0, n_items, (8,))
    mask = torch.ones(8, 4, dtype=torch.bool)
    opt = torch.optim.Adam([*model.parameters(), *emb.parameters()], lr=0.05)
    for _ in range(150):
        logits = STAMP.score(model(emb(prefixes), mask).query, emb.weight)
        loss = torch.nn.functional.cross_entropy(logits, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert (logits.argmax(1) == targets).all()


def test_zero_shot_is_attention_weighted_mean_favouring_the_last_click():
    rng = np.random.RandomState(0)
    topic = l2_normalize(rng.randn(16))
    near = l2_normalize(topic + 0.3 * rng.randn(3, 16))  # three pages on one topic
    far = l2_normalize(rng.randn(1, 16))  # one unrelated page, read first
    items = np.vstack([far, near])
    intent = ContentSTAMP.zero_shot(16).intent(items)
    assert intent.vector.shape == (16,)
    assert np.isclose(np.linalg.norm(intent.vector), 1.0, atol=1e-5)
    assert np.isclose(intent.attention.sum(), 1.0, atol=1e-5)
    assert intent.attention.argmax() == 3  # the last click
    assert intent.attention[0] == intent.attention.min()  # the off-topic page matters least
    assert float(intent.vector @ topic) > float(intent.vector @ far[0])


def test_content_stamp_save_load_roundtrip(tmp_path):
    torch.manual_seed(1)
    from plugin.intent import ContentSTAMPConfig

    model = ContentSTAMP(ContentSTAMPConfig(input_dim=12, stamp=STAMPConfig(dim=6))).eval()
    items = l2_normalize(np.random.RandomState(2).randn(4, 12))
    model.save(tmp_path)
    loaded = ContentSTAMP.load(tmp_path)
    np.testing.assert_allclose(model.intent(items).vector, loaded.intent(items).vector, atol=1e-6)
    with pytest.raises(DimensionMismatchError):
        loaded.intent(items[:, :5])


def test_zero_shot_closed_form_equals_the_module():
    """The numpy serving path of the zero-shot setting is the same maths as STAMP.zero_shot."""
    from plugin.stamp import zero_shot_query

    items = l2_normalize(np.random.RandomState(3).randn(6, 32))
    module = STAMP.zero_shot(32, temperature=2.0)
    out = module(torch.from_numpy(items)[None], torch.ones(1, 6, dtype=torch.bool))
    q, att = zero_shot_query(items, temperature=2.0)
    np.testing.assert_allclose(q, out.query[0].detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(att, out.attention[0].detach().numpy(), atol=1e-6)
    # and ContentSTAMP.zero_shot (which serves through it) agrees with its own torch forward
    cs = ContentSTAMP.zero_shot(32)
    q_torch, _ = cs(torch.from_numpy(items)[None], torch.ones(1, 6, dtype=torch.bool))
    expected = q_torch[0].detach().numpy()
    np.testing.assert_allclose(cs.intent(items).vector, expected / np.linalg.norm(expected), atol=1e-5)
