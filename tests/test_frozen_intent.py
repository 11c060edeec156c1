"""A trained content STAMP served in numpy (`plugin.frozen_intent`): the same intent as the torch module for every
configuration it has, saved beside the state_dict and loaded by an index folder without importing torch, folders
saved before the numpy weights still loading through torch, and a config or archive edited to absurd sizes refused
before anything is allocated."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tracemalloc
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from plugin import Article, HashingEncoder, SessionRecommender, SuggestSettings
from plugin.errors import IndexFormatError
from plugin.frozen_intent import FrozenContentSTAMP, load_intent_model, write_weights
from plugin.intent import ContentSTAMP, ContentSTAMPConfig, STAMPConfig
from plugin.persistence import is_trained
from plugin.transitions import ItemTransitions, TransitionConfig

REPO = Path(__file__).resolve().parents[1]
D = 12
KEYS = ("a", "b", "c", "d")
CATALOGUE = (*KEYS, "e", "f")
TRANSITIONS = [["a", "b", "c"], ["b", "c", "d"], ["a", "c"], ["e", "a", "b"], ["c", "d", "a"]]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    torch.set_num_threads(1)


def _trained(config: ContentSTAMPConfig, transitions: TransitionConfig | None = None) -> ContentSTAMP:
    """A model whose every weight is random and large enough to matter (the learned rows' row 0 stays the zero
    of "no learned vector"), with a transition component when asked."""
    torch.manual_seed(0)
    model = ContentSTAMP(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.4)
            if name.endswith("_vectors.weight"):
                p[0].zero_()
    if transitions is not None:
        model.transitions = ItemTransitions.fit(TRANSITIONS, transitions)
    return model.eval()


def _config(**kw) -> ContentSTAMPConfig:
    return ContentSTAMPConfig(**{"input_dim": D, "stamp": STAMPConfig(dim=6), **kw})


VARIANTS = {
    "zero-shot": lambda: ContentSTAMP.zero_shot(D),
    "projection-additive": lambda: _trained(_config()),
    "projection-similarity": lambda: _trained(
        _config(stamp=STAMPConfig(dim=6, attention="similarity", similarity_temperature=3.0))
    ),
    "zero-shot-weights-trained": lambda: _trained(replace(ContentSTAMP.zero_shot(D).config, zero_shot=False)),
    "hybrid-rank": lambda: _trained(_config(item_keys=KEYS, catalogue=CATALOGUE)),
    "hybrid-output-vectors": lambda: _trained(
        _config(item_keys=KEYS, catalogue=CATALOGUE, output_vectors=True, plain_scoring=True)
    ),
    "hybrid-similarity-output-transitions": lambda: _trained(
        _config(
            stamp=STAMPConfig(dim=6, attention="similarity"),
            item_keys=KEYS,
            catalogue=CATALOGUE,
            output_vectors=True,
        ),
        TransitionConfig(weight=2.0, decay=0.5, popularity=0.3),
    ),
    "cold-score": lambda: _trained(
        _config(item_keys=KEYS, catalogue=CATALOGUE, cold_start="score", cold_calibration=(0.5, -0.1, 0.2)),
        TransitionConfig(weight=1.0),
    ),
    "cold-protect": lambda: _trained(
        _config(item_keys=KEYS, catalogue=CATALOGUE, cold_protect=0.2, cold_depth=3, zero_shot_temperature=1.5),
        TransitionConfig(weight=1.0),
    ),
    "transitions-without-learned-rows": lambda: _trained(_config(catalogue=CATALOGUE), TransitionConfig(weight=1.5)),
}


def _sessions(n: int = 40) -> list[tuple[np.ndarray, list[str | None] | None]]:
    """Random sessions of 1 to 6 unit vectors; ids from the learned rows, the catalogue, unknown pages and none."""
    rng = np.random.RandomState(7)
    names: list[str | None] = [*CATALOGUE, "new", "zzz", None]
    out: list[tuple[np.ndarray, list[str | None] | None]] = []
    for i in range(n):
        x = rng.randn(1 + i % 6, D).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        keys = None if i % 7 == 3 else [names[j] for j in rng.randint(0, len(names), len(x))]
        out.append((x, keys))
    return out


def _assert_same_intent(got, want) -> None:
    np.testing.assert_allclose(got.vector, want.vector, atol=1e-5)
    np.testing.assert_allclose(got.attention, want.attention, atol=1e-5)
    for a, b in ((got.cold_vector, want.cold_vector), (got.learned_scores, want.learned_scores)):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, atol=1e-5)
    assert got.learned_ids == want.learned_ids
    assert got.catalogue == want.catalogue
    assert got.cold_calibration == want.cold_calibration
    assert got.cold_protected == want.cold_protected


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_numpy_form_gives_the_torch_modules_intent(variant, tmp_path):
    model = VARIANTS[variant]()
    model.save(tmp_path)
    frozen, loaded = model.frozen(), FrozenContentSTAMP.load(tmp_path)
    assert loaded.config == model.config and is_trained(loaded) == (not model.config.zero_shot)
    sessions = _sessions()
    assert any(len(x) == 1 for x, _ in sessions) and any(k is not None and "zzz" in k for _, k in sessions)
    for items, keys in sessions:
        want = model.intent(items, keys)
        _assert_same_intent(frozen.intent(items, keys), want)
        _assert_same_intent(loaded.intent(items, keys), want)
    if model.transitions is not None:  # the variants that have them do change the learned scores
        assert any(model.intent(x, k).learned_ids for x, k in sessions)


def test_the_numpy_form_refuses_what_the_module_refuses():
    frozen = VARIANTS["hybrid-rank"]().frozen()
    with pytest.raises(Exception, match="3 session items"):
        frozen.intent(np.eye(3, D, dtype=np.float32), ["a"])
    with pytest.raises(Exception, match="no items"):
        frozen.intent(np.zeros((0, D), np.float32))
    with pytest.raises(Exception, match=f"\\(L, {D}\\)"):
        frozen.intent(np.zeros((2, D + 1), np.float32))


def test_a_folder_saved_in_numpy_form_loads_back_into_the_torch_module(tmp_path):
    """Training can continue from a model that was saved by a server holding its numpy form (no state_dict)."""
    model = VARIANTS["hybrid-output-vectors"]()
    model.frozen().save(tmp_path)
    assert not (tmp_path / "intent_model.pt").exists()
    back = ContentSTAMP.load(tmp_path)
    for name, w in model.state_dict().items():
        torch.testing.assert_close(back.state_dict()[name], w)


# ------------------------------------------------------------------ edited and damaged folders


def _rewrite_npz(d: Path, **arrays: np.ndarray) -> None:
    """Replace the weights with these arrays and record their hash, as someone editing the folder would."""
    with open(d / "intent_model.npz", "wb") as fh:
        np.savez(fh, **arrays)
    meta = json.loads((d / "intent_model.json").read_text())
    meta["npz_sha256"] = hashlib.sha256((d / "intent_model.npz").read_bytes()).hexdigest()
    (d / "intent_model.json").write_text(json.dumps(meta))


def _refused_without_allocating(d: Path, match: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(IndexFormatError, match=match):
            load_intent_model(d)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak  # the hash is read in 4 MiB blocks; the edited sizes would be gigabytes


@pytest.mark.parametrize("field", [("stamp", "dim"), ("input_dim",), ("item_keys",)])
def test_a_config_edited_to_absurd_sizes_is_refused_before_any_allocation(tmp_path, field):
    VARIANTS["hybrid-rank"]().save(tmp_path)
    meta = json.loads((tmp_path / "intent_model.json").read_text())
    cfg = meta["config"]
    if field == ("item_keys",):
        cfg["item_keys"] = [f"k{i}" for i in range(20_000)]
    elif field == ("input_dim",):
        cfg["input_dim"] = 10**9
    else:
        cfg["stamp"]["dim"] = 50_000
    (tmp_path / "intent_model.json").write_text(json.dumps(meta))
    _refused_without_allocating(tmp_path, "not the|does not fit")


@pytest.mark.parametrize(
    "change",
    [{"stamp": [1]}, {"input_dim": "12"}, {"input_dim": True}, {"item_keys": 5}, {"stamp": {"dim": "6"}}],
    ids=["stamp-list", "dim-str", "dim-bool", "keys-int", "stamp-dim-str"],
)
def test_a_config_field_of_the_wrong_type_is_an_index_format_error(tmp_path, change):
    VARIANTS["hybrid-rank"]().save(tmp_path)
    meta = json.loads((tmp_path / "intent_model.json").read_text())
    meta["config"].update(change)
    (tmp_path / "intent_model.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFormatError, match="content-STAMP model"):
        load_intent_model(tmp_path)


def test_an_archive_whose_header_claims_a_huge_array_is_refused_before_reading_it(tmp_path):
    model = VARIANTS["projection-additive"]()
    model.save(tmp_path)
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    _rewrite_npz(tmp_path, **weights)
    with zipfile.ZipFile(tmp_path / "intent_model.npz") as zf:  # the archive as it is, one header edited
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    members["stamp.w1.weight.npy"] = members["stamp.w1.weight.npy"].replace(b"(6, 6)", b"(6, 99999999999)", 1)
    with zipfile.ZipFile(tmp_path / "intent_model.npz", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    _rewrite_sha(tmp_path)
    _refused_without_allocating(tmp_path, "not the|float32")


def _rewrite_sha(d: Path) -> None:
    meta = json.loads((d / "intent_model.json").read_text())
    meta["npz_sha256"] = hashlib.sha256((d / "intent_model.npz").read_bytes()).hexdigest()
    (d / "intent_model.json").write_text(json.dumps(meta))


def test_damaged_wrong_shaped_compressed_or_pickled_weights_are_refused(tmp_path):
    model = VARIANTS["hybrid-rank"]()
    model.save(tmp_path)
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    blob = bytearray((tmp_path / "intent_model.npz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (tmp_path / "intent_model.npz").write_bytes(bytes(blob))  # damaged: no longer the recorded hash
    with pytest.raises(IndexFormatError, match="sha256"):
        load_intent_model(tmp_path)
    _rewrite_npz(tmp_path, **{**weights, "proj.weight": np.zeros((5, D), np.float32)})
    with pytest.raises(IndexFormatError, match="proj.weight"):
        load_intent_model(tmp_path)
    _rewrite_npz(tmp_path, **{k: v for k, v in weights.items() if k != "next_vectors.weight"})
    with pytest.raises(IndexFormatError, match="missing"):
        load_intent_model(tmp_path)
    _rewrite_npz(tmp_path, **weights, extra=np.zeros(3, np.float32))
    with pytest.raises(IndexFormatError, match="extra"):
        load_intent_model(tmp_path)
    _rewrite_npz(tmp_path, **{**weights, "stamp.w0.weight": weights["stamp.w0.weight"].astype(np.float64)})
    with pytest.raises(IndexFormatError, match="stamp.w0.weight"):
        load_intent_model(tmp_path)
    _rewrite_npz(tmp_path, **{**weights, "stamp.w0.weight": np.array([[object()] * 6], dtype=object)})
    with pytest.raises(IndexFormatError):
        load_intent_model(tmp_path)
    with open(tmp_path / "intent_model.npz", "wb") as fh:
        np.savez_compressed(fh, **weights)
    _rewrite_sha(tmp_path)
    with pytest.raises(IndexFormatError, match="compressed"):
        load_intent_model(tmp_path)


# ------------------------------------------------------------------ an index folder with a trained model


ARTICLES = [
    Article(f"{t[:3]}-{p}", f"{t.title()} {p}", f"https://kb.test/{t[:3]}/{p}", f"{t} {t} guide part {p} {t} notes")
    for t in ("json serialization", "http networking", "sqlite database", "turtle graphics")
    for p in range(4)
]
PURE = SuggestSettings(min_score=None, mmr_lambda=1.0)


def _index_with_model(d: Path) -> tuple[SessionRecommender, list[str]]:
    rec = SessionRecommender.build(ARTICLES, encoder=HashingEncoder(64), progress=False, settings=PURE)
    ids = [a.id for a in ARTICLES]
    cfg = ContentSTAMPConfig(
        input_dim=64,
        stamp=STAMPConfig(dim=8),
        item_keys=tuple(ids[:6]),
        catalogue=tuple(ids[:12]),
        output_vectors=True,
        plain_scoring=True,
    )
    rec.intent_model = _trained(cfg, TransitionConfig(weight=1.0))
    rec.intent_model.transitions = ItemTransitions.fit([ids[i : i + 3] for i in range(0, 12, 2)])
    rec.save(d)
    return rec, ids


VIEWED = ["jso-0", "htt-1", "sql-2"]


def _fresh_python(code: str) -> str:
    """What `code` prints in a new interpreter on this checkout (nothing imported yet, as in a new worker)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO, env=env
    ).stdout


