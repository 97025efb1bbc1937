"""Held-out evaluation of a causal LM: exact match (greedy and sampled) and the held-out reward.

:func:`evaluate_llm` decodes every held-out prompt greedily and once more by sampling (temperature
``cfg.temperature``, a fixed seed so before/after figures compare like with like), scores exact match against the
reference completion, and -- given reward functions -- the weighted reward of the sampled completions. Every LLM
training stage calls it before and after training; the ``llm_eval`` stage calls it on the run's final model.

Example::

    figures = evaluate_llm(model, tokenizer, LLMEvalConfig())
    figures["greedy_em"], figures["sampled_em"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from rlft.llm.config import LLMEvalConfig
from rlft.llm.data import load_examples
from rlft.metrics import log

if TYPE_CHECKING:
    from rlft.pipeline import StageContext


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: list[str], *, max_new_tokens: int = 16, sample: bool = False,
             temperature: float = 1.0, batch_size: int = 64, seed: int | None = None) -> list[str]:
    """Complete ``prompts`` (greedy, or sampled at ``temperature``); returns the decoded new text only."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator_state = torch.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    outs: list[str] = []
    tokenizer.padding_side = "left"
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        kwargs: dict[str, Any] = {"do_sample": sample, "max_new_tokens": max_new_tokens,
                                  "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
        if sample:
            kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
        else:
            kwargs.update(temperature=None, top_k=None, top_p=None)
        ids = model.generate(**batch, **kwargs)
        new = ids[:, batch["input_ids"].shape[1]:]
        outs += tokenizer.batch_decode(new, skip_special_tokens=True)
    if seed is not None:
        torch.set_rng_state(generator_state)
    model.train(was_training)
    return outs


def evaluate_llm(model: Any, tokenizer: Any, cfg: LLMEvalConfig, rewards: tuple[list[Any], list[float]] | None = None,
                 examples: Any = None) -> dict[str, float]:
    """``greedy_em``, ``sampled_em`` (and ``reward`` given reward functions) on the held-out prompts."""
    from rlft.llm.rewards import combined_reward

    ds = examples if examples is not None else load_examples(cfg.data, what="llm_eval.data")
    prompts = [str(p) for p in ds["prompt"]]
    refs = [str(c).strip() for c in ds["answer" if "answer" in ds.column_names else "completion"]]
    greedy = generate(model, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)
    sampled = generate(model, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens, sample=True,
                       temperature=cfg.temperature, batch_size=cfg.batch_size, seed=cfg.seed)
    figures = {
        "greedy_em": sum(g.strip() == r for g, r in zip(greedy, refs)) / len(refs),
        "sampled_em": sum(s.strip() == r for s, r in zip(sampled, refs)) / len(refs),
        "mean_length": sum(len(s) for s in sampled) / len(sampled),
        "prompts": len(prompts),
    }
    if rewards is not None:
        columns = {c: list(ds[c]) for c in ds.column_names if c != "prompt"}
        scores = combined_reward(rewards[0], rewards[1], prompts, sampled, **columns)
        figures["reward"] = sum(scores) / len(scores)
    return figures


def report(ctx: StageContext, model: Any, tokenizer: Any, when: str, step: int,
           rewards: tuple[list[Any], list[float]] | None = None) -> dict[str, float]:
    """Evaluate on the held-out prompts, log ``eval/*`` to the stage's TensorBoard and print one line."""
    cfg = ctx.cfg.llm_eval
    if not cfg.enabled and ctx.stage != "llm_eval":
        return {}
    figures = evaluate_llm(model, tokenizer, cfg, rewards)
    with ctx.metrics() as m:
        m.log({f"eval/{k}": v for k, v in figures.items()}, step=step)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in figures.items() if k != "prompts")
    log.info("%s: held-out %s (%d prompts): %s", ctx.stage, when, figures["prompts"], shown)
    return figures


def run(ctx: StageContext) -> dict[str, Any]:
    """The ``llm_eval`` stage: evaluate the run's current model (greedy and sampled EM, held-out reward)."""
    from rlft.llm.common import set_threads
    from rlft.llm.model import load_model, load_tokenizer
    from rlft.llm.rewards import build_rewards

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
