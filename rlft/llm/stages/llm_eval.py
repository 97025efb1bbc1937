"""The ``llm_eval`` stage: held-out exact match (greedy and sampled) and reward of the run's current model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlft.llm.evaluate import report

if TYPE_CHECKING:
    from rlft.pipeline.runner import StageContext


def run(ctx: StageContext) -> dict[str, Any]:
    """The ``llm_eval`` stage: evaluate the run's current model (greedy and sampled EM, held-out reward)."""
    from rlft.llm.model import load_model, load_tokenizer
    from rlft.llm.rewards import build_rewards
    from rlft.llm.trainer import set_threads

    set_threads(ctx)
    source = ctx.outputs.get("model") or ctx.cfg.model.name
    model = load_model(source, ctx.cfg.model.dtype, ctx.cfg.model.trust_remote_code)
    tokenizer = load_tokenizer(source)
    specs = [s for s in ctx.cfg.rl.rewards if s.fn]  # reward models score inside the trainer only
    rewards = None
    if "rl" in ctx.cfg.stages and specs:
        funcs, weights, _ = build_rewards(specs)
        rewards = (funcs, weights)
    figures = report(ctx, model.to(ctx.device), tokenizer, "figures", 0, rewards)
    return {"outputs": {}, "metrics": {f"eval/{k}": v for k, v in figures.items()}}
