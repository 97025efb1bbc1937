"""The ``eval`` stage and ``rlft eval``: evaluate agents and print a result table.

In a pipeline, every agent the run produced is evaluated (e.g. the behaviour-cloned policy *and* the fine-tuned
one), so the table shows what each stage added. On single-agent envs the figures are mean return ± std over
fresh-seed episodes; on two-player games, win/draw/loss against each opponent in both seats. The headline is the
last agent's: its mean return, or its mean score over opponents ((W + D/2) / games). With ``ray_actors: K`` the
games are played in K Ray actors, with the same results (:mod:`rlft.policy.games.ray_games`).

Example::

    rlft eval runs/cartpole --episodes 50
"""

from __future__ import annotations

from typing import Any

from rlft.core.agent import load_agent
from rlft.core.errors import RlftError
from rlft.core.metrics import log
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import Headline, StageResult
from rlft.policy.config import EvalConfig
from rlft.policy.games.ray_games import RayGames
from rlft.policy.hooks import env_hooks


def run(ctx: StageContext[EvalConfig]) -> StageResult:
    """Evaluate every agent the run produced; the table goes into the stage result and ``results.json``."""
    cfg = ctx.config
    agents = dict(ctx.artifacts.agents)
    if not agents:
        raise RlftError("The eval stage found no agent to evaluate: run `imitate` or `finetune` before `eval`, "
                        "or use `rlft eval PATH` on an existing agent.")
    hooks = env_hooks(ctx.env.id, ctx.env.kwargs)  # probed once for every agent
    table: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    headline: Headline | None = None
    with ctx.metrics() as logger:
        for stage, path in agents.items():
            ray = RayGames(cfg.ray_actors, cfg.ray_address, agent=str(path)) if cfg.ray_actors else None
            report = hooks.evaluate(load_agent(path, device=ctx.device), cfg.episodes, seed=cfg.seed,
                                    deterministic=cfg.deterministic, opponents=cfg.opponents,
                                    progress=ctx.progress, ray=ray)
            table[stage] = report.to_json()
            scalars = {f"{stage}/{k}": v for k, v in report.scalars().items()}
            metrics.update(scalars)
            logger.log({f"eval/{k}": v for k, v in scalars.items()}, step=0)
            log.info("%s: %s -> %s", ctx.name, stage, report.scalars())
            headline = report.headline()
    return StageResult(metrics=metrics, headline=headline, details={"table": table})
