"""The ``eval`` stage and ``rlft eval``: evaluate agents and print a result table.

In a pipeline, every agent the run produced is evaluated (e.g. the behaviour-cloned policy *and* the fine-tuned
one), so the table shows what each stage added. On single-agent envs the figures are mean return ± std over
fresh-seed episodes; on two-player games, win/draw/loss against each opponent in both seats (:mod:`rlft.games`).

Example::

    rlft eval runs/cartpole --episodes 50
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlft.core.config import param
from rlft.core.metrics import log

if TYPE_CHECKING:
    from rlft.pipeline.runner import StageContext


@dataclass
class EvalConfig:
    """Settings of the ``eval`` stage."""

    episodes: int = param(20, ge=1)
    """Episodes (games) per agent (and per opponent, for games)."""
    seed: int = param(100_000, ge=0)
    """First episode seed; episode i uses seed + i (distinct from training seeds)."""
    deterministic: bool = True
    """Greedy actions (False: sample from the policy)."""
    opponents: list[str] = field(default_factory=lambda: ["random"])
    """Two-player games: opponent specs to play against (both seats)."""


def evaluate_agent(agent: Any, env_spec: str, env_kwargs: dict[str, Any], episodes: int, seed: int,
                   deterministic: bool = True, opponents: list[str] | None = None, progress: bool = False
                   ) -> dict[str, Any]:
    """Evaluate one agent: ``{"mean_return", "std_return", ...}`` or, on games, W/D/L per opponent."""
    from rlft.core.envs import is_pettingzoo, resolve_env
    from rlft.policy.envs import make_gym_env
    from rlft.policy.evaluate import evaluate_gym

    plugin = resolve_env(env_spec)
    env = plugin.make(**env_kwargs)
    if is_pettingzoo(env):
        from rlft.policy.games.arena import evaluate_game

        if callable(getattr(agent, "reset_stats", None)):
            agent.reset_stats()
        table = evaluate_game(agent, plugin, env_kwargs, opponents or ["random"], episodes, seed=seed,
                              deterministic=deterministic, progress=progress)
        if callable(getattr(agent, "move_stats", None)):  # LLM agents: what the free model would have played
            table["moves"] = agent.move_stats()
        return table
    env.close()
    env = make_gym_env(plugin, env_kwargs)
    result = evaluate_gym(agent, env, episodes, seed=seed, deterministic=deterministic, progress=progress)
    env.close()
    return result.as_dict()


def run(ctx: StageContext) -> dict[str, Any]:
    """Evaluate every agent the run produced; the table goes into the stage result and ``results.json``."""
    from rlft.core.agent import load_agent

    cfg = ctx.cfg.eval
    agents: dict[str, str] = dict(ctx.outputs.get("agents", {}))
    if not agents:
        from rlft.core.errors import RlftError

        raise RlftError("The eval stage found no agent to evaluate: run `imitate` or `finetune` before `eval`, "
                        "or use `rlft eval PATH` on an existing agent.")
    table: dict[str, Any] = {}
    with ctx.metrics() as metrics:
        for stage, path in agents.items():
            agent = load_agent(path, device=ctx.device)
            table[stage] = evaluate_agent(agent, ctx.cfg.env.id, ctx.cfg.env.kwargs, cfg.episodes, cfg.seed,
                                          cfg.deterministic, cfg.opponents, progress=ctx.progress)
            metrics.log({f"eval/{stage}/{k}": v for k, v in _flat(table[stage]).items()}, step=0)
            log.info("eval: %s -> %s", stage, _flat(table[stage]))
    return {"outputs": {}, "metrics": {}, "table": table}


def _flat(result: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float):
            out[f"{prefix}{key}"] = float(value)
    return out
