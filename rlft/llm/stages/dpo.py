"""The ``dpo`` stage: Direct Preference Optimisation with TRL's ``DPOTrainer`` -- preferences without a reward model.

DPO raises the log-probability ratio (policy over reference) of each chosen completion against its rejected one:
``-log sigmoid(beta * (log pi/ref(chosen) - log pi/ref(rejected)))`` for ``loss_type: sigmoid``; ``beta`` is the
implicit KL leash toward the reference. The reference is the starting model: TRL reloads a frozen copy of it for
``full`` and ``freeze`` tuning, and switches the adapter off for ``lora``. Held-out exact match before and after, as
every LLM training stage; the model is saved like ``sft``'s (``DIR/stages/<stage>``, merged when LoRA).

Example::

    dpo: {data: {source: label}, beta: 0.1, loss_type: sigmoid, epochs: 2, tuning: {mode: lora}}
"""

from __future__ import annotations

from rlft.llm import evaluate
from rlft.llm.config import DPOConfig
from rlft.llm.model import check_lora_targets, count_parameters, freeze_early_layers, peft_config
from rlft.llm.stages.reward_model import pairs_of
from rlft.llm.trainer import callbacks, finish, load_start, train, trainer_kwargs
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import StageResult


def run(ctx: StageContext[DPOConfig]) -> StageResult:
    """DPO on the preference pairs from the current model; held-out EM before and after."""
    import trl

    cfg = ctx.config
    pairs = pairs_of(ctx, cfg.data, f"{ctx.name}.data")
    model, tokenizer, _ = load_start(ctx)
    lora = peft_config(cfg.tuning)
    if lora is not None:
        check_lora_targets(model, cfg.tuning, ctx.name)
    before = evaluate.report(ctx, cfg.eval, model, tokenizer, "before", 0)
    if cfg.tuning.mode == "freeze":
        freeze_early_layers(model, cfg.tuning)
    args = trl.DPOConfig(**trainer_kwargs(ctx, lr=cfg.lr, batch_size=cfg.batch_size, max_steps=cfg.max_steps,
                                          epochs=cfg.epochs, save_steps=cfg.save_steps,
                                          logging_steps=cfg.logging_steps),
                         beta=cfg.beta, loss_type=[cfg.loss_type], label_smoothing=cfg.label_smoothing,
                         max_length=cfg.max_length, dataset_num_proc=None)
    trainer = trl.DPOTrainer(model=model, args=args, train_dataset=pairs, processing_class=tokenizer,
                             peft_config=lora, callbacks=callbacks(ctx))
    counts = count_parameters(trainer.model)
    result = train(trainer, ctx)
    after = evaluate.report(ctx, cfg.eval, trainer.model, tokenizer, "after", int(trainer.state.global_step))
    return finish(ctx, trainer.model, tokenizer, before, after,
                  {**result, "steps": trainer.state.global_step, "pairs": len(pairs)},
                  {f"model/{k}": v for k, v in counts.items()})
