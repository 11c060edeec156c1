"""Which float format the session models' big CPU matmuls run in: bfloat16 only where the CPU has it natively.

bfloat16 halves the memory traffic of the (batch x catalogue) softmax and the item-table matmuls, which is a
2-4x speed-up on CPUs with bf16 dot-product instructions (x86 ``avx512_bf16`` / ``amx_bf16``, Arm ``bf16``).
Without them PyTorch emulates bf16 in software and the same step is several times *slower* than float32
(issue #11: a DIGINETICA-sized STAMP epoch took 603 s for 12% of the data under bf16 autocast, 101 s for all of
it in float32), so ``auto`` picks bf16 only when the CPU advertises one of those flags.

    resolve_precision("auto")  -> Precision(bf16=True, requested="auto", reason="CPU flags avx512_bf16 ...", native=True)
    resolve_precision("fp32")  -> Precision(bf16=False, requested="fp32", reason="asked for float32", native=True)

The flags come from ``/proc/cpuinfo`` (Linux); elsewhere nothing is known and ``auto`` means float32, the safe
choice. ``torch.backends.cpu.get_cpu_capability()`` (the SIMD level PyTorch dispatches to, e.g. ``AVX512``) goes
in the reason for the record; it does not say whether bf16 instructions exist.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError

__all__ = ["PRECISIONS", "BF16_FLAGS", "Precision", "cpu_bf16_flags", "native_bf16", "resolve_precision"]

PRECISIONS = ("auto", "bf16", "fp32")
# x86: AVX512-BF16 dot products / AMX bf16 tiles; aarch64 (/proc/cpuinfo "Features"): the BF16 extension
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Precision:
    bf16: bool  # bfloat16 autocast for the training matmuls and the bf16 evaluation screen
    requested: str  # "auto", "bf16" or "fp32"
    reason: str
    native: bool  # whether this CPU runs bf16 natively (bf16 without it is slow, not wrong)

    @property
    def name(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "name": self.name}


def cpu_bf16_flags(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The native-bf16 flags (`BF16_FLAGS`) the CPU advertises; ``cpuinfo`` is /proc/cpuinfo's text (read when None)."""
    if cpuinfo is None:
        try:
            cpuinfo = _CPUINFO.read_text(errors="replace")
        except OSError:  # not Linux, or /proc hidden: nothing known
            return ()
    found: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            found.update(f for f in value.split() if f in BF16_FLAGS)
    return tuple(f for f in BF16_FLAGS if f in found)


@functools.lru_cache(maxsize=1)
def native_bf16() -> tuple[bool, str]:
    """(whether this CPU runs bf16 matmuls natively, why we think so); read once per process."""
    flags = cpu_bf16_flags()
    capability = torch.backends.cpu.get_cpu_capability()
    if flags:
        return True, f"CPU flags {', '.join(flags)} (PyTorch CPU capability {capability})"
    return False, (
        f"no native bf16 CPU flag ({', '.join(BF16_FLAGS)}; PyTorch CPU capability {capability}): "
        "bf16 would be emulated, several times slower than float32"
    )


def resolve_precision(requested: str = "auto") -> Precision:
    """Turn ``auto``/``bf16``/``fp32`` into a decision with its reason."""
    if requested not in PRECISIONS:
        raise ConfigError(f"precision {requested!r} is not valid. Valid precisions are: {', '.join(PRECISIONS)}")
    native, why = native_bf16()
    if requested == "fp32":
        return Precision(False, requested, "asked for float32", native)
    if requested == "bf16":
        return Precision(True, requested, "asked for bf16" + ("" if native else f" although {why}"), native)
    return Precision(native, requested, why, native)
