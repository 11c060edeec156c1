"""How many threads the compute libraries may use: one per process by default, on every serving path.

A suggestion is one small query (a FAISS search over a few hundred thousand vectors, a STAMP forward on one
session). Fanning it out over OpenMP or torch intra-op threads only adds barrier waits, and several workers on
few cores then fight over the same cores: measured on a busy 2-core box, `suggest()` took p50 9 ms with FAISS at
its default 2 OpenMP threads and 0.5 ms pinned to one (issue #13). So `SessionRecommender.load`/`build`, the CLI
and the HTTP factories call `pin_threads()`.

SESSION_SUGGEST_THREADS=N pins to N threads instead; SESSION_SUGGEST_THREADS=0 leaves the libraries' own defaults
(a process that does bulk work, such as a big re-index, may want every core).
"""

from __future__ import annotations

import logging
import os
import sys

from .errors import ConfigError

__all__ = ["ENV_THREADS", "pin_threads", "threads_setting"]

logger = logging.getLogger(__name__)

ENV_THREADS = "SESSION_SUGGEST_THREADS"


def threads_setting(environ: dict[str, str] | None = None) -> int:
    """The thread count asked for by SESSION_SUGGEST_THREADS (default 1; 0: keep the libraries' defaults)."""
    raw = (os.environ if environ is None else environ).get(ENV_THREADS, "").strip()
    if not raw:
        return 1
    if not (raw.isascii() and raw.isdigit()):
        raise ConfigError(
            f"{ENV_THREADS} must be a whole number of threads (0 keeps the libraries' defaults), got {raw!r}"
        )
    return int(raw)


def pin_threads(n: int | None = None) -> int | None:
    """Pin FAISS (OpenMP), numpy's BLAS and torch to `n` threads (default: SESSION_SUGGEST_THREADS, else 1).

    Returns the count pinned, or None when the setting is 0 and nothing was changed. BLAS matters as much as
    FAISS: MMR's (50, 384) @ (384, 50) product took 19 ms with OpenBLAS's 2 threads on a busy 2-core box (issue
    #13 profile). The BLAS and OpenMP pools are set with threadpoolctl (scikit-learn's, which knows every BLAS
    build's API). torch is not imported for this: if it is not loaded yet, OMP_NUM_THREADS is set so it starts
    with `n` threads when it is."""
    n = threads_setting() if n is None else n
    if n < 0:
        raise ConfigError(f"thread count must be >= 0 (0 keeps the libraries' defaults), got {n}")
    if n == 0:
        return None
    import faiss
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)  # BLAS (numpy's OpenBLAS) and the OpenMP runtimes already loaded
    faiss.omp_set_num_threads(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    else:
        os.environ["OMP_NUM_THREADS"] = str(n)  # read by torch's thread pool when it starts
    logger.debug("compute pinned to %d thread(s)", n)
    return n
