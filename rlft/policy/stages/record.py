"""The ``record`` stage: play an agent in an env and save the games as a Minari dataset.

The agent is any agent spec: a built-in scripted expert of the env (``expert`` on CartPole, ``alphabeta:4`` on
Connect Four), a trained run or checkpoint, an SB3 ``.zip``, or ``pkg.module:Class`` / ``file.py:Class``. Two-player
games record both seats (the env hooks decide, :mod:`rlft.policy.hooks`).

Example::

    rlft record --env cartpole --agent expert --episodes 50 --out data/cartpole-expert
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlft.pipeline.artifacts import Outputs
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import Headline, StageResult
from rlft.policy.agents import agent_spec_in_run
from rlft.policy.config import RecordConfig
from rlft.policy.hooks import env_hooks


def record(env_spec: str, agent_spec: str, episodes: int, out: str | Path, *, seed: int = 0,
           env_kwargs: dict[str, Any] | None = None, deterministic: bool = True, trust_pickle: bool = False,
           progress: bool = False) -> dict[str, float]:
    """Record ``episodes`` games of ``agent_spec`` on ``env_spec`` into the Minari dataset folder ``out``."""
    hooks = env_hooks(env_spec, env_kwargs)
    return hooks.record(agent_spec, episodes, Path(out), seed=seed, deterministic=deterministic,
                        trust_pickle=trust_pickle, progress=progress)


def run(ctx: StageContext[RecordConfig]) -> StageResult:
    """Record ``config.episodes`` games into ``config.out`` (default ``DIR/data/<stage>``)."""
    cfg = ctx.config
    out = Path(cfg.out) if cfg.out else ctx.data_dir()
    if out.exists() and (out / "data" / "metadata.json").is_file() and ctx.resume:
        # A dataset written by this stage before an interruption is complete (writes are atomic): reuse it.
        return StageResult(outputs=Outputs(dataset=str(out)))
    agent = agent_spec_in_run(cfg.agent, ctx.artifacts, by=f"{ctx.name}.agent")
    result = record(ctx.env.id, agent, cfg.episodes, out, seed=ctx.seed, env_kwargs=ctx.env.kwargs,
                    deterministic=cfg.deterministic, trust_pickle=cfg.trust_pickle, progress=ctx.progress)
    with ctx.metrics() as m:
        m.log({"record/mean_return": result["mean_return"], "record/episodes": result["episodes"]}, step=0)
    return StageResult(outputs=Outputs(dataset=str(out)), metrics=result,
                       headline=Headline("mean_return", result["mean_return"]))
