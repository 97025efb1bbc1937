"""Plumbing shared by the LLM stages: the starting model, Hugging Face trainer arguments, checkpoints, the result.

* The model a stage starts from is the newest LLM an earlier stage produced (``ctx.artifacts.model``), else
  ``model.name`` from the shared block.
* Trainer arguments point TensorBoard at ``DIR/tb/<stage>`` (transformers 5 reads ``TENSORBOARD_LOGGING_DIR``). The
  trainer writes ``checkpoint-N`` into a staging folder; :class:`AdoptCheckpoints` moves each finished one into the
  stage's checkpointer as ``DIR/checkpoints/<stage>/<step>/`` (a rename, so a kill mid-write never leaves a
  checkpoint that cannot be resumed), keeping the newest ``keep_checkpoints``. ``--resume`` continues from the newest.
* A stage ends by saving its model to ``DIR/stages/<stage>`` (HF folder + ``agent.json``), which the pipeline copies
  to ``DIR/final`` when it is the last model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import TrainerState

from rlft.core.checkpoint import Checkpointer
from rlft.core.errors import CheckpointError
from rlft.core.metrics import log
from rlft.core.rundir import load_safetensors, read_json
from rlft.core.runtime import set_threads
from rlft.llm.catalog import resolve_model
from rlft.llm.config import LLMDataConfig
from rlft.llm.model import load_model, load_tokenizer, save_model
from rlft.pipeline.artifacts import Outputs
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import Headline, StageResult


def starting_point(ctx: StageContext[Any]) -> str:
    """The folder or hub id this stage's model starts from (a named model, e.g. `smollm2-135m-instruct`: its
    converted folder in the user's cache, built on first use; see :mod:`rlft.llm.catalog`)."""
    return str(ctx.artifacts.model or resolve_model(ctx.model.name))


def load_start(ctx: StageContext[Any]) -> tuple[Any, Any, str]:
    """(model, tokenizer, source) for the stage; an unknown model is a CheckpointError naming it."""
    set_threads(ctx.model.num_threads)
    source = starting_point(ctx)
    what = "the previous stage's model" if ctx.artifacts.model else "model.name"
    tokenizer = load_tokenizer(source, what)
    model = load_model(source, ctx.model.dtype, ctx.model.trust_remote_code, what)
    return model.to(ctx.device), tokenizer, source  # the held-out evaluation before training runs there too


def stage_data(ctx: StageContext[Any], data: LLMDataConfig) -> LLMDataConfig:
    """``data`` with its source resolved: a text source an earlier stage produced (``game_text``), else as given."""
    return dataclasses.replace(data, source=ctx.artifacts.data_source(data.source))


def staging_dir(ctx: StageContext[Any]) -> Path:
    """Where the Hugging Face trainer writes ``checkpoint-N`` before it is adopted (``checkpoints/<stage>/.hf``)."""
    return ctx.checkpointer().root / ".hf"


class AdoptCheckpoints(TrainerCallback):
    """Moves each ``checkpoint-N`` the trainer finished writing into the stage's :class:`Checkpointer`."""

    def __init__(self, checkpoints: Checkpointer, staging: Path) -> None:
        self.checkpoints = checkpoints
        self.staging = staging

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        written = self.staging / f"checkpoint-{state.global_step}"
        if written.is_dir() and state.is_world_process_zero:
            self.checkpoints.adopt(written, int(state.global_step))
        return control


def trainer_kwargs(ctx: StageContext[Any], *, lr: float, batch_size: int, max_steps: int = -1, epochs: float = 1.0,
                   save_steps: int = 100, logging_steps: int = 10, warmup: float = 0.0) -> dict[str, Any]:
    """Keyword arguments common to every trainer config (TrainingArguments, SFTConfig, GRPOConfig, RLOOConfig)."""
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(ctx.run.tb_dir(ctx.name))
    shutil.rmtree(staging_dir(ctx), ignore_errors=True)  # a half-written checkpoint-N of a killed run is not resumable
    return {
        "output_dir": str(staging_dir(ctx)),
        "learning_rate": lr,
        "per_device_train_batch_size": batch_size,
        "max_steps": max_steps,
        "num_train_epochs": epochs,
        "warmup_steps": warmup,
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": None,  # the checkpointer keeps the newest `keep_checkpoints`
        "logging_steps": logging_steps,
        "report_to": ["tensorboard"],
        "seed": ctx.seed,
        "data_seed": ctx.seed,
        "use_cpu": ctx.device == "cpu",
        "disable_tqdm": not ctx.progress,
        "activation_checkpointing": False,
        "dataloader_num_workers": 0,
    }


