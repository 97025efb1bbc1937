"""Training one classifier: the supervised loop (seeded shuffles, AdamW with linear decay, held-out evaluation after
every `eval_every` epochs) with resumable checkpoints of the trainable parameters.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from rlft.core.checkpoint import Checkpointer, load_trainer_state, save_trainer_state
from rlft.core.errors import CheckpointError
from rlft.core.metrics import MetricLogger, log
from rlft.core.rundir import load_safetensors
from rlft.core.tuning import TuningConfig, apply_tuning
from rlft.encoder.config import LR_BY_MODE, ClassifyConfig
from rlft.encoder.data import Examples
from rlft.encoder.evaluate import _to_device, evaluate
from rlft.encoder.loop import set_lr
from rlft.encoder.models import Classifier, resolve_backbone

if TYPE_CHECKING:
    pass


@dataclass
class Trainer:
    """Trains one classifier on ``train``; evaluates on ``held_out`` after each epoch; checkpoints as it goes."""

    model: Classifier
    cfg: ClassifyConfig
    train: Examples
    held_out: Examples
    seed: int
    device: str
    name: str = "classify"
    """The trainer's name in log lines."""
    checkpoints: Checkpointer | None = None
    """Where checkpoints go (None: none)."""
    metrics: MetricLogger | None = None
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    verbosity: int = logging.INFO
    """Log level of the per-epoch lines (repeats for extra seeds and baselines use DEBUG)."""

    def __post_init__(self) -> None:
        self.model.to(self.device)
        head = [p for p in self.model.head.parameters() if p.requires_grad]
        body = [p for n, p in self.model.named_parameters() if p.requires_grad and not n.startswith("head.")]
        lr = self.cfg.lr or LR_BY_MODE[self.cfg.tuning.mode]
        groups = [{"params": body, "base_lr": lr}, {"params": head, "base_lr": self.cfg.head_lr or lr}]
        self.optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr,
                                           weight_decay=self.cfg.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.train) / self.cfg.batch_size)
        self.total_steps = self.steps_per_epoch * self.cfg.epochs

    def fit(self) -> dict[str, float]:
        """Train to ``total_steps`` (continuing from ``step``); returns the final held-out metrics."""
        cfg = self.cfg
        while self.step < self.total_steps:
            epoch, offset = divmod(self.step, self.steps_per_epoch)
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.train))
            self.model.train()
            for b in range(offset, self.steps_per_epoch):
                index = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                batch = self.train.subset(index)
                logits = self.model(_to_device(self.model.prepare(batch.inputs), self.device))
                loss = F.cross_entropy(logits, torch.as_tensor(batch.labels, device=self.device))
                set_lr(self.optimizer, self.step, self.total_steps)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                         cfg.max_grad_norm)
                self.optimizer.step()
                self.step += 1
                if self.metrics is not None and self.step % cfg.log_every == 0:
                    self.metrics.log({"train/loss": loss.item(), "train/lr": self.optimizer.param_groups[0]["lr"]},
                                     step=self.step)
                if self.step % cfg.checkpoint_every == 0 and self.step % self.steps_per_epoch != 0:
                    self.save_checkpoint()
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                scores = evaluate(self.model, self.held_out, self.device)
                self.history.append({"step": self.step, **scores})
                if self.metrics is not None:
                    self.metrics.log({f"eval/{k}": v for k, v in scores.items()}, step=self.step)
                log.log(self.verbosity, "%s: epoch %d/%d, held-out accuracy %.4f, macro-F1 %.4f", self.name,
                        epoch + 1, cfg.epochs, scores["accuracy"], scores["macro_f1"])
            self.save_checkpoint()
        return {k: v for k, v in self.history[-1].items() if k != "step"} if self.history else \
            evaluate(self.model, self.held_out, self.device)

    # -- checkpoints ---------------------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().contiguous() for n, p in self.model.named_parameters() if p.requires_grad}

    def save_checkpoint(self) -> None:
        if self.checkpoints is None:
            return
        with self.checkpoints.write(self.step) as tmp:
            save_file(self.trainable_state(), str(tmp / "trainable.safetensors"))
            save_trainer_state(tmp, self.optimizer, {"step": self.step, "history": self.history})

    def maybe_resume(self) -> bool:
        """Continue from this trainer's newest checkpoint, if any (True when one was loaded)."""
        if self.checkpoints is None:
            return False
        latest = self.checkpoints.newest_readable(
            lambda f: (load_safetensors(f / "trainable.safetensors"), load_trainer_state(f)))
        if latest is None:
            return False
        state = load_safetensors(latest / "trainable.safetensors", "checkpoint weights")
        expected = set(self.trainable_state())
        if set(state) != expected:
            raise CheckpointError(f"The checkpoint '{latest}' does not match this model's trainable parameters "
                                  "(was the run's tuning mode or backbone changed?).")
        self.model.load_state_dict(state, strict=False)
        trainer = load_trainer_state(latest)
        trainer.restore(self.optimizer)
        self.step = int(trainer.counters["step"])
        self.history = list(trainer.counters["history"])
        log.info("%s: resuming from checkpoint %s (step %d)", self.name, latest, self.step)
        return True


def build_model(cfg: ClassifyConfig, num_labels: int, seed: int, previous: str | None = None,
                backbone: nn.Module | None = None, scratch: bool = False) -> tuple[Classifier, dict[str, int]]:
    """Backbone (loaded, or a copy of ``backbone``) + new head, with the tuning mode applied."""
    encoder = copy.deepcopy(backbone) if backbone is not None else resolve_backbone(
        cfg.backbone, previous=previous, encoder_spec=cfg.encoder, pooling=cfg.pooling, max_length=cfg.max_length,
        image_size=cfg.image_size)
    torch.manual_seed(seed)
    if scratch:
        for module in encoder.modules():
            if hasattr(module, "reset_parameters") and module is not encoder:
                module.reset_parameters()  # type: ignore[operator]
    model = Classifier(encoder, num_labels, cfg.dropout)
    # A network from scratch has nothing worth freezing: the baseline trains every weight.
    tuning = TuningConfig(mode="full") if scratch else cfg.tuning
    counts = apply_tuning(model, tuning, model.groups(), [model.head])
    return model, counts
