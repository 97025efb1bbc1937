"""The ``ssl_image`` stage: self-supervised image encoder training (rotation, masked pixels or SimCLR), fed to
``classify``.

Example::

    stages: [ssl_image, classify]
    classify: {backbone: previous, data: {source: digits, label_fraction: 0.1}}
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rlft.core.errors import DatasetError
from rlft.core.metrics import log
from rlft.core.rundir import AtomicDir
from rlft.core.runtime import ResourceMeter
from rlft.encoder.config import SSLImageConfig
from rlft.encoder.data import unlabelled_inputs
from rlft.encoder.loop import resume, save, set_lr
from rlft.encoder.objectives import ImagePretrainer
from rlft.pipeline.artifacts import Outputs
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import Headline, StageResult


def run(ctx: StageContext[SSLImageConfig]) -> StageResult:
    """Self-supervised image encoder training; writes an rlft encoder folder to ``DIR/stages/<stage>``."""
    cfg = ctx.config
    meter = ResourceMeter(ctx.device)
    inputs = unlabelled_inputs(cfg.data)
    if isinstance(inputs, list):
        raise DatasetError(f"The {ctx.name} stage needs image inputs; {ctx.name}.data holds text (use mlm).")
    images = torch.as_tensor(inputs, dtype=torch.float32).reshape(-1, *cfg.encoder.input_shape)
    torch.manual_seed(ctx.seed)
    model = ImagePretrainer(cfg.encoder, cfg.objective, cfg.mask_ratio, cfg.temperature).to(ctx.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    per_epoch = math.ceil(len(images) / cfg.batch_size)
    total = per_epoch * cfg.epochs
    step = resume(ctx.checkpointer(), model, optimizer) if ctx.resume else 0
    generator = torch.Generator().manual_seed(ctx.seed)
    scalars: dict[str, float] = {}
    with ctx.metrics() as metrics:
        while step < total:
            epoch, b = divmod(step, per_epoch)
            order = np.random.default_rng([ctx.seed, epoch]).permutation(len(images))
            batch = images[order[b * cfg.batch_size:(b + 1) * cfg.batch_size]].to(ctx.device)
            generator.manual_seed(ctx.seed * 1_000_003 + step)
            model.train()
            loss, extra = model.loss(batch, generator)
            set_lr(optimizer, step, total)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            scalars = {"ssl/loss": loss.item(), **{f"ssl/{k}": v for k, v in extra.items()}}
            if step % 10 == 0 or step == total:
                metrics.log(scalars, step=step)
            if step % cfg.checkpoint_every == 0 or step == total:
                save(ctx.checkpointer(), step, model, optimizer)
    log.info("%s (%s): %d steps, %s", ctx.name, cfg.objective, step,
             ", ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in scalars.items()))
    out_dir = ctx.output_dir()
    with AtomicDir(out_dir) as tmp:
        model.encoder.cpu().save(tmp)
    return StageResult(outputs=Outputs(encoder=str(out_dir)),
                       metrics={**{k.split("/")[1]: v for k, v in scalars.items()}, "steps": step,
                                "images": len(images), "objective": cfg.objective, **meter.read()},
                       headline=Headline("ssl_loss", scalars.get("ssl/loss", float("nan")), higher_is_better=False))