def callbacks(ctx: StageContext[Any]) -> list[Any]:
    """The trainer callbacks every LLM stage adds (checkpoint adoption)."""
    return [AdoptCheckpoints(ctx.checkpointer(), staging_dir(ctx))]


def train(trainer: Any, ctx: StageContext[Any]) -> dict[str, float]:
    """``trainer.train()``, resuming from the stage's newest checkpoint; returns ``{"loss", "runtime"}``.

    A run killed after the trainer's last checkpoint but before the stage finished resumes from a checkpoint at
    ``max_steps``; the Hugging Face trainer would take one more step from there, so the weights are loaded instead.
    """
    checkpoint = resume_from(ctx)
    if checkpoint is not None:
        state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
        if state.max_steps > 0 and state.global_step >= state.max_steps:
            trainer._load_from_checkpoint(checkpoint)  # private HF API: load weights (or PEFT adapters) only
            trainer.state = state
            losses = [e["train_loss"] for e in state.log_history if "train_loss" in e]
            return {"loss": float(losses[-1]) if losses else float("nan"), "runtime": 0.0}
    result = trainer.train(resume_from_checkpoint=checkpoint)
    return {"loss": float(result.training_loss), "runtime": float(result.metrics["train_runtime"])}


def resume_from(ctx: StageContext[Any]) -> str | None:
    """The newest checkpoint of this stage when resuming (None: start fresh)."""
    last = ctx.checkpointer().newest_readable(_read_hf_checkpoint) if ctx.resume else None
    if last is not None:
        log.info("%s: resuming from checkpoint %s", ctx.name, last.name)
    return str(last) if last is not None else None


def _read_hf_checkpoint(folder: Path) -> None:
    """A Hugging Face checkpoint is readable: its trainer state parses and its weights load."""
    read_json(folder / "trainer_state.json", "trainer state")
    weights = [folder / n for n in ("model.safetensors", "adapter_model.safetensors") if (folder / n).is_file()]
    if not weights:
        raise CheckpointError(f"The checkpoint '{folder}' holds no model weights (model.safetensors).")
    load_safetensors(weights[0], "checkpoint weights")


def _start_meta(ctx: StageContext[Any]) -> dict[str, Any]:
    """``agent.json`` of the folder this stage started from (empty for a hub id or a plain HF folder)."""
    path = Path(starting_point(ctx)) / "agent.json"
    try:
        meta = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def finish(ctx: StageContext[Any], model: Any, tokenizer: Any, before: dict[str, float], after: dict[str, float],
           train: dict[str, Any], extra: dict[str, Any] | None = None) -> StageResult:
    """Save the stage's model to ``DIR/stages/<stage>`` and build the stage result."""
    meta: dict[str, Any] = {"stage": ctx.name}
    env = (ctx.artifacts.text.env if ctx.artifacts.text else "") or _start_meta(ctx).get("env")
    if env:  # an LLM trained on a game's text: load_agent gives a game-playing agent
        meta["env"] = env
    folder = str(save_model(model, tokenizer, ctx.output_dir(), meta))
    metrics: dict[str, Any] = {f"eval/{k}": v for k, v in after.items()}
    metrics.update({f"eval_before/{k}": v for k, v in before.items()})
    metrics.update({f"train/{k}": v for k, v in train.items() if isinstance(v, int | float)})
    metrics.update(extra or {})
    return StageResult(outputs=Outputs(model=folder, agent=folder if env else None), metrics=metrics,
                       headline=llm_headline(after))


def llm_headline(figures: dict[str, float]) -> Headline | None:
    """Held-out greedy exact match (None when the stage did not evaluate)."""
    return Headline("greedy_em", float(figures["greedy_em"])) if "greedy_em" in figures else None
