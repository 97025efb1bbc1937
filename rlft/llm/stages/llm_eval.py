"""The ``llm_eval`` stage: held-out exact match (greedy and sampled) and reward of the run's current model.

Example::

    stages: [sft, llm_eval]
    llm_eval: {data: {source: addition, split: test, size: 200}, rewards: [{fn: exact_match}]}
"""

from __future__ import annotations

from rlft.core.runtime import set_threads
from rlft.llm.config import LLMEvalConfig
from rlft.llm.evaluate import report
from rlft.llm.rewards import build_rewards
from rlft.llm.trainer import llm_headline, load_start
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import StageResult


def run(ctx: StageContext[LLMEvalConfig]) -> StageResult:
    """Evaluate the run's current model (greedy and sampled EM, and the reward of ``config.rewards``)."""
    set_threads(ctx.model.num_threads)
    model, tokenizer, _ = load_start(ctx)
    specs = [s for s in ctx.config.rewards if s.fn]  # reward models score inside the trainer only
    rewards = None
    if specs:
        funcs, weights, _ = build_rewards(specs)
        rewards = (funcs, weights)
    figures = report(ctx, ctx.config, model, tokenizer, "figures", 0, rewards, always=True)
    return StageResult(metrics={f"eval/{k}": v for k, v in figures.items()}, headline=llm_headline(figures))
