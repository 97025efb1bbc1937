"""Runtime: the device, seeds, CPU threads, and the wall time and peak memory of a stage.

``resolve_device("auto")`` picks CUDA when present; :func:`seed_everything` seeds Python, NumPy and torch;
:class:`ResourceMeter` records wall time and peak memory so `rlft compare` can show the cost of a run. Peak host
memory is the process's maximum resident set size (``resource.getrusage``); it covers the whole process up to that
point, so in a multi-stage run it is the peak so far. On CUDA the peak allocated GPU memory is added.

Example::

    meter = ResourceMeter("cpu")
    ...  # train
    meter.read()  # {"wall_seconds": 12.3, "peak_memory_mb": 812.0}
"""

from __future__ import annotations

import random
import sys
import time

import numpy as np
import torch


def peak_rss_mb() -> float:
    """The process's peak resident memory in MiB (0.0 where the platform does not report it)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


class ResourceMeter:
    """Starts a clock (and resets the CUDA peak counter) when created; :meth:`read` reports since then."""

    def __init__(self, device: str) -> None:
        self.cuda = str(device).startswith("cuda") and torch.cuda.is_available()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        self.start = time.perf_counter()

    def read(self) -> dict[str, float]:
        out = {"wall_seconds": round(time.perf_counter() - self.start, 2), "peak_memory_mb": round(peak_rss_mb(), 1)}
        if self.cuda:
            out["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return out

def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA when present, else CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_threads(num_threads: int) -> None:
    """Let torch use ``num_threads`` CPU threads (0: leave torch's default)."""
    if num_threads:
        torch.set_num_threads(num_threads)
