"""The packaged sentence-transformer run by ONNX Runtime: the same MiniLM, exported once, optionally int8.

Why not `SentenceTransformer(path, backend="onnx")`: that path needs `optimum-onnx`, which pins transformers < 4.58
(this project runs 5.x). Exporting the bare transformer with `torch.onnx.export` and quantising it with ONNX Runtime's
own `quantize_dynamic` needs only `onnxruntime` and `onnx`; tokenisation and mean pooling are done here exactly as
sentence-transformers does them (same tokenizer, strip, truncation at `max_seq_length`, mask-weighted mean, L2).

The export is written once, at first use, under the user's cache folder (the packaged model folder may be read-only)
in a folder keyed by a hash of the model's weights and config, so a changed model never meets a stale export.
Texts are tokenised once, sorted by length and batched, so a batch pads to its own longest text, not the corpus's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from .atomic import atomic_write_with
from .errors import ConfigError

__all__ = ["OnnxEncoder", "ONNX_VARIANTS", "onnx_cache_dir", "cpu_flags", "export_onnx"]

logger = logging.getLogger(__name__)

ONNX_VARIANTS = ("fp32", "int8")
_EXPORT_LOCK = threading.Lock()
_MAX_CHARS_PER_TOKEN = 8  # as in encoder.py: cut raw text the model would truncate anyway


def onnx_cache_dir() -> Path:
    """$SESSION_SUGGEST_CACHE/onnx, else $XDG_CACHE_HOME (or ~/.cache)/session-suggest/onnx."""
    base = os.environ.get("SESSION_SUGGEST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "session-suggest"
    )
    return Path(base) / "onnx"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none): detected, never assumed."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def _model_fingerprint(model_path: Path) -> str:
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json"):
        p = model_path / name
        if p.is_file():
            h.update(name.encode())
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


def export_onnx(
    model_path: str | os.PathLike[str], variant: Literal["fp32", "int8"] = "int8", cache: Path | None = None
) -> Path:
    """The ONNX file of the model's transformer (inputs: input_ids, attention_mask, token_type_ids; output: the
    last hidden state), exported (and quantised) now unless the cache already holds it."""
    if variant not in ONNX_VARIANTS:
        raise ConfigError(f"unknown ONNX variant {variant!r}. Valid variants are: {', '.join(ONNX_VARIANTS)}")
    src = Path(model_path)
    # Without VNNI, int8 x int8 products saturate in 16 bits (AVX2): ONNX Runtime's advice is 7-bit weights there.
    reduce_range = "avx512_vnni" not in cpu_flags() and "avx_vnni" not in cpu_flags()
    folder = (cache or onnx_cache_dir()) / f"{src.name}-{_model_fingerprint(src)}"
    fp32 = folder / "model.onnx"
    target = fp32 if variant == "fp32" else folder / f"model_int8{'_rr' if reduce_range else ''}.onnx"
    if target.is_file():
        return target
    with _EXPORT_LOCK:
        if not fp32.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            logger.info("exporting %s to ONNX at %s (once)", src, fp32)
            atomic_write_with(fp32, lambda tmp: _export_transformer(src, tmp))
        if variant == "int8" and not target.is_file():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            logger.info("quantising %s to int8 (dynamic, per channel, reduce_range=%s)", fp32, reduce_range)
            atomic_write_with(
                target,
                lambda tmp: quantize_dynamic(
                    fp32, tmp, weight_type=QuantType.QInt8, per_channel=True, reduce_range=reduce_range
                ),
            )
    return target


def _export_transformer(src: Path, out: str) -> None:
    import torch
    from transformers import AutoModel

    class Hidden(torch.nn.Module):
        """Keyword arguments only: BertModel.forward's positional order differs between transformers versions."""

        def __init__(self) -> None:
            super().__init__()
            # eager attention exports as plain MatMul/Softmax, which quantize_dynamic turns into int8 MatMuls
            self.bert = AutoModel.from_pretrained(str(src), attn_implementation="eager").eval()

        def forward(self, input_ids, attention_mask, token_type_ids):  # traced by the export, not called
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    model = Hidden().eval()
    ids = torch.ones((2, 16), dtype=torch.long)
    dyn = {0: "batch", 1: "tokens"}
    # The TorchScript exporter is deprecated in favour of torch.export's, which needs onnxscript (not a dependency)
    # and cannot yet export this model with dynamic axes on every torch the project supports (>= 2.1, < 2.14); the
    # deprecation is expected here and nowhere else.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="You are using the legacy TorchScript-based ONNX export", category=DeprecationWarning
        )
        torch.onnx.export(
            model,
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            out,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "token_type_ids": dyn, "last_hidden_state": dyn},
            opset_version=17,
            dynamo=False,
        )


