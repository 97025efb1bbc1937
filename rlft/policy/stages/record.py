"""The ``record`` stage: play an agent in an env and save the games as a Minari dataset.

The agent is any :class:`~rlft.agents.Agent` spec: a built-in scripted expert of the env (``expert`` on CartPole),
a trained run or checkpoint, an SB3 ``.zip``, or ``pkg.module:Class`` / ``file.py:Class``. Two-player games record
both seats (see :mod:`rlft.games`).

Example::

    rlft record --env cartpole --agent expert --episodes 50 --out data/cartpole-expert
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlft.core.config import param
from rlft.core.metrics import log

if TYPE_CHECKING:
    from rlft.pipeline.runner import StageContext


@dataclass
class RecordConfig:
    """Settings of the ``record`` stage."""

    agent: str = "expert"
    """Who plays: a built-in agent of the env (`expert`, `random`, ...), a run/checkpoint/.zip, or `module:Class`."""
    episodes: int = param(50, ge=1)
    """Number of episodes (games) to record."""
    out: str = ""
    """Dataset folder. Empty: `DIR/data/record` inside the run folder."""
    deterministic: bool = True
    """Let the agent act greedily (False: sample, for more varied demonstrations)."""
    trust_pickle: bool = False
    """Allow a full SB3 `.zip` load for the agent (unpickles, so it can execute code from the file)."""


def record_gym_episodes(env: Any, agent: Any, episodes: int, seed: int, deterministic: bool = True,
                        progress: bool = False) -> tuple[list[Any], list[float]]:
    """Play ``episodes`` episodes of a Gymnasium env; return Minari episode buffers and their returns."""
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from tqdm.auto import tqdm

    from rlft.core.agent import checked_action

    buffers, returns = [], []
    for ep in tqdm(range(episodes), desc="record", disable=not progress, unit="ep"):
        obs, _ = env.reset(seed=seed + ep)
        observations, actions, rewards, terms, truncs = [obs], [], [], [], []
        done = False
        while not done:
            action = checked_action(agent, obs, None, deterministic, env.action_space)
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            terms.append(bool(terminated))
            truncs.append(bool(truncated))
            done = terminated or truncated
        buffers.append(EpisodeBuffer(id=ep, seed=seed + ep, observations=np.asarray(observations),
                                     actions=np.asarray(actions), rewards=rewards, terminations=terms,
                                     truncations=truncs, infos={}))
        returns.append(float(sum(rewards)))
    return buffers, returns


def record(env_spec: str, agent_spec: str, episodes: int, out: str | Path, *, seed: int = 0,
           env_kwargs: dict[str, Any] | None = None, deterministic: bool = True, trust_pickle: bool = False,
           progress: bool = False) -> dict[str, Any]:
    """Record ``episodes`` games of ``agent_spec`` on ``env_spec`` into the Minari dataset folder ``out``."""
    from rlft.core.envs import check_env, is_pettingzoo, resolve_env
    from rlft.policy.agents import resolve_agent
    from rlft.policy.datasets import write_dataset

    plugin = resolve_env(env_spec)
    if not plugin.builtin:
        check_env(plugin, env_kwargs)
    env = plugin.make(**(env_kwargs or {}))
    if is_pettingzoo(env):
        from rlft.policy.games.play import record_game_episodes

        return record_game_episodes(plugin, env, agent_spec, episodes, out, seed=seed, deterministic=deterministic,
                                    trust_pickle=trust_pickle, progress=progress)
    agent = resolve_agent(agent_spec, plugin, action_space=env.action_space, seed=seed, trust_pickle=trust_pickle)
    buffers, returns = record_gym_episodes(env, agent, episodes, seed, deterministic, progress)
    gym_spec = env.spec if plugin.gym_id else None
    write_dataset(out, buffers, env.observation_space, env.action_space,
                  {"rlft_env": env_spec, "rlft_agent": agent_spec, "description": f"{agent_spec} playing {env_spec}"},
                  env_spec=gym_spec)
    env.close()
    result = {"episodes": episodes, "steps": sum(len(b.actions) for b in buffers),
              "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns))}
    log.info("record: %d episodes, %d steps, return %.1f ± %.1f -> %s", episodes, result["steps"],
             result["mean_return"], result["std_return"], out)
    return result


def run(ctx: StageContext) -> dict[str, Any]:
    """Pipeline entry point."""
    cfg = ctx.cfg.record
    out = Path(cfg.out) if cfg.out else ctx.run.data_dir("record")
    if out.exists() and (out / "data" / "metadata.json").is_file() and ctx.resume:
        # A dataset written by this stage before an interruption is complete (writes are atomic): reuse it.
        return {"outputs": {"dataset": str(out)}, "metrics": {}}
    result = record(ctx.cfg.env.id, cfg.agent, cfg.episodes, out, seed=ctx.seed, env_kwargs=ctx.cfg.env.kwargs,
                    deterministic=cfg.deterministic, trust_pickle=cfg.trust_pickle, progress=ctx.progress)
    with ctx.metrics() as m:
        m.log({"record/mean_return": result["mean_return"], "record/episodes": result["episodes"]}, step=0)
    return {"outputs": {"dataset": str(out)}, "metrics": result}
