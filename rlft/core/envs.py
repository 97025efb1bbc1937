"""Env plugins: resolving an env spec and checking an env against the Gymnasium / PettingZoo API.

An env spec is, in the order tried:

1. a built-in name from ``rlft.envs`` (``cartpole``, and the board games);
2. a name offered by an installed package in the entry-point group ``rlft.envs``;
3. ``path/to/file.py:make_env`` or ``pkg.module:make_env`` -- a factory (or class) returning a Gymnasium env or a
   PettingZoo env; Gymnasium's own ``pkg.module:Env-v0`` form also works;
4. a registered Gymnasium id (``CartPole-v1``).

Example::

    plugin = resolve_env("my_envs/maze.py:make_env")
    env = plugin.make()
    check_env(plugin)  # raises EnvCheckError naming the rule an env breaks
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env as gym_check_env

from rlft.core import plugins
from rlft.core.errors import EnvCheckError, PluginError


@dataclass
class EnvPlugin:
    """An environment plugin: how to build the env, and the scripted agents that come with it."""

    name: str
    """The spec the user wrote (or the built-in name)."""
    factory: str | Callable[..., Any]
    """Callable ``factory(**kwargs) -> env`` or a ``"module:attr"`` string imported on first use."""
    description: str = ""
    agents: dict[str, str] = field(default_factory=dict)
    """Built-in experts / opponents for this env: name -> ``"module:Class"`` (constructed with no arguments)."""
    gym_id: str | None = None
    """The Gymnasium id when the env is a registered Gymnasium env (used in dataset metadata)."""
    builtin: bool = False
    """Built-ins are trusted and skip the API check at train time (they are checked in rlft's own tests)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Free-form hooks for other capabilities (e.g. a text view of observations for LLM policies)."""

    def make(self, **kwargs: Any) -> Any:
        """Build one env instance (a ``gym.Env`` or a PettingZoo env)."""
        factory = self.factory
        if isinstance(factory, str):
            factory = plugins.import_object(factory, "env")
        return plugins.call_factory(factory, kwargs, kind="env", spec=self.name)


BUILTIN_ENVS = "rlft.envs:BUILTIN_ENVS"
"""Where the built-in env plugins live (the ``envs/`` folder, a layer above the core): named, imported on first use."""
GYM_ID_AGENTS = "rlft.envs:GYM_ID_AGENTS"
"""Scripted agents for plain Gymnasium ids (``--env CartPole-v1 --agent expert``)."""


def builtin_envs() -> dict[str, EnvPlugin]:
    """The built-in env plugins by name."""
    return plugins.import_object(BUILTIN_ENVS, "env table")  # type: ignore[no-any-return]


def _gym_id_plugin(spec: str) -> EnvPlugin:
    agents = plugins.import_object(GYM_ID_AGENTS, "agent table").get(spec, {})
    return EnvPlugin(name=spec, factory=functools.partial(gym.make, spec), gym_id=spec, agents=dict(agents),
                     builtin=True, description=f"Gymnasium env {spec}")


def resolve_env(spec: str) -> EnvPlugin:
    """Resolve an env spec to an :class:`EnvPlugin` (see the module docstring for the order)."""
    table = builtin_envs()
    if spec in table:
        plugin = table[spec]
        plugin.builtin = True
        return plugin
    eps = plugins.entry_point_names("rlft.envs")
    if spec in eps:
        obj = plugins.resolve(spec, kind="env", group="rlft.envs")
        return obj if isinstance(obj, EnvPlugin) else EnvPlugin(name=spec, factory=obj)
    if spec in gym.registry:
        return _gym_id_plugin(spec)
    if ":" in spec:
        plugins.check_code_allowed(spec, "env")
        target, attr = spec.rsplit(":", 1)
        try:
            obj = plugins.import_object(spec, "env")
        except PluginError:
            # Gymnasium's own "module:EnvId-v0" form: importing the module registers the id.
            if not target.endswith(".py") and "-v" in attr:
                try:
                    gym.spec(spec)
                    return _gym_id_plugin(spec)
                except Exception:
                    pass
            raise
        if isinstance(obj, EnvPlugin):
            return obj
        if not callable(obj):
            raise PluginError(f"Env plugin '{spec}' is not callable: expected a factory or an env class.")
        return EnvPlugin(name=spec, factory=obj)
    known = ", ".join(sorted(table))
    raise PluginError(
        f"Unknown env '{spec}'. It is not a built-in env ({known}), not offered by an installed package "
        "(entry-point group 'rlft.envs'), and not a registered Gymnasium id. Give a factory as "
        "'path/to/file.py:make_env' or 'pkg.module:make_env', or run `rlft envs` to list what is available."
    )


def is_pettingzoo(env: Any) -> bool:
    """True for PettingZoo AEC or parallel envs."""
    try:
        from pettingzoo.utils.env import AECEnv, ParallelEnv
    except ImportError:
        return False
    return isinstance(env, AECEnv | ParallelEnv)


def check_gym_env(env: Any, name: str) -> list[str]:
    """Run Gymnasium's env checker; raise :class:`EnvCheckError` naming the rule broken. Returns the warnings."""

    if not isinstance(env, gym.Env):
        raise EnvCheckError(
            f"Env plugin '{name}' returned a {type(env).__name__}, which is not a gymnasium.Env (nor a PettingZoo "
            "env). Rule: a factory must return an instance of gymnasium.Env with observation_space, action_space, "
            "reset() and step()."
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            gym_check_env(env.unwrapped, skip_render_check=True)
        except Exception as e:
            rule = str(e).strip() or type(e).__name__
            raise EnvCheckError(
                f"Env plugin '{name}' breaks the Gymnasium API: {rule} "
                "Fix the env (see https://gymnasium.farama.org/api/env/), then re-run `rlft check-env`."
            ) from e
    _check_finite_rollout(env, name)
    return [str(w.message) for w in caught]


def _check_finite_rollout(env: Any, name: str, steps: int = 200) -> None:
    """Play ``steps`` random steps: every observation and reward must be finite (NaN reaches the logits otherwise)."""
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    for t in range(steps):
        values = obs.values() if isinstance(obs, dict) else [obs]
        if not all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in values):
            raise EnvCheckError(f"Env plugin '{name}' returned an observation with NaN or infinite values (random "
                                f"play, step {t}). Rule: observations must be finite numbers.")
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        if not np.isfinite(float(reward)):
            raise EnvCheckError(f"Env plugin '{name}' returned the reward {reward} (random play, step {t}). Rule: "
                                "rewards must be finite numbers.")
        if terminated or truncated:
            obs, _ = env.reset()


def check_pettingzoo_env(make: Callable[[], Any], name: str) -> list[str]:
    """Run PettingZoo's ``api_test`` and ``seed_test`` (AEC envs) or ``parallel_api_test``."""
    from pettingzoo.test import api_test, parallel_api_test, seed_test
    from pettingzoo.utils.env import ParallelEnv

    env = make()
    out = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught, redirect_stdout(out):
            warnings.simplefilter("always")
            if isinstance(env, ParallelEnv):
                parallel_api_test(env, num_cycles=200)
            else:
                api_test(env, num_cycles=200)
                seed_test(make, num_cycles=50)
    except Exception as e:
        raise EnvCheckError(
            f"Env plugin '{name}' breaks the PettingZoo API: {str(e).strip() or type(e).__name__} "
            "Fix the env (see https://pettingzoo.farama.org/content/environment_creation/), then re-run "
            "`rlft check-env`."
        ) from e
    return [str(w.message) for w in caught]


def check_env(plugin: EnvPlugin, env_kwargs: dict[str, Any] | None = None) -> list[str]:
    """Check a plugin's env against the Gymnasium or PettingZoo API; return warnings, raise on a broken rule."""
    env_kwargs = env_kwargs or {}
    env = plugin.make(**env_kwargs)
    try:
        if is_pettingzoo(env):
            return check_pettingzoo_env(lambda: plugin.make(**env_kwargs), plugin.name)
        return check_gym_env(env, plugin.name)
    finally:
        close = getattr(env, "close", None)
        if callable(close):
            close()
