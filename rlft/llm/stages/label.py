"""The ``label`` stage: AI feedback -- preference pairs sampled from the current model and ordered by a judge.

For every prompt of ``label.prompts`` the run's current LLM samples ``samples`` completions (two by default); the
judge (a reward function such as ``exact_match``, or a reward model folder) scores them, and every two different
ones make a pair whose higher-scored side is ``chosen`` (ties and equal completions are dropped); a ``flip`` share of
the pairs is reversed to mimic people who disagree. The held-out ``test_prompts`` are labelled the same way but never
flipped, so a reward model's held-out pairwise accuracy is measured against the judge's true ordering. People give
the same feedback with ``rlft label`` (docs/llm.md).

Outputs, as data sources later stages name: ``<stage>`` (``DIR/data/<stage>/train.jsonl``) and ``<stage>:test``.

Example::

    stages: [sft, label, reward_model, rl]
    label: {prompts: {source: addition, size: 4000}, judge: {fn: exact_match}, flip: 0.2, samples: 4}
"""

from __future__ import annotations

import dataclasses
import shutil

from rlft.core.metrics import log
from rlft.llm.config import LabelConfig
from rlft.llm.data import load_examples
from rlft.llm.preferences import Judge, label_with_judge
from rlft.llm.trainer import load_start, stage_data
from rlft.pipeline.artifacts import Outputs, TextData
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import StageResult


def run(ctx: StageContext[LabelConfig]) -> StageResult:
    """Label the prompts (and the held-out prompts) with the judge; write the pairs as data sources."""
    cfg = ctx.config
    model, tokenizer, _ = load_start(ctx)
    judge = Judge(cfg.judge, ctx.device)
    folder = ctx.data_dir()
    shutil.rmtree(folder, ignore_errors=True)  # a stage killed half-way labels again from the start (same seeds)
    sets = [("train", cfg.prompts, cfg.flip)] + ([("test", cfg.test_prompts, 0.0)] if cfg.held_out else [])
    metrics: dict[str, float] = {}
    sources: dict[str, str] = {}
    for split, prompts_cfg, flip in sets:
        prompts = load_examples(stage_data(ctx, prompts_cfg), ctx.seed, need_completion=False,
                                what=f"{ctx.name}.{'prompts' if split == 'train' else 'test_prompts'}")
        out = folder / f"{split}.jsonl"
        counts = label_with_judge(model, tokenizer, prompts, judge, out, flip=flip, seed=ctx.seed + (split == "test"),
                                  samples=cfg.samples, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                                  batch_size=cfg.batch_size)
        log.info("%s: %s prompts -> %d pairs (%d ties and %d equal or repeated pairs dropped, %d flipped) -> %s",
                 ctx.name, split, counts["pairs"], counts["ties"], counts["same"], counts["flipped"], out)
        metrics.update({f"label/{split}_{k}": v for k, v in counts.items() if k != "skipped_answered"})
        if counts["pairs"]:
            sources[ctx.name if split == "train" else f"{ctx.name}:test"] = str(out)
    previous = ctx.artifacts.text or TextData(env="")
    text = dataclasses.replace(previous, sources={**previous.sources, **sources})  # earlier sources stay named
    with ctx.metrics() as m:
        m.log(metrics, step=0)
    return StageResult(outputs=Outputs(text=text), metrics=metrics)
