"""The ``mlm`` stage: BERT-style masked-language-model training of a text encoder, fed to ``classify``.

It learns from the *inputs* of its ``data`` (the labels are thrown away, the held-out split is never seen) and
hands its encoder to ``classify`` (``classify.backbone: previous``). Works for any Hugging Face encoder with a
masked-LM head class (a missing MLM head, as in sentence-transformers checkpoints, is initialised fresh).

Example::

    stages: [mlm, classify]
    mlm: {data: *text}
    classify: {backbone: previous, data: *text}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from rlft.core.errors import ConfigError, DatasetError
from rlft.core.metrics import log
from rlft.core.rundir import AtomicDir
from rlft.core.runtime import ResourceMeter
from rlft.encoder.config import MLMConfig
from rlft.encoder.data import unlabelled_inputs
from rlft.encoder.loop import resume, save, set_lr
from rlft.encoder.models import MINILM_ALIASES, packaged_minilm
from rlft.encoder.objectives import mask_tokens
from rlft.pipeline.artifacts import Outputs
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import Headline, StageResult


def run(ctx: StageContext[MLMConfig]) -> StageResult:
    """Masked-language-model training; writes an HF encoder folder to ``DIR/stages/<stage>``."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    cfg = ctx.config
    meter = ResourceMeter(ctx.device)
    texts = unlabelled_inputs(cfg.data)
    if not isinstance(texts, list):
        raise DatasetError(f"The {ctx.name} stage needs text inputs; {ctx.name}.data holds numbers (use ssl_image).")
    path = str(packaged_minilm()) if cfg.backbone.lower() in MINILM_ALIASES else cfg.backbone
    if not Path(path).exists() and path.startswith(("/", ".")):
        raise ConfigError(f"{ctx.name}.backbone '{cfg.backbone}' does not exist.")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report lists the MLM head a sentence encoder lacks: expected here
    try:
        model = AutoModelForMaskedLM.from_pretrained(path).to(ctx.device)
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(path)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    step = resume(ctx.checkpointer(), model, optimizer) if ctx.resume else 0
    generator = torch.Generator().manual_seed(ctx.seed)
    per_epoch = max(1, len(texts) // cfg.batch_size)
    loss_value = float("nan")
    with ctx.metrics() as metrics:
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
            loss = masked_lm_loss(model, ids.to(ctx.device), batch["attention_mask"].to(ctx.device),
                                  labels.to(ctx.device))
            set_lr(optimizer, step, cfg.steps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            loss_value = loss.item()
            if step % 10 == 0 or step == cfg.steps:
                metrics.log({"mlm/loss": loss_value}, step=step)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save(ctx.checkpointer(), step, model, optimizer)
    log.info("%s: %d steps, final masked-token loss %.3f", ctx.name, step, loss_value)
    out_dir = ctx.output_dir()
    with AtomicDir(out_dir) as tmp:
        model.base_model.save_pretrained(str(tmp))  # the encoder without the MLM head
        tokenizer.save_pretrained(str(tmp))
    return StageResult(outputs=Outputs(encoder=str(out_dir)),
                       metrics={"loss": loss_value, "steps": step, "texts": len(texts), **meter.read()},
                       headline=Headline("mlm_loss", loss_value, higher_is_better=False))


def masked_lm_loss(model: nn.Module, ids: torch.Tensor, attention_mask: torch.Tensor,
                   labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy at the chosen positions (``labels != -100``), as ``model(..., labels=labels).loss``.

    For BERT-style (``cls``) and RoBERTa-style (``lm_head``) models the vocabulary projection runs only at the
    chosen ~15% of the positions, not at every token: on a CPU that is about half of a step's time saved.
    """
    head = getattr(model, "cls", None) or getattr(model, "lm_head", None)
    if head is None:
        return model(input_ids=ids, attention_mask=attention_mask, labels=labels).loss  # type: ignore[no-any-return]
    hidden = model.base_model(input_ids=ids, attention_mask=attention_mask).last_hidden_state  # type: ignore[operator]
    chosen = labels != -100
    return nn.functional.cross_entropy(head(hidden[chosen]), labels[chosen])
