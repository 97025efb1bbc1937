"""The ``rl`` stage: reward-driven fine-tuning with TRL's ``GRPOTrainer`` or ``RLOOTrainer``.

For each prompt the trainer samples ``num_generations`` completions, scores them with the configured reward terms
(weighted sum; see :mod:`rlft.llm.rewards`), and raises the log-probability of the completions that beat their
group (GRPO: group-normalised advantage; RLOO: leave-one-out baseline), with an optional KL penalty (``beta``)
toward the starting model. TRL logs ``train/reward``, ``train/rewards/<fn>/mean``, ``train/kl`` and
``train/completions/mean_length`` to ``DIR/tb/rl``.

RLHF: a reward term ``{model: <stage>}`` is the reward model a ``reward_model`` stage of the pipeline trained. To see
over-optimisation (the learned reward rising while the true score falls), ``true_score.rewards`` names reward
functions the stage never optimises; every ``true_score.every`` steps the model samples the held-out prompts and
``true/reward``, ``true/sampled_em``, ``true/greedy_em`` are logged beside ``train/rewards/<stage>/mean`` and
``train/kl`` (``beta > 0``).

Use it when only a score is known. When the target completion is known, ``sft`` optimises the same objective with an
exact, cheaper gradient (docs/llm.md).

Example::

    rl: {algorithm: grpo, rewards: [{fn: exact_match}, {fn: my_rewards.py:brevity, weight: 0.1}], max_steps: 200}
"""

from __future__ import annotations

import dataclasses
from typing import Any

from datasets import Dataset, concatenate_datasets
from transformers import TrainerCallback

from rlft.core.errors import ConfigError
from rlft.core.metrics import log
from rlft.llm import evaluate
from rlft.llm.config import RewardSpec, RLConfig
from rlft.llm.data import as_chat, load_examples
from rlft.llm.evaluate import evaluate_llm
from rlft.llm.model import count_parameters, freeze_early_layers, peft_config
from rlft.llm.rewards import build_rewards, reward_function
from rlft.llm.trainer import callbacks, finish, load_start, stage_data, train, trainer_kwargs
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import StageResult


def build_trainer(ctx: StageContext[RLConfig], model: Any, tokenizer: Any, data: Any, funcs: list[Any],
                  weights: list[float], reward_tokenizers: list[Any]) -> Any:
    """The TRL trainer (GRPO or RLOO) for the stage's config -- plain TRL, configured from rlft's config."""
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    cfg = ctx.config
    config_cls: Any = GRPOConfig if cfg.algorithm == "grpo" else RLOOConfig
    trainer_cls: Any = GRPOTrainer if cfg.algorithm == "grpo" else RLOOTrainer
    args = config_cls(**trainer_kwargs(ctx, lr=cfg.lr, batch_size=cfg.batch_size, max_steps=cfg.max_steps,
                                       save_steps=cfg.save_steps, logging_steps=cfg.logging_steps),
                      num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
                      temperature=cfg.temperature, beta=cfg.beta, num_iterations=cfg.num_iterations,
                      reward_weights=weights, use_vllm=cfg.use_vllm, log_completions=False)
    has_models = any(t is not None for t in reward_tokenizers)
    return trainer_cls(model=model, reward_funcs=funcs, args=args, train_dataset=data, processing_class=tokenizer,
                       reward_processing_classes=reward_tokenizers if has_models else None,
                       peft_config=peft_config(cfg.tuning), callbacks=callbacks(ctx))


