"""The ``pretrain`` stage: self-supervised causal-LM training on a text corpus.

The objective is the log-likelihood of the data itself -- in rlft's terms, the degenerate reward setup where the
"reward" of a text is its log-probability and no sampling is needed (docs/llm.md). Texts are tokenized, each ended
with EOS, and either kept one per sequence or packed into ``block_size`` blocks; a plain ``transformers.Trainer``
minimises next-token cross-entropy on them. Pretraining always trains every parameter (``tuning`` applies to
``sft`` and ``rl``).

Example::

    pretrain: {data: {source: corpus.txt}, block_size: 128, epochs: 1}
"""

from __future__ import annotations

from typing import Any

from rlft.core.errors import DatasetError
from rlft.llm import evaluate
from rlft.llm.config import PretrainConfig
from rlft.llm.data import corpus_texts
from rlft.llm.trainer import callbacks, finish, load_start, stage_data, train, trainer_kwargs
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import StageResult


def blocks(texts: list[str], tokenizer: Any, block_size: int, pack: bool) -> list[list[int]]:
    """Training sequences: each text tokenized and followed by EOS, then either joined and cut into full
    ``block_size`` blocks (``pack``; the tail is dropped) or cut per text into pieces of at most ``block_size``."""
    docs = [[*ids, tokenizer.eos_token_id] for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    if pack:
        flat = [t for doc in docs for t in doc]
        return [flat[i:i + block_size] for i in range(0, len(flat) - block_size + 1, block_size)]
    return [doc[i:i + block_size] for doc in docs for i in range(0, len(doc), block_size)]


def run(ctx: StageContext[PretrainConfig]) -> StageResult:
    """Pretrain the current model on ``pretrain.data``; evaluate held-out EM before and after."""
    import datasets
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    cfg = ctx.config
    model, tokenizer, _ = load_start(ctx)
    texts = corpus_texts(stage_data(ctx, cfg.data), ctx.seed, what=f"{ctx.name}.data")
    seqs = blocks(texts, tokenizer, cfg.block_size, cfg.pack)
    if not seqs:
        raise DatasetError(f"{ctx.name}.data ('{cfg.data.source}') holds fewer than block_size={cfg.block_size} "
                           "tokens; give a larger corpus or a smaller block_size.")
    before = evaluate.report(ctx, cfg.eval, model, tokenizer, "before", 0)
    args = TrainingArguments(**trainer_kwargs(ctx, lr=cfg.lr, batch_size=cfg.batch_size, max_steps=cfg.max_steps,
                                              epochs=cfg.epochs, save_steps=cfg.save_steps,
                                              logging_steps=cfg.logging_steps, warmup=cfg.warmup_ratio),
                             lr_scheduler_type="cosine")
    trainer = Trainer(model=model, args=args, train_dataset=datasets.Dataset.from_dict({"input_ids": seqs}),
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False), callbacks=callbacks(ctx))
    result = train(trainer, ctx)
    after = evaluate.report(ctx, cfg.eval, model, tokenizer, "after", int(trainer.state.global_step))
    return finish(ctx, model, tokenizer, before, after, {"loss": result["loss"], "steps": trainer.state.global_step,
                                                         "sequences": len(seqs)})