def _check_mean_pooling(model_path: Path) -> int:
    """The model's max_seq_length; refuses a model whose pooling is not the mask-weighted mean done here."""
    pooling = model_path / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text(encoding="utf-8")) if pooling.is_file() else {}
    if not cfg.get("pooling_mode_mean_tokens") or any(
        cfg.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    ):
        raise ConfigError(
            f"the ONNX backend implements mean pooling only; {model_path} pools with {cfg or 'unknown'}. "
            "Use backend='torch' for this model"
        )
    st = model_path / "sentence_bert_config.json"
    st_cfg = json.loads(st.read_text(encoding="utf-8")) if st.is_file() else {}
    if st_cfg.get("do_lower_case"):
        raise ConfigError(f"{model_path} lower-cases its input, which the ONNX backend does not; use backend='torch'")
    return int(st_cfg.get("max_seq_length") or 256)


class OnnxEncoder:
    """Encoder (texts -> float32 (n, d), L2-normalised) running the exported model with ONNX Runtime.

    `threads`: ONNX Runtime's intra-op threads. 1 suits serving (one request, many workers); batch indexing on an
    idle machine gains from one per core (`os.cpu_count()`)."""

    def __init__(
        self,
        model_path: str | None = None,
        *,
        variant: Literal["fp32", "int8"] = "int8",
        batch_size: int = 32,
        threads: int = 1,
        cache: Path | None = None,
    ) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        from .encoder import _sentence_transformer_name, default_model_path

        path = Path(model_path or default_model_path())
        if not path.exists():
            raise ConfigError(f"no sentence-transformers model folder at {str(path)!r}")
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        max_len = _check_mean_pooling(path)
        onnx_file = export_onnx(path, variant, cache)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
        self._tokenizer = AutoTokenizer.from_pretrained(str(path))
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._pad = int(self._tokenizer.pad_token_id or 0)
        self.variant = variant
        self.batch_size = batch_size
        self.threads = threads
        self.name = _sentence_transformer_name(str(path)) + ("@onnx" if variant == "fp32" else "@onnx-int8")
        self.dim = int(self._session.get_outputs()[0].shape[-1] or 0) or self._probe_dim()
        self.max_seq_length = max_len
        self.max_chars = max_len * _MAX_CHARS_PER_TOKEN
        self.window_tokens = max_len - 2  # [CLS] and [SEP] take the other two
        self._lock = threading.Lock()  # one tokenizer; ORT sessions are thread-safe but the pool is per session

    def _probe_dim(self) -> int:
        return int(self._run(np.array([[101, 102]], np.int64), np.ones((1, 2), np.int64)).shape[-1])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, without special tokens (what `window_tokens` counts)."""
        if len(texts) == 0:
            return []
        with self._lock:
            ids = self._tokenizer(
                list(texts), add_special_tokens=False, truncation=False, return_attention_mask=False, verbose=False
            )["input_ids"]
        return [len(x) for x in ids]

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]  # (B, T, D)
        m = mask[:, :, None].astype(np.float32)  # (B, T, 1)
        return (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)  # (B, D) mask-weighted mean

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        clipped = [t[: self.max_chars].strip() if t else "" for t in texts]
        with self._lock:
            ids = self._tokenizer(
                clipped,
                truncation="longest_first",
                max_length=self.max_seq_length,
                return_attention_mask=False,
                verbose=False,
            )["input_ids"]
        order = np.argsort([-len(x) for x in ids], kind="stable")  # longest first: padding stays within a batch
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(ids[r]) for r in rows)
            batch = np.full((len(rows), width), self._pad, dtype=np.int64)  # (B, T)
            mask = np.zeros((len(rows), width), dtype=np.int64)  # (B, T)
            for j, r in enumerate(rows):
                batch[j, : len(ids[r])] = ids[r]
                mask[j, : len(ids[r])] = 1
            out[rows] = self._run(batch, mask)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out / np.maximum(norms, 1e-12), dtype=np.float32)
