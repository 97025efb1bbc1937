"""Plumbing of the encoder training loops: whole-model checkpoints and the linear learning-rate decay.

Example::

    step = resume(ctx.checkpointer(), model, optimizer) if ctx.resume else 0
    set_lr(optimizer, step, total)            # each group decays linearly from its `base_lr` (or `lr`) to 0
    save(ctx.checkpointer(), step, model, optimizer)
"""

from __future__ import annotations

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from rlft.core.checkpoint import Checkpointer, load_trainer_state, save_trainer_state
from rlft.core.metrics import log
from rlft.core.rundir import load_safetensors


def save(checkpoints: Checkpointer, step: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Checkpoint ``step``: the whole model (safetensors) and the optimizer/RNG state."""
    with checkpoints.write(step) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        save_trainer_state(tmp, optimizer, {"step": step})


def resume(checkpoints: Checkpointer, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Load the newest checkpoint into ``model`` and ``optimizer``; returns its step (0 when there is none)."""
    latest = checkpoints.newest_readable(lambda f: (load_safetensors(f / "model.safetensors"),
                                                    load_trainer_state(f)))
    if latest is None:
        return 0
    load_model(model, str(latest / "model.safetensors"))
    state = load_trainer_state(latest)
    state.restore(optimizer)
    log.info("resuming from checkpoint %s", latest)
    return int(state.counters["step"])


def set_lr(optimizer: torch.optim.Optimizer, step: int, total: int) -> None:
    """Linear decay to 0: each parameter group's ``lr`` is its ``base_lr`` (set once, else its first ``lr``) times
    ``1 - step / total``."""
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
        group["lr"] = group["base_lr"] * (1.0 - step / total)