def test_an_index_with_a_trained_model_is_served_without_importing_torch(tmp_path):
    d = tmp_path / "ix"
    rec, _ = _index_with_model(d)
    want = [s.article.id for s in rec.suggest_for(VIEWED, k=5)]
    code = (
        "import sys; from plugin import SessionRecommender; from plugin.persistence import is_trained;"
        f"rec = SessionRecommender.load({str(d)!r});"
        f"print(type(rec.intent_model).__name__, is_trained(rec.intent_model), 'torch' in sys.modules);"
        f"print(*[s.article.id for s in rec.suggest_for({VIEWED!r}, k=5)]);"
        "print('torch' in sys.modules)"
    )
    lines = _fresh_python(code).splitlines()
    assert lines[0].split() == ["FrozenContentSTAMP", "True", "False"]
    assert lines[1].split() == want  # the torch model's suggestions, served in numpy
    assert lines[2] == "False"


def test_an_index_served_in_numpy_form_saves_its_model_again(tmp_path):
    rec, _ = _index_with_model(tmp_path / "ix")
    loaded = SessionRecommender.load(tmp_path / "ix", encoder=rec.encoder.inner)
    assert isinstance(loaded.intent_model, FrozenContentSTAMP)
    version = loaded.save(tmp_path / "again")
    assert (version / "intent_model.npz").exists() and (version / "transitions.json").exists()
    again = SessionRecommender.load(tmp_path / "again", encoder=rec.encoder.inner)
    assert again.intent_model.config == rec.intent_model.config
    assert [s.article.id for s in again.suggest_for(VIEWED, k=5)] == [
        s.article.id for s in rec.suggest_for(VIEWED, k=5)
    ]


