"""Training envs for the policy kind: one single-agent Gymnasium env or an SB3 VecEnv from an env plugin.

Two-player PettingZoo games are seen through a single-seat adapter that the game hooks supply
(:mod:`rlft.policy.hooks`): self-play.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from rlft.core.envs import EnvPlugin, is_pettingzoo, resolve_env
from rlft.core.errors import EnvCheckError, PluginError, RlftError

SingleAgentAdapter = Callable[[EnvPlugin, Any], gym.Env[Any, Any]]
"""Turns a multi-agent env into the single-agent env a learner sees (the game hooks supply one: self-play)."""


class CheckedEnv(gym.Wrapper[Any, Any, Any, Any]):
    """A user env plugin, watched during training: an exception inside ``reset``/``step``, or a NaN / infinite
    observation or reward, becomes a PluginError naming the plugin (not a torch traceback many frames later)."""

    def __init__(self, env: gym.Env[Any, Any], name: str) -> None:
        super().__init__(env)
        self.name = name

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RlftError:
            raise
        except Exception as e:
            raise PluginError(f"The env plugin '{self.name}' raised {type(e).__name__} in {what}(): {e}. Fix the env "
                              "(`rlft check-env` runs the API checks on it).") from e

    def _check(self, what: str, obs: Any, reward: float = 0.0) -> None:
        if not np.isfinite(reward):
            raise PluginError(f"The env plugin '{self.name}' returned the reward {reward} from {what}(): rewards must "
                              "be finite numbers.")
        values = obs.values() if isinstance(obs, dict) else [obs]
        if not all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in values):
            raise PluginError(f"The env plugin '{self.name}' returned an observation with NaN or infinite values from "
                              f"{what}(): observations must be finite numbers.")

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self._call("reset", self.env.reset, **kwargs)
        self._check("reset", obs)
        return obs, info

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self._call("step", self.env.step, action)
        self._check("step", obs, float(reward))
        return obs, reward, terminated, truncated, info


def make_gym_env(plugin: EnvPlugin, env_kwargs: dict[str, Any], adapter: SingleAgentAdapter | None = None
                 ) -> gym.Env[Any, Any]:
    """One single-agent Gymnasium env from a plugin; a two-player game needs the ``adapter`` of its env hooks.

    A plugin that is not built in is wrapped in :class:`CheckedEnv` (built-ins are checked by rlft's own tests and
    keep their speed).
    """
    env = plugin.make(**env_kwargs)
    if adapter is not None:
        single = adapter(plugin, env)
        return single if plugin.builtin else CheckedEnv(single, plugin.name)
    if is_pettingzoo(env):
        raise EnvCheckError(f"Env plugin '{plugin.name}' is a multi-agent (PettingZoo) env: a learner sees it through "
                            "a single-seat adapter (rlft.policy.hooks.env_hooks(...).adapter).")
    if not isinstance(env, gym.Env):
        raise EnvCheckError(
            f"Env plugin '{plugin.name}' returned a {type(env).__name__}, not a gymnasium.Env or PettingZoo env."
        )
    return env if plugin.builtin else CheckedEnv(env, plugin.name)


def _make_monitored(spec: str, env_kwargs: dict[str, Any], adapter: SingleAgentAdapter | None) -> gym.Env[Any, Any]:
    return Monitor(make_gym_env(resolve_env(spec), env_kwargs, adapter))


def make_vec_env(
    spec: str,
    n_envs: int = 1,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    subprocess: bool = False,
    adapter: SingleAgentAdapter | None = None,
    vec_env: str | None = None,
    ray_actors: int = 0,
    ray_address: str | None = None,
) -> Any:
    """An SB3 ``VecEnv`` of ``n_envs`` monitored copies, seeded.

    ``vec_env``: ``inprocess`` (``DummyVecEnv``), ``subprocess`` (``SubprocVecEnv``; also ``subprocess=True``) or
    ``ray`` (:class:`rlft.policy.ray_env.RayVecEnv`: the copies in ``ray_actors`` Ray actors, at ``ray_address``).
    """
    fns = [functools.partial(_make_monitored, spec, dict(env_kwargs or {}), adapter) for _ in range(n_envs)]
    kind = "subprocess" if subprocess and vec_env in (None, "inprocess") else vec_env or "inprocess"
    if kind == "ray":
        from rlft.policy.ray_env import RayVecEnv

        vec: Any = RayVecEnv(fns, actors=ray_actors, address=ray_address)  # type: ignore[arg-type]
    elif kind == "subprocess" and n_envs > 1:
        vec = SubprocVecEnv(fns)  # type: ignore[arg-type]
    else:
        vec = DummyVecEnv(fns)  # type: ignore[arg-type]
    vec.seed(seed)
    return vec


def env_has_action_mask(env: gym.Env[Any, Any]) -> bool:
    """True when the env exposes ``action_masks()`` (the sb3-contrib convention)."""
    return callable(getattr(env.unwrapped, "action_masks", None)) or callable(getattr(env, "action_masks", None))
