"""Self-supervised stages that feed ``classify``: ``mlm`` for text encoders, ``ssl_image`` for image encoders.

Both learn from the *inputs* of the training split of ``classify.data`` with the labels thrown away (the held-out
split is never seen), and hand their encoder to ``classify`` (``classify.backbone: previous``).

* ``mlm`` -- BERT's masked-language model: 15% of the (non-special) tokens are chosen; of those 80% become
  ``[MASK]``, 10% a random token, 10% stay; the loss is cross-entropy on the chosen tokens only
  (:func:`mask_tokens`). Works for any Hugging Face encoder with a masked-LM head class (a missing MLM head, as in
  sentence-transformers checkpoints, is initialised fresh).
* ``ssl_image`` -- ``rotation``: predict which of 0/90/180/270 degrees an image was rotated by (Gidaris et al.,
  2018); or ``masked_pixels``: hide random 2x2 patches and reconstruct the hidden pixels (MSE on them only).

Example::

    stages: [ssl_image, classify]
    classify: {backbone: previous, data: {source: digits, label_fraction: 0.1}}
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from rlft.config import param
from rlft.errors import ConfigError, DatasetError
from rlft.metrics import MetricLogger, log
from rlft.policies.encoders import EncoderSpec
from rlft.run import AtomicDir, RunDir, load_trainer_state, save_trainer_state
from rlft.supervised.data import unlabelled_inputs
from rlft.supervised.models import MINILM_ALIASES, SmallEncoder, packaged_minilm
from rlft.supervised.resources import ResourceMeter

if TYPE_CHECKING:
    from rlft.pipeline import StageContext


@dataclass
class MLMConfig:
    """Settings of the ``mlm`` stage (masked-language-model training of a text encoder)."""

    backbone: str = "minilm"
    """The encoder to train: `minilm`, an HF model folder, or a cached hub id."""
    steps: int = param(200, ge=1)
    """Optimizer steps."""
    batch_size: int = param(32, ge=1)
    """Texts per step."""
    lr: float = param(5e-5, gt=0)
    """AdamW learning rate (linear decay to 0)."""
    mask_prob: float = param(0.15, gt=0, lt=1)
    """Share of tokens chosen for prediction (BERT: 0.15)."""
    max_length: int = param(64, ge=4)
    """Truncate texts to this many tokens."""
    checkpoint_every: int = param(100, ge=1)
    """Write a resumable checkpoint every N steps (the newest one is kept)."""


@dataclass
class ImagePretrainConfig:
    """Settings of the ``ssl_image`` stage (self-supervised image encoder training)."""

    objective: Literal["rotation", "masked_pixels", "contrastive"] = "contrastive"
    """`rotation`: predict the rotation (0/90/180/270); `masked_pixels`: reconstruct hidden 2x2 patches;
    `contrastive`: SimCLR -- two random shifts/erasures of an image should map close, other images far."""
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    """The encoder network (classify reuses it with `backbone: previous`)."""
    epochs: int = param(20, ge=1)
    """Passes over the unlabelled images."""
    batch_size: int = param(64, ge=1)
    """Images per step (rotation: x4 after rotating each image four ways)."""
    lr: float = param(1e-3, gt=0)
    """AdamW learning rate (linear decay to 0)."""
    mask_ratio: float = param(0.5, gt=0, lt=1)
    """`masked_pixels`: share of 2x2 patches hidden."""
    temperature: float = param(0.2, gt=0)
    """`contrastive`: softmax temperature of the NT-Xent loss."""
    checkpoint_every: int = param(200, ge=1)
    """Write a resumable checkpoint every N steps (the newest one is kept)."""


# --------------------------------------------------------------------------------------------------------------
# The objectives
# --------------------------------------------------------------------------------------------------------------


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab_size: int, prob: float,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: returns (corrupted ids, labels with -100 where no prediction is asked).

    ``special`` is True at tokens never chosen ([CLS], [SEP], padding).
    """
    labels = input_ids.clone()
    chosen = (torch.rand(input_ids.shape, generator=generator) < prob) & ~special
    labels[~chosen] = -100
    corrupted = input_ids.clone()
    roll = torch.rand(input_ids.shape, generator=generator)
    corrupted[chosen & (roll < 0.8)] = mask_id
    random_tokens = torch.randint(vocab_size, input_ids.shape, generator=generator)
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    corrupted[swap] = random_tokens[swap]
    return corrupted, labels


