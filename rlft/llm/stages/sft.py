"""The ``sft`` stage: supervised fine-tuning on prompt/completion demonstrations with TRL's ``SFTTrainer``.

SFT maximises the log-likelihood of a known completion -- the reward-driven loop with reward = log p(target), whose
gradient is exact and needs no sampling. rlft uses this path whenever the target is known (docs/llm.md). Tuning
modes: ``full``; ``freeze`` (embeddings and early blocks frozen); ``lora`` (PEFT adapter, saved beside the merged
model).

Example::

    sft: {data: {source: demos.jsonl, prompt_column: question, completion_column: answer}, epochs: 3}
"""

from __future__ import annotations

from rlft.llm import evaluate
from rlft.llm.config import SFTConfig
from rlft.llm.data import as_chat, load_examples
from rlft.llm.model import count_parameters, freeze_early_layers, peft_config
from rlft.llm.trainer import callbacks, finish, load_start, stage_data, train, trainer_kwargs
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import StageResult


def run(ctx: StageContext[SFTConfig]) -> StageResult:
    """Fine-tune the current model on ``sft.data``; evaluate held-out EM before and after."""
    import trl

    cfg = ctx.config
    data = load_examples(stage_data(ctx, cfg.data), ctx.seed, what=f"{ctx.name}.data")
    data = data.select_columns(["prompt", "completion"])
    model, tokenizer, _ = load_start(ctx)
    data = as_chat(data, tokenizer)  # an instruction model's own chat template renders the demonstrations
    before = evaluate.report(ctx, cfg.eval, model, tokenizer, "before", 0)
    if cfg.tuning.mode == "freeze":
        freeze_early_layers(model, cfg.tuning)
    args = trl.SFTConfig(**trainer_kwargs(ctx, lr=cfg.lr, batch_size=cfg.batch_size, max_steps=cfg.max_steps,
                                      epochs=cfg.epochs, save_steps=cfg.save_steps, logging_steps=cfg.logging_steps),
                     max_length=cfg.max_length, completion_only_loss=cfg.completion_only_loss, packing=False,
                     dataset_num_proc=None)
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                             peft_config=peft_config(cfg.tuning), callbacks=callbacks(ctx))
    counts = count_parameters(trainer.model)
    result = train(trainer, ctx)
    after = evaluate.report(ctx, cfg.eval, trainer.model, tokenizer, "after", int(trainer.state.global_step))
    return finish(ctx, trainer.model, tokenizer, before, after,
                  {**result, "steps": trainer.state.global_step},
                  {f"model/{k}": v for k, v in counts.items()})