def test_a_folder_saved_before_the_numpy_weights_still_loads_through_torch(tmp_path):
    rec, _ = _index_with_model(tmp_path / "ix")
    version = next((tmp_path / "ix" / "versions").iterdir())
    (version / "intent_model.npz").unlink()  # as ContentSTAMP.save wrote it before: the state_dict alone
    meta = json.loads((version / "intent_model.json").read_text())
    del meta["npz_sha256"]
    (version / "intent_model.json").write_text(json.dumps(meta))
    loaded = SessionRecommender.load(tmp_path / "ix", encoder=rec.encoder.inner)
    assert type(loaded.intent_model) is ContentSTAMP and is_trained(loaded.intent_model)
    assert [s.article.id for s in loaded.suggest_for(VIEWED, k=5)] == [
        s.article.id for s in rec.suggest_for(VIEWED, k=5)
    ]


def test_a_save_cut_before_its_config_serves_the_committed_weights_from_their_backup(tmp_path):
    """The npz is replaced first and committed by the config that records its hash: a save cut between the two
    leaves the new archive beside the old config, and the loader serves the old model from `intent_model.prev.npz`."""
    old = VARIANTS["hybrid-rank"]()
    new = _trained(old.config)
    with torch.no_grad():
        new.proj.weight.mul_(-1.0)
    old.save(tmp_path)
    write_weights(tmp_path, {k: v.numpy() for k, v in new.state_dict().items()})  # the cut save's first step
    assert (tmp_path / "intent_model.prev.npz").exists()
    items, keys = _sessions()[5]
    assert not np.allclose(new.intent(items, keys).vector, old.intent(items, keys).vector, atol=1e-3)
    _assert_same_intent(load_intent_model(tmp_path).intent(items, keys), old.intent(items, keys))
