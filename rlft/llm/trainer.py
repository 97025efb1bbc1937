"""Plumbing shared by the LLM stages: the starting model, trainer arguments, resume, and the stage result.

* The model a stage starts from is the previous LLM stage's output (``ctx.outputs["model"]``), else ``model.name``.
* Trainer arguments point TensorBoard at ``DIR/tb/<stage>`` (transformers 5 reads ``TENSORBOARD_LOGGING_DIR``) and
  checkpoints at ``DIR/checkpoints/<stage>/checkpoint-<step>``; a resumed run continues from the newest one.
* A stage ends by saving its model to ``DIR/stages/<stage>`` (HF folder + ``agent.json``), which the pipeline copies
  to ``DIR/final`` when it is the last model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlft.core.metrics import log
from rlft.llm.model import load_model, load_tokenizer, save_model

if TYPE_CHECKING:
    from rlft.pipeline.runner import StageContext


def starting_point(ctx: StageContext) -> str:
    """The folder or hub id this stage's model starts from."""
    return str(ctx.outputs.get("model") or ctx.cfg.model.name)


def load_start(ctx: StageContext) -> tuple[Any, Any, str]:
    """(model, tokenizer, source) for the stage; an unknown model is a CheckpointError naming it."""
    set_threads(ctx)
    source = starting_point(ctx)
    what = "the previous stage's model" if ctx.outputs.get("model") else "model.name"
    tokenizer = load_tokenizer(source, what)
    model = load_model(source, ctx.cfg.model.dtype, ctx.cfg.model.trust_remote_code, what)
    return model.to(ctx.device), tokenizer, source  # the held-out evaluation before training runs there too


def set_threads(ctx: StageContext) -> None:
    """Apply ``model.num_threads`` (tiny models on a shared CPU run fastest single-threaded)."""
    if ctx.cfg.model.num_threads:
        import torch

        torch.set_num_threads(ctx.cfg.model.num_threads)


def output_dir(ctx: StageContext) -> Path:
    """Where the trainer writes its checkpoints: ``DIR/checkpoints/<stage>``."""
    return ctx.run.checkpoints_dir / ctx.stage


def trainer_kwargs(ctx: StageContext, *, lr: float, batch_size: int, max_steps: int = -1, epochs: float = 1.0,
                   save_steps: int = 100, logging_steps: int = 10, warmup: float = 0.0) -> dict[str, Any]:
    """Keyword arguments common to every trainer config (TrainingArguments, SFTConfig, GRPOConfig, RLOOConfig)."""
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(ctx.run.tb_dir(ctx.stage))
    return {
        "output_dir": str(output_dir(ctx)),
        "learning_rate": lr,
        "per_device_train_batch_size": batch_size,
        "max_steps": max_steps,
        "num_train_epochs": epochs,
        "warmup_steps": warmup,
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": 2,
        "logging_steps": logging_steps,
        "report_to": ["tensorboard"],
        "seed": ctx.seed,
        "data_seed": ctx.seed,
        "use_cpu": ctx.device == "cpu",
        "disable_tqdm": not ctx.progress,
        "activation_checkpointing": False,
        "dataloader_num_workers": 0,
    }


def resume_from(ctx: StageContext) -> str | None:
    """The newest trainer checkpoint of this stage when resuming (None: start fresh)."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = output_dir(ctx)
    if not ctx.resume or not folder.is_dir():
        return None
    last = get_last_checkpoint(str(folder))
    if last is not None:
        log.info("%s: resuming from %s", ctx.stage, last)
    return last


def _start_meta(ctx: StageContext) -> dict[str, Any]:
    """``agent.json`` of the folder this stage started from (empty for a hub id or a plain HF folder)."""
    import json

    path = Path(starting_point(ctx)) / "agent.json"
    try:
        meta = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def finish(ctx: StageContext, model: Any, tokenizer: Any, before: dict[str, float], after: dict[str, float],
           train: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save the stage's model to ``DIR/stages/<stage>`` and build the stage result for ``run.json``."""
    meta: dict[str, Any] = {"stage": ctx.stage}
    env = ctx.outputs.get("text_env") or _start_meta(ctx).get("env")
    if env:  # an LLM trained on a game's text: load_agent gives a game-playing agent
        meta["env"] = env
    folder = save_model(model, tokenizer, ctx.run.stage_dir(ctx.stage), meta)
    metrics: dict[str, Any] = {f"eval/{k}": v for k, v in after.items()}
    metrics.update({f"eval_before/{k}": v for k, v in before.items()})
    metrics.update({f"train/{k}": v for k, v in train.items() if isinstance(v, int | float)})
    metrics.update(extra or {})
    return {"outputs": {"model": str(folder)}, "metrics": metrics}
