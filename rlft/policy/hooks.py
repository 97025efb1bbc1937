"""Env hooks: what the policy stages do differently on a kind of env, chosen once from the env plugin.

The stages never test "is this a two-player game?". :func:`env_hooks` probes the plugin's env once and returns
:class:`GymHooks` (a single-agent Gymnasium env) or :class:`~rlft.policy.games.hooks.GameHooks` (a two-player
PettingZoo game: both seats recorded, self-play training envs with an opponent pool, W/D/L evaluation). Each offers:

* ``record(agent_spec, episodes, out, ...)`` -- play and save the episodes (a Minari dataset);
* ``evaluate(agent, episodes, ...)`` -- an :class:`~rlft.policy.report.AgentReport` (games optionally in Ray actors,
  :mod:`rlft.policy.games.ray_games`);
* ``learner_spaces()`` -- the observation and action space a learner sees, and whether actions are masked;
* ``evaluator(...)`` / ``adapter(...)`` / ``callbacks(runner)`` / ``save_state`` / ``load_state`` -- what PPO
  fine-tuning needs: the periodic evaluation, the single-seat adapter of the training envs, extra SB3 callbacks, and
  what a checkpoint keeps beyond the policy (the self-play opponent pool).

Example::

    hooks = env_hooks("connect_four", {})
    report = hooks.evaluate(agent, 100, seed=0, opponents=["random"])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rlft.core.envs import EnvPlugin, check_env, is_pettingzoo, resolve_env
from rlft.core.metrics import log
from rlft.policy.agents import check_agent_fits, resolve_agent
from rlft.policy.config import FinetuneConfig
from rlft.policy.datasets import write_dataset
from rlft.policy.envs import SingleAgentAdapter, env_has_action_mask, make_gym_env
from rlft.policy.episodes import evaluate_gym, record_gym_episodes
from rlft.policy.games.hooks import GameHooks
from rlft.policy.games.ray_games import RayGames
from rlft.policy.report import AgentReport

Evaluator = Callable[[Any], dict[str, float]]
"""Takes an agent, returns ``eval/...`` scalars (the headline key first)."""


class EnvHooks(Protocol):
    """What differs between kinds of env for the policy stages (see the module docstring)."""

    plugin: EnvPlugin
    env_kwargs: dict[str, Any]

    def record(self, agent_spec: str, episodes: int, out: Path, *, seed: int, deterministic: bool = True,
               trust_pickle: bool = False, progress: bool = False) -> dict[str, float]: ...

    def evaluate(self, agent: Any, episodes: int, *, seed: int, deterministic: bool = True,
                 opponents: list[str] | None = None, progress: bool = False, ray: RayGames | None = None
                 ) -> AgentReport: ...

    def evaluator(self, cfg: FinetuneConfig, seed: int, name: str = "finetune") -> Evaluator: ...

    def adapter(self, cfg: FinetuneConfig, seed: int) -> SingleAgentAdapter | None: ...

    def vectorised(self, venv: Any) -> Any: ...

    def learner_spaces(self) -> tuple[Any, Any, bool]: ...

    def callbacks(self, runner: Any) -> list[Any]: ...

    def save_state(self, folder: Path, runner: Any) -> None: ...

    def load_state(self, folder: Path, runner: Any) -> None: ...


@dataclass
class GymHooks:
    """A single-agent Gymnasium env: episodes recorded as they are, evaluation by mean return."""

    plugin: EnvPlugin
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def record(self, agent_spec: str, episodes: int, out: Path, *, seed: int, deterministic: bool = True,
               trust_pickle: bool = False, progress: bool = False) -> dict[str, float]:
        env = self.plugin.make(**self.env_kwargs)
        agent = resolve_agent(agent_spec, self.plugin, action_space=env.action_space, seed=seed,
                              trust_pickle=trust_pickle)
        check_agent_fits(agent, env.observation_space, env.action_space, self.plugin.name, f"The agent '{agent_spec}'")
        buffers, returns = record_gym_episodes(env, agent, episodes, seed, deterministic, progress)
        gym_spec = env.spec if self.plugin.gym_id else None
        write_dataset(out, buffers, env.observation_space, env.action_space,
                      {"rlft_env": self.plugin.name, "rlft_agent": agent_spec,
                       "description": f"{agent_spec} playing {self.plugin.name}"}, env_spec=gym_spec)
        env.close()
        result = {"episodes": episodes, "steps": sum(len(b.actions) for b in buffers),
                  "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns))}
        log.info("record: %d episodes, %d steps, return %.1f ± %.1f -> %s", episodes, result["steps"],
                 result["mean_return"], result["std_return"], out)
        return result

    def evaluate(self, agent: Any, episodes: int, *, seed: int, deterministic: bool = True,
                 opponents: list[str] | None = None, progress: bool = False, ray: RayGames | None = None
                 ) -> AgentReport:
        if ray is not None and ray.actors > 0:
            log.warning("Ray actors play two-player games; the episodes of '%s' run in this process.",
                        self.plugin.name)
        env = make_gym_env(self.plugin, self.env_kwargs)
        check_agent_fits(agent, env.observation_space, env.action_space, self.plugin.name)
        try:
            return AgentReport.from_returns(*evaluate_gym(agent, env, episodes, seed=seed,
                                                          deterministic=deterministic, progress=progress))
        finally:
            env.close()

    def evaluator(self, cfg: FinetuneConfig, seed: int, name: str = "finetune") -> Evaluator:
        env = make_gym_env(self.plugin, self.env_kwargs)

        def evaluate(agent: Any) -> dict[str, float]:
            returns, _ = evaluate_gym(agent, env, cfg.eval_episodes, seed=seed, deterministic=True)
            return {"eval/mean_return": float(np.mean(returns)), "eval/std_return": float(np.std(returns))}

        return evaluate

    def adapter(self, cfg: FinetuneConfig, seed: int) -> SingleAgentAdapter | None:
        return None

    def vectorised(self, venv: Any) -> Any:
        return venv

    def learner_spaces(self) -> tuple[Any, Any, bool]:
        env = make_gym_env(self.plugin, self.env_kwargs)
        spaces = env.observation_space, env.action_space, env_has_action_mask(env)
        env.close()
        return spaces

    def callbacks(self, runner: Any) -> list[Any]:
        return []

    def save_state(self, folder: Path, runner: Any) -> None:
        return None

    def load_state(self, folder: Path, runner: Any) -> None:
        return None


def env_hooks(spec: str, env_kwargs: dict[str, Any] | None = None, *, check: bool = True) -> EnvHooks:
    """The hooks of the env ``spec``; a plugin that is not built in is checked against its API first."""

    plugin = resolve_env(spec)
    kwargs = dict(env_kwargs or {})
    if check and not plugin.builtin:
        check_env(plugin, kwargs)
    probe = plugin.make(**kwargs)
    two_player = is_pettingzoo(probe)
    close = getattr(probe, "close", None)
    if callable(close):
        close()
    return GameHooks(plugin, kwargs) if two_player else GymHooks(plugin, kwargs)
