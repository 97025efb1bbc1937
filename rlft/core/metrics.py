"""Namespaced metrics with TensorBoard as the writer, and the ``rlft`` Python logger.

Keys are namespaced: ``imitation/…``, ``rollout/…``, ``train/…`` (including ``train/kl_ref``), ``eval/…``. Each stage
writes to ``DIR/tb/<stage>/``, so ``tensorboard --logdir runs/`` shows every stage of every run. The library never
prints: human-readable messages go to the ``rlft`` logger (the CLI sends it to the console and ``DIR/run.log``).

Example::

    with MetricLogger(run.tb_dir("imitate")) as m:
        m.log({"imitation/loss": 0.3, "imitation/accuracy": 0.9}, step=epoch)
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger("rlft")


class MetricLogger:
    """Writes scalars to TensorBoard and remembers the last value of each key (for summaries and tests)."""

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.last: dict[str, float] = {}
        self._writer: Any = None
        if self.folder is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.folder.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(log_dir=str(self.folder))

    def log(self, scalars: dict[str, float], step: int) -> None:
        """Write scalars (keys must be namespaced, e.g. ``eval/mean_return``)."""
        for key, value in scalars.items():
            if "/" not in key:
                raise ValueError(f"metric key '{key}' is not namespaced (expected e.g. 'train/{key}')")
            value = float(value)
            self.last[key] = value
            if self._writer is not None and math.isfinite(value):
                self._writer.add_scalar(key, value, global_step=step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def read_scalars(folder: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read every scalar from TensorBoard event files under ``folder`` (used by tests and `rlft compare`)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(Path(folder).rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out
