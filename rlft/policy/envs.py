"""Training envs for the policy kind: one single-agent Gymnasium env or an SB3 VecEnv from an env plugin.

Two-player PettingZoo games are wrapped seat by seat for self-play by the game hooks (:mod:`rlft.policy.hooks`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from rlft.core.envs import EnvPlugin, is_pettingzoo, resolve_env
from rlft.core.errors import EnvCheckError

SingleAgentAdapter = Callable[[EnvPlugin, Any, dict[str, Any]], gym.Env[Any, Any]]
"""Turns a multi-agent env into the single-agent env a learner sees (set by the games module)."""


_MULTI_AGENT_ADAPTER: list[SingleAgentAdapter] = []


def register_multi_agent_adapter(adapter: SingleAgentAdapter) -> None:
    """Install the function that wraps PettingZoo envs for single-agent training (self-play)."""
    _MULTI_AGENT_ADAPTER[:] = [adapter]


def make_gym_env(plugin: EnvPlugin, env_kwargs: dict[str, Any], adapter_kwargs: dict[str, Any] | None = None,
                 ) -> gym.Env[Any, Any]:
    """One single-agent Gymnasium env from a plugin (PettingZoo games are wrapped seat-by-seat for self-play)."""
    env = plugin.make(**env_kwargs)
    if is_pettingzoo(env):
        from rlft.policy.games.selfplay import make_self_play_env

        return make_self_play_env(plugin, env, adapter_kwargs or {})
    if not isinstance(env, gym.Env):
        raise EnvCheckError(
            f"Env plugin '{plugin.name}' returned a {type(env).__name__}, not a gymnasium.Env or PettingZoo env."
        )
    return env


def _make_monitored(spec: str, env_kwargs: dict[str, Any], adapter_kwargs: dict[str, Any]) -> gym.Env[Any, Any]:
    from stable_baselines3.common.monitor import Monitor

    return Monitor(make_gym_env(resolve_env(spec), env_kwargs, adapter_kwargs))


def make_vec_env(
    spec: str,
    n_envs: int = 1,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    subprocess: bool = False,
    adapter_kwargs: dict[str, Any] | None = None,
) -> Any:
    """An SB3 ``VecEnv`` of ``n_envs`` monitored copies (``SubprocVecEnv`` when ``subprocess``), seeded."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    fns = [functools.partial(_make_monitored, spec, dict(env_kwargs or {}), dict(adapter_kwargs or {}))
           for _ in range(n_envs)]
    vec = SubprocVecEnv(fns) if subprocess and n_envs > 1 else DummyVecEnv(fns)  # type: ignore[arg-type]
    vec.seed(seed)
    return vec


def env_has_action_mask(env: gym.Env[Any, Any]) -> bool:
    """True when the env exposes ``action_masks()`` (the sb3-contrib convention)."""
    return callable(getattr(env.unwrapped, "action_masks", None)) or callable(getattr(env, "action_masks", None))
