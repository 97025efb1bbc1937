"""The ``rl`` stage: reward-driven fine-tuning with TRL's ``GRPOTrainer`` or ``RLOOTrainer``.

For each prompt the trainer samples ``num_generations`` completions, scores them with the configured reward terms
(weighted sum; see :mod:`rlft.llm.rewards`), and raises the log-probability of the completions that beat their
group (GRPO: group-normalised advantage; RLOO: leave-one-out baseline), with an optional KL penalty (``beta``)
toward the starting model. TRL logs ``train/reward``, ``train/rewards/<fn>/mean``, ``train/kl`` and
``train/completions/mean_length`` to ``DIR/tb/rl``.

Use it when only a score is known. When the target completion is known, ``sft`` optimises the same objective with an
exact, cheaper gradient (docs/llm.md).

Example::

    rl: {algorithm: grpo, rewards: [{fn: exact_match}, {fn: my_rewards.py:brevity, weight: 0.1}], max_steps: 200}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlft.core.metrics import log
from rlft.llm import evaluate
from rlft.llm.data import load_examples
from rlft.llm.model import count_parameters, freeze_early_layers, peft_config
from rlft.llm.rewards import build_rewards
from rlft.llm.trainer import finish, load_start, resume_from, trainer_kwargs

if TYPE_CHECKING:
    from rlft.pipeline.runner import StageContext


def build_trainer(ctx: StageContext, model: Any, tokenizer: Any, data: Any, funcs: list[Any], weights: list[float],
                  reward_tokenizers: list[Any]) -> Any:
    """The TRL trainer (GRPO or RLOO) for ``ctx.cfg.rl`` -- plain TRL, configured from rlft's config."""
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    cfg = ctx.cfg.rl
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
                       peft_config=peft_config(ctx.cfg.tuning))


def with_played_positions(ctx: StageContext, data: Any, model: Any, tokenizer: Any) -> Any:
    """``data`` (its prompts) plus the positions the starting model meets in its own games (``rl.play_games``)."""
    from datasets import Dataset, concatenate_datasets

    from rlft.bridges.game_text.reward import played_positions
    from rlft.core.errors import ConfigError

    cfg = ctx.cfg.rl
    spec = next((r for r in cfg.rewards if r.fn.split(":")[-1].split(".")[-1] == "game_outcome"), None)
    if spec is None:
        raise ConfigError("rl.play_games needs a `game_outcome` reward in rl.rewards: its env and opponents are "
                          "the games the model plays. Add one, or set rl.play_games: 0.")
    kwargs = dict(spec.kwargs)
    prompts = played_positions(model, tokenizer, env=kwargs.get("env", "tictactoe"), opponents=kwargs.get("opponents"),
                               games=cfg.play_games, seed=ctx.seed, env_kwargs=kwargs.get("env_kwargs"))
    log.info("rl: %d distinct positions from the model's own games (x%d) join %d prompts", len(prompts),
             cfg.play_repeat, len(data))
    played = Dataset.from_dict({"prompt": prompts * cfg.play_repeat})
    return concatenate_datasets([data.select_columns(["prompt"]), played]).shuffle(seed=ctx.seed)


def run(ctx: StageContext) -> dict[str, Any]:
    """Reward-driven fine-tuning of the current model; held-out EM and reward before and after."""
    cfg = ctx.cfg.rl
    data = load_examples(cfg.data, ctx.seed, need_completion=False, what="rl.data")
    funcs, weights, reward_tokenizers = build_rewards(cfg.rewards)
    model, tokenizer, _ = load_start(ctx)
    if cfg.play_games:
        data = with_played_positions(ctx, data, model, tokenizer)
    scored = ([f for f in funcs if callable(f) and not hasattr(f, "forward")],
              [w for f, w in zip(funcs, weights) if callable(f) and not hasattr(f, "forward")])
    before = evaluate.report(ctx, model, tokenizer, "before", 0, scored)
    if ctx.cfg.tuning.mode == "freeze":
        freeze_early_layers(model, ctx.cfg.tuning)
    trainer = build_trainer(ctx, model, tokenizer, data, funcs, weights, reward_tokenizers)
    counts = count_parameters(trainer.model)
    result = trainer.train(resume_from_checkpoint=resume_from(ctx))
    after = evaluate.report(ctx, trainer.model, tokenizer, "after", int(trainer.state.global_step), scored)
    return finish(ctx, trainer.model, tokenizer, before, after,
                  {"loss": result.training_loss, "steps": trainer.state.global_step,
                   "runtime": result.metrics["train_runtime"]},
                  {f"model/{k}": v for k, v in counts.items()})
