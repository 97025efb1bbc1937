"""Held-out evaluation of a causal LM: exact match (greedy and sampled) and the held-out reward.

:func:`evaluate_llm` decodes every held-out prompt greedily and once more by sampling (temperature
``cfg.temperature``, a fixed seed so before/after figures compare like with like), scores exact match against the
reference completion, and -- given reward functions -- the weighted reward of the sampled completions. Every LLM
training stage calls it before and after training (its ``eval`` section); the ``llm_eval`` stage calls it on the
run's current model.

Example::

    figures = evaluate_llm(model, tokenizer, LLMEvalConfig())
    figures["greedy_em"], figures["sampled_em"]
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rlft.core.metrics import log
from rlft.llm.config import LLMEvalConfig
from rlft.llm.data import load_examples
from rlft.llm.generation import generate
from rlft.llm.rewards import combined_reward, completion_text
from rlft.pipeline.context import StageContext


def evaluate_llm(model: Any, tokenizer: Any, cfg: LLMEvalConfig, rewards: tuple[list[Any], list[float]] | None = None,
                 examples: Any = None) -> dict[str, float]:
    """``greedy_em``, ``sampled_em`` (unless ``cfg.sampled`` is off) and ``reward`` (given reward functions; of the
    sampled completions, else the greedy ones) on the held-out prompts."""

    ds = examples if examples is not None else load_examples(cfg.data, what="llm_eval.data")
    prompts = list(ds["prompt"])  # plain text or conversations: generate renders them with the chat template
    refs = [completion_text(c).strip() for c in ds["answer" if "answer" in ds.column_names else "completion"]]
    greedy = generate(model, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)
    figures = {"greedy_em": sum(g.strip() == r for g, r in zip(greedy, refs)) / len(refs)}
    sampled = greedy
    if cfg.sampled:
        sampled = generate(model, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens, sample=True,
                           temperature=cfg.temperature, batch_size=cfg.batch_size, seed=cfg.seed)
        figures["sampled_em"] = sum(s.strip() == r for s, r in zip(sampled, refs)) / len(refs)
    figures.update({"mean_length": sum(len(s) for s in sampled) / len(sampled), "prompts": len(prompts)})
    if rewards is not None:
        columns = {c: list(ds[c]) for c in ds.column_names if c != "prompt"}
        scores = combined_reward(rewards[0], rewards[1], prompts, sampled, **columns)
        figures["reward"] = sum(scores) / len(scores)
    return figures


def report(ctx: StageContext[Any], cfg: LLMEvalConfig, model: Any, tokenizer: Any, when: str, step: int,
           rewards: tuple[list[Any], list[float]] | None = None, *, always: bool = False) -> dict[str, float]:
    """Evaluate on ``cfg``'s held-out prompts, log ``eval/*`` to the stage's TensorBoard and print one line.

    A training stage passes its ``eval`` section (skipped when ``enabled`` is off, unless ``always``).
    """
    if not (cfg.enabled or always):
        return {}
    data = dataclasses.replace(cfg.data, source=ctx.artifacts.data_source(cfg.data.source))
    figures = evaluate_llm(model, tokenizer, dataclasses.replace(cfg, data=data), rewards)
    with ctx.metrics() as m:
        m.log({f"eval/{k}": v for k, v in figures.items()}, step=step)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in figures.items() if k != "prompts")
    log.info("%s: held-out %s (%d prompts): %s", ctx.name, when, figures["prompts"], shown)
    return figures
