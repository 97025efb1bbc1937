"""The ``reward_model`` stage: a reward model fitted to preference pairs with TRL's ``RewardTrainer``.

A sequence-classification head with one output is put on the trunk of the run's current LLM (or ``base``), and the
Bradley-Terry loss ``-log sigmoid(r(chosen) - r(rejected))`` is minimised over the pairs. Texts are tokenized here as
``prompt + completion`` with no EOS appended -- exactly the text the ``rl`` stage's GRPO scores for a sampled
completion -- so the model is trained on what it will judge. Held-out pairwise accuracy (the share of held-out pairs
whose chosen side scores higher) is measured before and after. The model is saved as a plain Hugging Face folder in
``DIR/stages/<stage>`` (``AutoModelForSequenceClassification.from_pretrained`` loads it); a later ``rl`` stage uses it
with ``rewards: [{model: <stage>}]``.

Example::

    reward_model: {data: {source: label}, eval: {data: {source: "label:test"}}, epochs: 2, tuning: {mode: lora}}
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from rlft.core.metrics import log
from rlft.core.rundir import AtomicDir, write_json
from rlft.core.runtime import set_threads
from rlft.core.tuning import apply_tuning
from rlft.llm.config import PreferenceDataConfig, RewardModelConfig
from rlft.llm.model import check_lora_targets, count_parameters, peft_config
from rlft.llm.preferences import load_preferences, pair_texts, pairwise_accuracy
from rlft.llm.rewards import load_reward_model
from rlft.llm.trainer import callbacks, starting_point, train, trainer_kwargs
from rlft.pipeline.artifacts import Outputs
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import Headline, StageResult


def pairs_of(ctx: StageContext[Any], data: PreferenceDataConfig, what: str) -> Any:
    """The preference pairs ``data`` names (a `label` stage's output by its name, or a file / folder)."""
    return load_preferences(dataclasses.replace(data, source=ctx.artifacts.data_source(data.source)), what)


def tokenized(pairs: Any, tokenizer: Any, max_length: int) -> Any:
    """TRL's processed format (``chosen_ids`` / ``rejected_ids``), without EOS, longer pairs dropped."""

    def ids(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]  # type: ignore[no-any-return]

    chosen = ids([pair_texts(p, c) for p, c in zip(pairs["prompt"], pairs["chosen"])])
    rejected = ids([pair_texts(p, r) for p, r in zip(pairs["prompt"], pairs["rejected"])])
    import datasets

    keep = [i for i in range(len(chosen)) if max(len(chosen[i]), len(rejected[i])) <= max_length]
    return datasets.Dataset.from_dict({"chosen_ids": [chosen[i] for i in keep],
                                       "rejected_ids": [rejected[i] for i in keep]})


def freeze_trunk(model: Any, ctx: StageContext[RewardModelConfig]) -> None:
    """``freeze`` mode: embeddings and early blocks frozen; the last blocks, final norm and score head train."""
    base = model.base_model
    groups = [[model.get_input_embeddings()], *[[block] for block in base.layers]]
    apply_tuning(model, ctx.config.tuning, groups, [base.norm, model.score])


def save_reward_model(model: Any, tokenizer: Any, folder: Path, meta: dict[str, Any]) -> Path:
    """A plain HF folder (LoRA merged in, adapter kept in ``adapter/``) plus ``reward_model.json``."""
    with AtomicDir(folder) as tmp:
        export = model
        if hasattr(model, "merge_and_unload"):
            model.save_pretrained(tmp / "adapter")
            export = copy.deepcopy(model).merge_and_unload()
        export.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "reward_model.json", {"kind": "reward_model", "format": "huggingface", **meta})
    return folder


def run(ctx: StageContext[RewardModelConfig]) -> StageResult:
    """Fit the reward model; held-out pairwise accuracy before and after."""
    from trl import RewardConfig, RewardTrainer

    cfg = ctx.config
    set_threads(ctx.model.num_threads)
    source = cfg.base or starting_point(ctx)
    train_pairs = pairs_of(ctx, cfg.data, f"{ctx.name}.data")
    held_out = pairs_of(ctx, cfg.eval.data, f"{ctx.name}.eval.data") if cfg.eval.enabled else None
    import torch

    torch.manual_seed(ctx.seed)  # the new score head's initialisation
    model, tokenizer = load_reward_model(source, what=f"{ctx.name}.base" if cfg.base else "the reward model's base")
    model.to(ctx.device)
    if cfg.tuning.mode == "freeze":
        freeze_trunk(model, ctx)
    lora = peft_config(cfg.tuning, task_type="SEQ_CLS")
    if lora is not None:
        check_lora_targets(model, cfg.tuning, ctx.name)
    data = tokenized(train_pairs, tokenizer, cfg.max_length)
    before = _accuracy(ctx, model, tokenizer, held_out, "before", 0)
    args = RewardConfig(**trainer_kwargs(ctx, lr=cfg.lr, batch_size=cfg.batch_size, max_steps=cfg.max_steps,
                                         epochs=cfg.epochs, save_steps=cfg.save_steps, logging_steps=cfg.logging_steps),
                        max_length=cfg.max_length, dataset_num_proc=None,
                        center_rewards_coefficient=cfg.center_rewards or None,
                        # TRL's configs default to bf16 autocast, on CPU too: scores of bf16 resolution, a held-out
                        # figure that differs from the saved float32 model's, and a worse fit. Train in float32.
                        bf16=False)
    trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                            peft_config=lora, callbacks=callbacks(ctx))
    counts = count_parameters(trainer.model)
    result = train(trainer, ctx)
    after = _accuracy(ctx, trainer.model, tokenizer, held_out, "after", int(trainer.state.global_step))
    folder = save_reward_model(trainer.model, tokenizer, ctx.output_dir(),
                               {"stage": ctx.name, "base": source, "eval": after})
    metrics: dict[str, Any] = {f"eval/{k}": v for k, v in after.items()}
    metrics.update({f"eval_before/{k}": v for k, v in before.items()})
    metrics.update({f"train/{k}": v for k, v in result.items()})
    metrics.update({"train/steps": trainer.state.global_step, "train/pairs": len(data)})
    metrics.update({f"model/{k}": v for k, v in counts.items()})
    headline = Headline("pairwise_accuracy", after["accuracy"]) if after else None
    return StageResult(outputs=Outputs(reward_model=str(folder)), metrics=metrics, headline=headline)


def _accuracy(ctx: StageContext[RewardModelConfig], model: Any, tokenizer: Any, pairs: Any, when: str,
              step: int) -> dict[str, float]:
    """Held-out pairwise accuracy, logged to ``eval/*`` of the stage's TensorBoard (empty when disabled)."""
    if pairs is None:
        return {}
    figures = pairwise_accuracy(model, tokenizer, pairs, ctx.config.eval.batch_size)
    with ctx.metrics() as m:
        m.log({f"eval/{k}": v for k, v in figures.items()}, step=step)
    log.info("%s: held-out pairwise accuracy %s: %.3f (%d pairs, mean margin %.3f)", ctx.name, when,
             figures["accuracy"], figures["pairs"], figures["margin"])
    return figures