def rotation_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image rotated by 0, 90, 180 and 270 degrees, with the rotation index as label."""
    rotated = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4, device=images.device).repeat_interleave(len(images))
    return rotated, labels


def patch_mask(shape: torch.Size, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A (N, 1, H, W) mask with random 2x2 patches set to 1."""
    n, _, h, w = shape
    patches = (torch.rand((n, 1, math.ceil(h / 2), math.ceil(w / 2)), generator=generator) < ratio).float()
    return patches.repeat_interleave(2, 2).repeat_interleave(2, 3)[:, :, :h, :w]


def augment(images: torch.Tensor, generator: torch.Generator | None = None, shift: int = 1) -> torch.Tensor:
    """A random view of each image: shifted by up to ``shift`` pixels each way, one random 2x2 patch erased."""
    n, _, h, w = images.shape
    padded = F.pad(images, (shift, shift, shift, shift))
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (n, 1, h, 1): the crop window of each image
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    index = (torch.arange(n)[:, None, None, None], torch.arange(images.shape[1])[None, :, None, None], rows, cols)
    views = padded[tuple(i.to(images.device) for i in index)]
    return views * (1 - patch_mask(images.shape, 1.0 / ((h // 2) * (w // 2)), generator).to(images.device))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view must pick its partner out of the other 2N - 2 views of the batch."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(z1)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, targets)


class ImagePretrainer(nn.Module):
    """An encoder with a throw-away self-supervised head."""

    def __init__(self, spec: EncoderSpec, objective: str, mask_ratio: float = 0.5, temperature: float = 0.2) -> None:
        super().__init__()
        self.encoder = SmallEncoder(spec)
        self.objective = objective
        self.mask_ratio = mask_ratio
        self.temperature = temperature
        d = spec.features_dim
        self.head: nn.Module
        if objective == "contrastive":  # SimCLR's projection head; the encoder's features are what is kept
            self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 64))
        else:
            self.head = nn.Linear(d, 4 if objective == "rotation" else math.prod(spec.input_shape))

    def loss(self, images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        if self.objective == "rotation":
            x, y = rotation_batch(images)
            logits = self.head(self.encoder(x))
            return F.cross_entropy(logits, y), {"accuracy": float((logits.argmax(-1) == y).float().mean())}
        if self.objective == "contrastive":
            z1 = self.head(self.encoder(augment(images, generator)))
            z2 = self.head(self.encoder(augment(images, generator)))
            return nt_xent(z1, z2, self.temperature), {}
        mask = patch_mask(images.shape, self.mask_ratio, generator).to(images.device)
        recon = self.head(self.encoder(images * (1 - mask))).view_as(images)
        err = ((recon - images) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)
        return err, {}


# --------------------------------------------------------------------------------------------------------------
# A shared, resumable step loop
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------------------------


def run_mlm(ctx: StageContext) -> dict[str, Any]:
    """Masked-language-model training; writes an HF encoder folder to ``DIR/stages/mlm``."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    cfg: MLMConfig = ctx.cfg.mlm  # type: ignore[attr-defined]
    meter = ResourceMeter(ctx.device)
    texts = unlabelled_inputs(ctx.cfg.classify.data)  # type: ignore[attr-defined]
    if not isinstance(texts, list):
        raise DatasetError("The mlm stage needs text inputs; classify.data holds numbers (use ssl_image).")
    path = str(packaged_minilm()) if cfg.backbone.lower() in MINILM_ALIASES else cfg.backbone
    if not Path(path).exists() and path.startswith(("/", ".")):
        raise ConfigError(f"mlm.backbone '{cfg.backbone}' does not exist.")
    model = AutoModelForMaskedLM.from_pretrained(path).to(ctx.device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    step = _resume(ctx.run, "mlm", model, optimizer) if ctx.resume else 0
    generator = torch.Generator().manual_seed(ctx.seed)
    per_epoch = max(1, len(texts) // cfg.batch_size)
    loss_value = float("nan")
    with MetricLogger(ctx.run.tb_dir("mlm")) as metrics:
        while step < cfg.steps:
            epoch, b = divmod(step, per_epoch)
            order = np.random.default_rng([ctx.seed, epoch]).permutation(len(texts))
            batch = tokenizer([texts[i] for i in order[b * cfg.batch_size:(b + 1) * cfg.batch_size]],
                              padding=True, truncation=True, max_length=cfg.max_length,
                              return_tensors="pt", return_special_tokens_mask=True)
            special = batch.pop("special_tokens_mask").bool()
            generator.manual_seed(ctx.seed * 1_000_003 + step)  # the masks of step s do not depend on resuming
            ids, labels = mask_tokens(batch["input_ids"], special, tokenizer.mask_token_id, len(tokenizer),
                                      cfg.mask_prob, generator)
            model.train()
            out = model(input_ids=ids.to(ctx.device), attention_mask=batch["attention_mask"].to(ctx.device),
                        labels=labels.to(ctx.device))
            _set_lr(optimizer, cfg.lr, step, cfg.steps)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            loss_value = out.loss.item()
            if step % 10 == 0 or step == cfg.steps:
                metrics.log({"mlm/loss": loss_value}, step=step)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                _checkpoint(ctx.run, "mlm", step, model, optimizer)
    log.info("mlm: %d steps, final masked-token loss %.3f", step, loss_value)
    out_dir = ctx.run.stage_dir("mlm")
    with AtomicDir(out_dir) as tmp:
        model.base_model.save_pretrained(str(tmp))  # the encoder without the MLM head
        tokenizer.save_pretrained(str(tmp))
    return {"outputs": {"encoder": str(out_dir)},
            "metrics": {"loss": loss_value, "steps": step, "texts": len(texts), **meter.read()}}


def run_ssl_image(ctx: StageContext) -> dict[str, Any]:
    """Self-supervised image encoder training; writes an rlft encoder folder to ``DIR/stages/ssl_image``."""
    cfg: ImagePretrainConfig = ctx.cfg.ssl_image  # type: ignore[attr-defined]
    meter = ResourceMeter(ctx.device)
    inputs = unlabelled_inputs(ctx.cfg.classify.data)  # type: ignore[attr-defined]
    if isinstance(inputs, list):
        raise DatasetError("The ssl_image stage needs image inputs; classify.data holds text (use mlm).")
    images = torch.as_tensor(inputs, dtype=torch.float32).reshape(-1, *cfg.encoder.input_shape)
    torch.manual_seed(ctx.seed)
    model = ImagePretrainer(cfg.encoder, cfg.objective, cfg.mask_ratio, cfg.temperature).to(ctx.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    per_epoch = math.ceil(len(images) / cfg.batch_size)
    total = per_epoch * cfg.epochs
    step = _resume(ctx.run, "ssl_image", model, optimizer) if ctx.resume else 0
    generator = torch.Generator().manual_seed(ctx.seed)
    scalars: dict[str, float] = {}
    with MetricLogger(ctx.run.tb_dir("ssl_image")) as metrics:
        while step < total:
            epoch, b = divmod(step, per_epoch)
            order = np.random.default_rng([ctx.seed, epoch]).permutation(len(images))
            batch = images[order[b * cfg.batch_size:(b + 1) * cfg.batch_size]].to(ctx.device)
            generator.manual_seed(ctx.seed * 1_000_003 + step)
            model.train()
            loss, extra = model.loss(batch, generator)
            _set_lr(optimizer, cfg.lr, step, total)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            scalars = {"ssl/loss": loss.item(), **{f"ssl/{k}": v for k, v in extra.items()}}
            if step % 10 == 0 or step == total:
                metrics.log(scalars, step=step)
            if step % cfg.checkpoint_every == 0 or step == total:
                _checkpoint(ctx.run, "ssl_image", step, model, optimizer)
    log.info("ssl_image (%s): %d steps, %s", cfg.objective, step,
             ", ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in scalars.items()))
    out_dir = ctx.run.stage_dir("ssl_image")
    with AtomicDir(out_dir) as tmp:
        model.encoder.cpu().save(tmp)
    return {"outputs": {"encoder": str(out_dir)},
            "metrics": {**{k.split("/")[1]: v for k, v in scalars.items()}, "steps": step,
                        "images": len(images), "objective": cfg.objective, **meter.read()}}
