"""The ``classify`` stage: a pretrained backbone + a new head, trained on labelled examples.

The loop reads top to bottom: shuffle (seeded per epoch), forward, cross-entropy, AdamW step with a linear
learning-rate decay, and a held-out evaluation (accuracy and macro-F1) after every epoch. The tuning modes of
:mod:`rlft.tuning` decide which parameters train: ``full``, ``freeze`` (early layers frozen) or ``lora``.

Checkpoints (``DIR/checkpoints/classify-<step>``) hold the *trainable* parameters (for LoRA: adapters + head, a few
hundred kB) and the optimizer/RNG/step state; ``--resume`` rebuilds the model from the backbone and continues at the
same step with the same data order. The exported model (``DIR/stages/classify``) has LoRA merged.

``seeds > 1`` repeats training with seeds ``seed, seed+1, ...`` (a fresh label subset each when
``data.label_fraction < 1``) and reports means; ``scratch_baseline`` also trains the same architecture from a random
initialisation on the same examples, so a transfer gain is measured, not assumed.

Example::

    rlft train configs/text_classifier.yaml --run-dir runs/txt --set classify.tuning.mode=freeze
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from rlft.config import param
from rlft.errors import CheckpointError
from rlft.metrics import MetricLogger, log
from rlft.policies.encoders import EncoderSpec
from rlft.run import AtomicDir, RunDir, load_safetensors, load_trainer_state, save_trainer_state
from rlft.supervised.data import DataConfig, Examples, load_splits
from rlft.supervised.models import Classifier, resolve_backbone, save_classifier
from rlft.supervised.resources import ResourceMeter
from rlft.tuning import TuningConfig, apply_tuning, merge_lora

if TYPE_CHECKING:
    from rlft.pipeline import StageContext


LR_BY_MODE = {"full": 5e-5, "freeze": 1e-4, "lora": 5e-4}
"""Default peak learning rate per tuning mode (`classify.lr: null`): fine-tuning every weight of a pretrained
transformer wants a small step; adapters and a few top layers tolerate larger ones."""


@dataclass
class ClassifyConfig:
    """Settings of the ``classify`` stage."""

    data: DataConfig = field(default_factory=DataConfig)
    """The labelled examples and the held-out split."""
    backbone: str = "minilm"
    """`minilm` (packaged MiniLM-L6), `cnn`, `mlp`, `previous` (an earlier stage's encoder), a folder, or an HF id."""
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    """Shape of a fresh `cnn` / `mlp` backbone (ignored for pretrained backbones)."""
    pooling: str = "mean"
    """Text encoders: `mean` of the token vectors, or `cls` (the first token)."""
    max_length: int = param(64, ge=2)
    """Text encoders: truncate inputs to this many tokens."""
    tuning: TuningConfig = field(default_factory=TuningConfig)
    """Which parameters train: `full`, `freeze` (last `trainable_layers` layers + head), or `lora`."""
    epochs: int = param(3, ge=1)
    """Passes over the training examples."""
    batch_size: int = param(32, ge=1)
    """Examples per optimizer step."""
    lr: float | None = param(None, gt=0)
    """Peak learning rate of the backbone's trainable parameters (LoRA adapters included), decaying linearly to 0.
    None: the usual value for the tuning mode (`LR_BY_MODE`: full 5e-5, freeze 1e-4, lora 5e-4), which suits
    pretrained transformers; set it for small networks."""
    head_lr: float | None = None
    """Learning rate of the new head (None: `lr`). A new head usually wants more than a pretrained trunk."""
    weight_decay: float = param(0.0, ge=0)
    """AdamW weight decay."""
    dropout: float = param(0.1, ge=0, lt=1)
    """Dropout on the features before the head."""
    max_grad_norm: float = param(1.0, gt=0)
    """Gradient clipping norm."""
    log_every: int = param(10, ge=1)
    """Log the training loss every N steps."""
    checkpoint_every: int = param(200, ge=1)
    """Write a resumable checkpoint every N steps (and at the end); the newest two are kept."""
    seeds: int = param(1, ge=1)
    """Train this many times (seeds `seed`, `seed+1`, ...) and report the mean; the first run is exported."""
    scratch_baseline: bool = False
    """Also train the same network from a random initialisation (tuning mode `full`) on the same examples."""

    def validate(self) -> None:
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")


# --------------------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------------------


def accuracy_and_macro_f1(pred: np.ndarray, true: np.ndarray, num_labels: int) -> tuple[float, float]:
    """Accuracy and macro-averaged F1 (classes absent from both ``pred`` and ``true`` are skipped)."""
    accuracy = float(np.mean(pred == true)) if len(true) else 0.0
    f1s = []
    for c in range(num_labels):
        tp = np.sum((pred == c) & (true == c))
        fp = np.sum((pred == c) & (true != c))
        fn = np.sum((pred != c) & (true == c))
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return accuracy, float(np.mean(f1s)) if f1s else 0.0


@torch.no_grad()
def predict(model: Classifier, inputs: list[str] | np.ndarray, device: str, batch_size: int = 256) -> np.ndarray:
    """Predicted class indices for ``inputs``."""
    model.eval()
    preds = []
    for start in range(0, len(inputs), batch_size):
        batch = _to_device(model.prepare(inputs[start:start + batch_size]), device)
        preds.append(model(batch).argmax(-1).cpu().numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def evaluate(model: Classifier, data: Examples, device: str) -> dict[str, float]:
    """``{"accuracy", "macro_f1"}`` on ``data``."""
    acc, f1 = accuracy_and_macro_f1(predict(model, data.inputs, device), data.labels, len(data.label_names))
    return {"accuracy": acc, "macro_f1": f1}


def _to_device(batch: Any, device: str) -> Any:
    if isinstance(batch, dict):
        return {k: v.to(device) for k, v in batch.items()}
    return batch.to(device)


# --------------------------------------------------------------------------------------------------------------
# Training one model
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Trainer:
    """Trains one classifier on ``train``; evaluates on ``held_out`` after each epoch; checkpoints into ``run``."""

    model: Classifier
    cfg: ClassifyConfig
    train: Examples
    held_out: Examples
    seed: int
    device: str
    name: str = "classify"
    """Checkpoint prefix (``DIR/checkpoints/<name>-<step>``)."""
    run: RunDir | None = None
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
                for group in self.optimizer.param_groups:
                    group["lr"] = group["base_lr"] * (1.0 - self.step / self.total_steps)
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
            scores = evaluate(self.model, self.held_out, self.device)
            self.history.append({"step": self.step, **scores})
            if self.metrics is not None:
                self.metrics.log({f"eval/{k}": v for k, v in scores.items()}, step=self.step)
            log.log(self.verbosity, "%s: epoch %d/%d, held-out accuracy %.4f, macro-F1 %.4f", self.name, epoch + 1,
                    cfg.epochs, scores["accuracy"], scores["macro_f1"])
            self.save_checkpoint()
        return {k: v for k, v in self.history[-1].items() if k != "step"} if self.history else \
            evaluate(self.model, self.held_out, self.device)

    # -- checkpoints ---------------------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().contiguous() for n, p in self.model.named_parameters() if p.requires_grad}

    def save_checkpoint(self) -> None:
        if self.run is None:
            return
        with AtomicDir(self.run.checkpoint_dir(self.name, self.step)) as tmp:
            save_file(self.trainable_state(), str(tmp / "trainable.safetensors"))
            save_trainer_state(tmp, self.optimizer, {"step": self.step, "history": self.history})
        for old in self.run.checkpoints(self.name)[:-2]:
            if old.name.rsplit("-", 1)[0] == self.name:
                import shutil

                shutil.rmtree(old, ignore_errors=True)

    def maybe_resume(self) -> bool:
        """Continue from this trainer's newest checkpoint, if any (True when one was loaded)."""
        latest = self.run.latest_checkpoint(self.name) if self.run is not None else None
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
        log.info("%s: resuming from %s (step %d)", self.name, latest.name, self.step)
        return True


# --------------------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------------------


def build_model(cfg: ClassifyConfig, num_labels: int, seed: int, previous: str | None = None,
                backbone: nn.Module | None = None, scratch: bool = False) -> tuple[Classifier, dict[str, int]]:
    """Backbone (loaded, or a copy of ``backbone``) + new head, with the tuning mode applied."""
    encoder = copy.deepcopy(backbone) if backbone is not None else resolve_backbone(
        cfg.backbone, previous=previous, encoder_spec=cfg.encoder, pooling=cfg.pooling, max_length=cfg.max_length)
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


def run(ctx: StageContext) -> dict[str, Any]:
    """Train (and, with `seeds`/`scratch_baseline`, repeat); export the first model to ``DIR/stages/classify``."""
    cfg: ClassifyConfig = ctx.cfg.classify  # type: ignore[attr-defined]
    meter = ResourceMeter(ctx.device)
    previous = ctx.outputs.get("encoder")
    base = resolve_backbone(cfg.backbone, previous=previous, encoder_spec=cfg.encoder, pooling=cfg.pooling,
                            max_length=cfg.max_length)
    variants = [(kind, i) for i in range(cfg.seeds) for kind in (["pretrained", "scratch"] if cfg.scratch_baseline
                                                                   else ["pretrained"])]
    results: dict[str, list[dict[str, float]]] = {"pretrained": [], "scratch": []}
    exported: dict[str, Any] = {}
    for kind, i in variants:
        seed = ctx.seed + i
        train, held_out = load_splits(cfg.data, seed=seed)
        model, counts = build_model(cfg, len(train.label_names), seed, backbone=base, scratch=kind == "scratch")
        name = "classify" if (kind, i) == variants[0] else f"classify_{kind}_seed{i}"
        with MetricLogger(ctx.run.tb_dir("classify") / name) as metrics:
            trainer = Trainer(model, cfg, train, held_out, seed, ctx.device, name=name, run=ctx.run, metrics=metrics,
                              verbosity=logging.INFO if name == "classify" else logging.DEBUG)
            if ctx.resume:
                trainer.maybe_resume()
            scores = trainer.fit()
        results[kind].append(scores)
        log.info("classify: %s seed %d (%d labelled examples): accuracy %.4f, macro-F1 %.4f", kind, seed,
                 len(train), scores["accuracy"], scores["macro_f1"])
        if (kind, i) == variants[0]:
            exported = {"model": model, "counts": counts, "labels": train.label_names, "n_train": len(train),
                        "n_eval": len(held_out), "history": trainer.history}
    out = ctx.run.stage_dir("classify")
    final: Classifier = exported["model"].cpu()
    if cfg.tuning.mode == "lora":
        final = merge_lora(copy.deepcopy(final))  # type: ignore[assignment]
    metrics_out: dict[str, Any] = _summary(results)
    if results["scratch"]:
        log.info("classify: held-out accuracy %.4f (pretrained) vs %.4f (same network from scratch), mean of %d "
                 "seed(s): %+.2f points", metrics_out["accuracy"], metrics_out["scratch_accuracy"], cfg.seeds,
                 100 * metrics_out["gain_over_scratch"])
    metrics_out.update(exported["counts"], train_examples=exported["n_train"], eval_examples=exported["n_eval"],
                       tuning=cfg.tuning.mode, backbone=cfg.backbone, **meter.read())
    with AtomicDir(out) as tmp:
        save_classifier(tmp, final, exported["labels"], extra={"metrics": metrics_out})
    return {"outputs": {"model": str(out)}, "metrics": metrics_out, "history": exported["history"],
            "per_seed": results}


def _summary(results: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, prefix in (("pretrained", ""), ("scratch", "scratch_")):
        runs = results[kind]
        if not runs:
            continue
        for key in ("accuracy", "macro_f1"):
            values = [r[key] for r in runs]
            out[f"{prefix}{key}"] = float(np.mean(values))
            if len(values) > 1:
                out[f"{prefix}{key}_std"] = float(np.std(values))
    if results["scratch"]:
        out["gain_over_scratch"] = out["accuracy"] - out["scratch_accuracy"]
    out["seeds"] = len(results["pretrained"])
    return out