def with_played_positions(ctx: StageContext[RLConfig], data: Any, model: Any, tokenizer: Any) -> Any:
    """``data`` (its prompts) plus the positions the starting model meets in its own games (``rl.play_games``).

    The positions come from the first reward term whose function offers ``self_play_prompts(model, tokenizer,
    games=, seed=, **kwargs)`` (the ``game_outcome`` reward does: its env and opponents are the games played).
    """
    cfg = ctx.config
    source = next(((spec, fn) for spec in cfg.rewards if spec.fn
                   for fn in [getattr(reward_function(spec), "self_play_prompts", None)] if callable(fn)), None)
    if source is None:
        raise ConfigError(f"{ctx.name}.play_games needs a reward that plays games (e.g. `game_outcome`) in "
                          f"{ctx.name}.rewards: its env and opponents are the games the model plays. Add one, or set "
                          f"{ctx.name}.play_games: 0.")
    spec, positions = source
    prompts = positions(model, tokenizer, games=cfg.play_games, seed=ctx.seed, **spec.kwargs)
    log.info("%s: %d distinct positions from the model's own games (x%d) join %d prompts", ctx.name, len(prompts),
             cfg.play_repeat, len(data))
    played = Dataset.from_dict({"prompt": prompts * cfg.play_repeat})
    return concatenate_datasets([data.select_columns(["prompt"]), played]).shuffle(seed=ctx.seed)


class TrueScore(TrainerCallback):
    """Logs the held-out true score (``true/*``) every ``true_score.every`` steps and at the end."""

    def __init__(self, ctx: StageContext[RLConfig], tokenizer: Any) -> None:
        self.ctx = ctx
        self.tokenizer = tokenizer
        funcs, weights, _ = build_rewards(ctx.config.true_score.rewards)
        self.rewards = (funcs, weights)
        eval_cfg = ctx.config.eval
        self.eval = dataclasses.replace(eval_cfg, data=stage_data(ctx, eval_cfg.data))

    def score(self, model: Any, step: int) -> None:
        figures = evaluate_llm(model, self.tokenizer, self.eval, self.rewards)
        with self.ctx.metrics() as m:
            m.log({f"true/{k}": figures[k] for k in ("reward", "sampled_em", "greedy_em")}, step=step)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> Any:
        if state.global_step == 0:
            self.score(model, 0)
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> Any:
        if state.global_step % self.ctx.config.true_score.every == 0 or state.global_step == state.max_steps:
            self.score(model, int(state.global_step))
        return control


def reward_specs(ctx: StageContext[RLConfig]) -> list[RewardSpec]:
    """The reward terms, with a reward model named by stage (``{model: reward_model}``) replaced by its folder."""
    trained = ctx.artifacts.reward_models
    return [dataclasses.replace(s, model=trained[s.model]) if s.model in trained else s for s in ctx.config.rewards]


def run(ctx: StageContext[RLConfig]) -> StageResult:
    """Reward-driven fine-tuning of the current model; held-out EM and reward before and after."""
    cfg = ctx.config
    data = load_examples(stage_data(ctx, cfg.data), ctx.seed, need_completion=False, what=f"{ctx.name}.data")
    funcs, weights, reward_tokenizers = build_rewards(reward_specs(ctx))
    model, tokenizer, _ = load_start(ctx)
    if cfg.play_games:
        data = with_played_positions(ctx, data, model, tokenizer)
    data = as_chat(data, tokenizer)  # prompts as user messages in the model's chat template (when it has one)
    functions = [(f, w) for f, w in zip(funcs, weights) if callable(f) and not hasattr(f, "forward")]
    scored = ([f for f, _ in functions], [w for _, w in functions]) if functions else None  # models: in training only
    before = evaluate.report(ctx, cfg.eval, model, tokenizer, "before", 0, scored)
    if cfg.tuning.mode == "freeze":
        freeze_early_layers(model, cfg.tuning)
    trainer = build_trainer(ctx, model, tokenizer, data, funcs, weights, reward_tokenizers)
    if cfg.true_score.rewards:
        trainer.add_callback(TrueScore(ctx, tokenizer))
    counts = count_parameters(trainer.model)
    result = train(trainer, ctx)
    after = evaluate.report(ctx, cfg.eval, trainer.model, tokenizer, "after", int(trainer.state.global_step), scored)
    return finish(ctx, trainer.model, tokenizer, before, after,
                  {**result, "steps": trainer.state.global_step},
                  {f"model/{k}": v for k, v in counts.items()})
