"""x"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from rlft.core.checkpoint import load_trainer_state, save_trainer_state
from rlft.core.metrics import log
from rlft.core.rundir import AtomicDir, RunDir

if TYPE_CHECKING:
    pass


def _checkpoint(run: RunDir, name: str, step: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    with AtomicDir(run.checkpoint_dir(name, step)) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        save_trainer_state(tmp, optimizer, {"step": step})
    for old in run.checkpoints(name)[:-1]:
        shutil.rmtree(old, ignore_errors=True)


def _resume(run: RunDir, name: str, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    latest = run.latest_checkpoint(name)
    if latest is None:
        return 0
    load_model(model, str(latest / "model.safetensors"))
    state = load_trainer_state(latest)
    state.restore(optimizer)
    log.info("%s: resuming from %s", name, latest.name)
    return int(state.counters["step"])


def _set_lr(optimizer: torch.optim.Optimizer, base: float, step: int, total: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = base * (1.0 - step / total)
