"""``finetune.vec_env: ray``: the env copies (self-play opponents included) step inside Ray actors.

:class:`RayVecEnv` is an SB3 ``VecEnv`` like ``SubprocVecEnv``, except that the workers are Ray actors, so they may
sit on any machine of a Ray cluster while one learner trains on what they collect. The ``n_envs`` copies are split
over ``actors`` actors in order (actor 0 holds copies 0..k-1, ...); each step sends every actor its slice of the
actions and gathers the results, so the copies see exactly what the in-process ``DummyVecEnv`` would show them:
same seeds, same trajectories. Self-play snapshots reach the opponent pools through ``env_method`` as with
subprocesses.

Ray is connected once per process: ``ray_address`` from the config, else Ray's own ``RAY_ADDRESS`` environment
variable, else a local Ray started here.

Example::

    venv = make_vec_env("cartpole", n_envs=8, seed=0, vec_env="ray", ray_actors=2)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn
from stable_baselines3.common.vec_env.subproc_vec_env import _stack_obs

from rlft.core.errors import ConfigError


class EnvGroup:
    """Several env copies inside one Ray actor (the worker loop of ``SubprocVecEnv``, as methods)."""

    def __init__(self, env_fns: list[Callable[[], gym.Env[Any, Any]]]) -> None:
        self.envs = [fn() for fn in env_fns]

    def spaces(self) -> tuple[Any, Any, Any]:
        env = self.envs[0]
        return env.observation_space, env.action_space, getattr(env, "render_mode", None)

    def reset(self, seeds: list[int | None], options: list[dict[str, Any]]) -> list[tuple[Any, dict[str, Any]]]:
        return [env.reset(seed=seed, **({"options": opt} if opt else {}))
                for env, seed, opt in zip(self.envs, seeds, options)]

    def step(self, actions: list[Any]) -> list[tuple[Any, Any, bool, dict[str, Any], dict[str, Any]]]:
        out = []
        for env, action in zip(self.envs, actions):
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            reset_info: dict[str, Any] = {}
            if done:
                info["terminal_observation"] = obs
                obs, reset_info = env.reset()
            out.append((obs, reward, done, info, reset_info))
        return out

    def get_attr(self, name: str, indices: list[int]) -> list[Any]:
        return [self.envs[i].get_wrapper_attr(name) for i in indices]

    def has_attr(self, name: str) -> bool:
        try:
            for env in self.envs:
                env.get_wrapper_attr(name)
        except AttributeError:
            return False
        return True

    def set_attr(self, name: str, value: Any, indices: list[int]) -> None:
        for i in indices:
            setattr(self.envs[i], name, value)

    def env_method(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], indices: list[int]) -> list[Any]:
        return [self.envs[i].get_wrapper_attr(name)(*args, **kwargs) for i in indices]

    def is_wrapped(self, wrapper: type, indices: list[int]) -> list[bool]:
        from stable_baselines3.common.env_util import is_wrapped

        return [is_wrapped(self.envs[i], wrapper) for i in indices]

    def render(self) -> list[Any]:
        return [env.render() for env in self.envs]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def connect_ray(address: str | None = None, min_cpus: int = 1) -> Any:
    """``ray`` connected: to ``address``, else ``RAY_ADDRESS``, else a local Ray with at least ``min_cpus`` CPUs."""
    try:
        import ray
    except ImportError as e:
        raise ConfigError("finetune.vec_env: ray needs Ray: pip install 'rlft[ray]'.") from e
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        local: dict[str, Any] = {} if address else {"num_cpus": max(min_cpus, os.cpu_count() or 1)}
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **local)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise ConfigError(f"Cannot connect to the Ray cluster at '{address}': {e}. Check finetune.ray_address "
                              "(or RAY_ADDRESS), or leave both unset for a local Ray.") from e
    return ray


class RayVecEnv(VecEnv):
    """``n_envs`` env copies split over ``actors`` Ray actors (see the module docstring)."""

    def __init__(self, env_fns: list[Callable[[], gym.Env[Any, Any]]], actors: int = 0,
                 address: str | None = None) -> None:
        n = len(env_fns)
        actors = min(n, actors or n)
        self.ray = connect_ray(address, min_cpus=actors)
        bounds = np.linspace(0, n, actors + 1).round().astype(int)
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        remote = self.ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(EnvGroup)
        self.actors = [remote.remote(env_fns[s]) for s in self.slices]
        self.owner = [i for i, s in enumerate(self.slices) for _ in range(s.stop - s.start)]
        obs_space, act_space, self.render_mode = self.ray.get(self.actors[0].spaces.remote())
        self._pending: list[Any] = []
        self.closed = False
        super().__init__(n, obs_space, act_space)

    def _call(self, method: str, indices: VecEnvIndices, *args: Any) -> list[Any]:
        """``EnvGroup.method(*args, local indices)`` on the actors holding ``indices``; results in ``indices`` order."""
        wanted = list(self._get_indices(indices))
        groups: dict[int, list[int]] = {}
        for i in dict.fromkeys(wanted):
            groups.setdefault(self.owner[i], []).append(i)
        futures = [getattr(self.actors[a], method).remote(*args, [i - self.slices[a].start for i in ids])
                   for a, ids in groups.items()]
        found: dict[int, Any] = {}
        for ids, part in zip(groups.values(), self.ray.get(futures)):
            found.update(zip(ids, part if part is not None else [None] * len(ids)))
        return [found[i] for i in wanted]

    def reset(self) -> VecEnvObs:
        futures = [actor.reset.remote(self._seeds[s], self._options[s]) for actor, s in zip(self.actors, self.slices)]
        results = [x for part in self.ray.get(futures) for x in part]
        obs, self.reset_infos = zip(*results)  # type: ignore[assignment]
        self._reset_seeds()
        self._reset_options()
        return _stack_obs(list(obs), self.observation_space)

    def step_async(self, actions: np.ndarray) -> None:
        self._pending = [actor.step.remote(list(actions[s])) for actor, s in zip(self.actors, self.slices)]

    def step_wait(self) -> VecEnvStepReturn:
        results = [x for part in self.ray.get(self._pending) for x in part]
        self._pending = []
        obs, rewards, dones, infos, self.reset_infos = zip(*results)  # type: ignore[assignment]
        return (_stack_obs(list(obs), self.observation_space), np.stack(rewards), np.stack(dones),
                list(infos))

    def close(self) -> None:
        if self.closed:
            return
        if self._pending:
            self.ray.get(self._pending)
        self.ray.get([actor.close.remote() for actor in self.actors])
        for actor in self.actors:
            self.ray.kill(actor)
        self.closed = True

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [x for part in self.ray.get([a.render.remote() for a in self.actors]) for x in part]

    def has_attr(self, attr_name: str) -> bool:
        return all(self.ray.get([a.has_attr.remote(attr_name) for a in self.actors]))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._call("get_attr", indices, attr_name)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._call("set_attr", indices, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        return self._call("env_method", indices, method_name, method_args, method_kwargs)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return self._call("is_wrapped", indices, wrapper_class)
