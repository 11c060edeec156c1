"""Model and index files a server loads, at start and on every hot reload, written by someone else
(docs/security.md, round 2): a config.json edited to ask for a huge model, fields of the wrong type, an .npz whose
members inflate far past the file. Each is a clear `IndexFormatError` before the memory is taken, and a
`ReloadingRecommender` keeps serving the version it had."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TOPIC_ARTICLES

from plugin import ContentSTAMP, HashingEncoder, IndexFormatError, ReloadingRecommender, SessionRecommender
from plugin.arrays import open_npz
from plugin.encoder import EmbeddingCache
from plugin.intent import ContentSTAMPConfig
from plugin.stamp import STAMPConfig
from plugin.transitions import ItemTransitions, TransitionConfig

torch.set_num_threads(1)


def _saved_model(d: Path) -> dict:
    torch.manual_seed(0)
    ContentSTAMP(ContentSTAMPConfig(input_dim=8, stamp=STAMPConfig(dim=4))).save(d)
    return json.loads((d / "intent_model.json").read_text())


def _with_config(d: Path, meta: dict, **changes) -> None:
    meta = json.loads(json.dumps(meta))
    for key, value in changes.items():
        if key == "stamp_dim":
            meta["config"]["stamp"]["dim"] = value
        else:
            meta["config"][key] = value
    (d / "intent_model.json").write_text(json.dumps(meta))


def test_a_config_asking_for_a_huge_model_is_refused_before_it_is_built(tmp_path, monkeypatch):
    meta = _saved_model(tmp_path)
    built_on: list[str] = []
    real_init = ContentSTAMP.__init__

    def recording_init(self, config):
        built_on.append(torch.empty(0).device.type)  # "meta" allocates nothing
        real_init(self, config)

    monkeypatch.setattr(ContentSTAMP, "__init__", recording_init)
    # stamp.dim 64 stands in for 50,000 (6 d x d matrices: 60 GB allocated and initialised before the weights,
    # 4 x 4, were found not to fit); item_keys for a catalogue of millions of rows of input_dim floats each
    for change in ({"stamp_dim": 64}, {"input_dim": 4096}, {"item_keys": [f"a{i}" for i in range(1000)]}):
        _with_config(tmp_path, meta, **change)
        with pytest.raises(IndexFormatError, match="does not fit"):
            ContentSTAMP.load(tmp_path)
        assert "cpu" not in built_on, change
    _with_config(tmp_path, meta)
    assert ContentSTAMP.load(tmp_path).config.stamp.dim == 4 and built_on[-1] == "cpu"


@pytest.mark.parametrize(
    "change",
    [{"stamp": [1]}, {"input_dim": "8"}, {"item_keys": 5}, {"stamp": {"dim": "4"}}],
    ids=["stamp-list", "dim-str", "keys-int", "stamp-dim-str"],
)
def test_a_config_field_of_the_wrong_type_is_an_index_format_error(tmp_path, change):
    meta = _saved_model(tmp_path)
    _with_config(tmp_path, meta, **change)
    with pytest.raises(IndexFormatError, match="content-STAMP model"):  # was a TypeError, outside the tree
        ContentSTAMP.load(tmp_path)


def _deflated(path: Path, **arrays: np.ndarray) -> None:
    np.savez_compressed(path, **arrays)


def test_an_npz_that_inflates_past_its_bytes_is_refused_by_every_reader(tmp_path):
    # 100 MB of zeros in a 100 kB file: what a zip bomb is, at a size a test can afford
    big = np.zeros((1, 25_000_000), np.float32)
    cache = tmp_path / "embeddings.npz"
    _deflated(cache, keys=np.array(["a"], dtype="U32"), vectors=big, encoder=np.array("hashing:8"))
    assert cache.stat().st_size < 200_000
    with zipfile.ZipFile(cache) as zf:
        assert sum(i.file_size for i in zf.infolist()) > 500 * cache.stat().st_size
    with pytest.raises(IndexFormatError, match="compressed"):
        EmbeddingCache.load(cache, 8, "hashing:8")
    with pytest.raises(IndexFormatError, match="compressed"):
        open_npz(cache.read_bytes())

    ItemTransitions.fit([["a", "b"], ["b", "c"]], TransitionConfig()).save(tmp_path)
    meta = json.loads((tmp_path / "transitions.json").read_text())
    arrays = tmp_path / "transitions.npz"
    with np.load(arrays) as z:
        _deflated(arrays, **{k: z[k] for k in z.files}, pad=big)
    meta["sha256"] = hashlib.sha256(arrays.read_bytes()).hexdigest()  # as if written whole by someone else
    (tmp_path / "transitions.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFormatError, match="compressed"):
        ItemTransitions.load(tmp_path)
    # a session model served through plugin.serving (the lab's state.npz, hash recorded as if written whole)
    from plugin.models import get_model, load_model

    model_dir = tmp_path / "markov"
    fitted = get_model("markov")
    fitted.fit([np.array([1, 2, 3]), np.array([2, 3])], 3)
    fitted.save(model_dir)
    load_model(model_dir)  # what the lab writes reads
    state = model_dir / "state.npz"
    with np.load(state) as z:
        _deflated(state, **{k: z[k] for k in z.files}, pad=big)
    meta = json.loads((model_dir / "config.json").read_text())
    meta["sha256"] = hashlib.sha256(state.read_bytes()).hexdigest()
    (model_dir / "config.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFormatError, match="compressed"):
        load_model(model_dir)
    # what this package writes still reads
    ok = EmbeddingCache(8, "hashing:8")
    ok.save(tmp_path / "ok.npz")
    assert len(EmbeddingCache.load(tmp_path / "ok.npz", 8, "hashing:8")) == 0


def test_a_reload_of_a_version_with_a_bomb_keeps_the_old_version(tmp_path):
    d = tmp_path / "idx"

    def build() -> SessionRecommender:
        return SessionRecommender.build(TOPIC_ARTICLES, encoder=HashingEncoder(64), progress=False)

    build().save(d)
    handle = ReloadingRecommender(d, encoder=HashingEncoder(64), check_interval=None, background=False)
    v2 = build().save(d)
    vecs = np.zeros((1, 25_000_000), np.float32)
    _deflated(v2 / "embeddings.npz", keys=np.array(["a"], dtype="U32"), vectors=vecs, encoder=np.array("hashing:64"))
    with pytest.raises(IndexFormatError, match="compressed"):
        handle.check()
    assert handle.version == "1" and len(handle.kb) == len(TOPIC_ARTICLES)


def test_index_and_settings_files_with_fields_of_the_wrong_type_are_index_format_errors(tmp_path):
    d = tmp_path / "idx"
    v = SessionRecommender.build(TOPIC_ARTICLES, encoder=HashingEncoder(64), progress=False).save(d)
    meta = json.loads((v / "index.json").read_text())
    # each was an AttributeError, KeyError or ValueError naming no file
    for key, value in (("rows", []), ("hnsw_m", None), ("next", "x"), ("rows", {"a": "zz"})):
        bad = {k: x for k, x in meta.items() if not (k == key and value is None)}
        if value is not None:
            bad[key] = value
        (v / "index.json").write_text(json.dumps(bad))
        with pytest.raises(IndexFormatError, match="index.json: a field is missing or of the wrong type"):
            SessionRecommender.load(d, encoder=HashingEncoder(64))
    (v / "index.json").write_text(json.dumps(meta))
    for settings in ({"suggest": []}, [], {"suggest": {"k": "x"}}):  # TypeError, TypeError, ValidationError
        (v / "settings.json").write_text(json.dumps(settings))
        with pytest.raises(IndexFormatError, match="settings.json holds no valid suggestion settings"):
            SessionRecommender.load(d, encoder=HashingEncoder(64))
