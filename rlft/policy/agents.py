"""Policy agents and agent specs: an SB3 actor-critic as an agent, a random player, and ``resolve_agent``.

Agent *specs* (for recording, opponents and the arena) are built-in names of an env's scripted agents (``expert``,
``random``, ``alphabeta:2``), run / checkpoint / ``.zip`` paths, and ``pkg.module:Class`` / ``file.py:Class``.

Example::

    opponent = resolve_agent("alphabeta:2", resolve_env("connect_four"), seed=0)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy

from rlft.core import plugins
from rlft.core.agent import SEARCH_SPECS, Agent, check_mask, load_agent
from rlft.core.errors import CheckpointError, ConfigError, IllegalActionError, PluginError
from rlft.pipeline.artifacts import Artifacts
from rlft.policies.networks import action_logits, masked_logits


class PolicyAgent:
    """An actor-critic policy as an :class:`Agent`. Masks are applied to the logits, so it never plays illegally."""

    def __init__(self, policy: ActorCriticPolicy, meta: dict[str, Any] | None = None) -> None:
        self.policy = policy
        self.meta = meta or {}
        self.policy.set_training_mode(False)

    @property
    def device(self) -> torch.device:
        return self.policy.device

    def _obs_tensor(self, observation: Any) -> torch.Tensor:
        obs, _ = self.policy.obs_to_tensor(observation)
        return obs  # type: ignore[return-value]

    def distribution_logits(self, observation: Any, action_mask: Any = None) -> torch.Tensor:
        """Masked action logits for one observation (Discrete action spaces)."""

        with torch.no_grad():
            logits = action_logits(self.policy, self._obs_tensor(observation))[0]
        return masked_logits(logits, check_mask(action_mask))

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> Any:
        if isinstance(self.policy.action_space, gym.spaces.Discrete):
            logits = self.distribution_logits(observation, action_mask)
            if deterministic:
                return int(torch.argmax(logits).item())
            return int(torch.distributions.Categorical(logits=logits).sample().item())
        if action_mask is not None:
            raise IllegalActionError("Action masks are only supported for Discrete action spaces.")
        action, _ = self.policy.predict(observation, deterministic=deterministic)
        return action

    def value(self, observation: Any) -> float:
        """The critic's value estimate for one observation."""
        with torch.no_grad():
            return float(self.policy.predict_values(self._obs_tensor(observation)).item())


class RandomAgent:
    """Uniformly random legal actions (needs the action space, or a mask at every call)."""

    def __init__(self, action_space: Any = None, seed: int | None = None) -> None:
        self.action_space = action_space
        self.rng = np.random.default_rng(seed)

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> Any:
        mask = check_mask(action_mask)
        if mask is not None:
            return int(self.rng.choice(np.flatnonzero(mask)))
        if self.action_space is None:
            raise PluginError("RandomAgent needs the env's action space or an action mask.")
        return self.action_space.sample()


def resolve_agent(spec: str, env_plugin: Any = None, *, action_space: Any = None, seed: int | None = None,
                  trust_pickle: bool = False, device: str = "auto") -> Agent:
    """Resolve an agent spec: a built-in agent of the env, ``random``, an agent class an installed package offers in
    the entry-point group ``rlft.agents``, a run / checkpoint / ``.zip`` path, or ``pkg.module:Class``.

    Built-in and entry-point agents may take a parameter after a colon (``alphabeta:2`` -> ``Cls("2")``);
    ``mcts:RUN[,sims=N,...]`` is a PUCT search over the agent at RUN (:mod:`rlft.policy.search`).
    """
    builtins: dict[str, str] = dict(getattr(env_plugin, "agents", {}) or {})
    name, _, arg = spec.partition(":")
    if name in builtins:
        cls = plugins.import_object(builtins[name], "agent")
        args = [arg] if arg else []
        try:
            return _instantiate(cls, args, seed=seed, action_space=action_space)
        except (TypeError, ValueError) as e:
            raise PluginError(f"Built-in agent '{spec}' cannot be created: {e}") from e
    if name in SEARCH_SPECS:  # mcts:RUN,sims=200
        from rlft.policy.search import load_mcts_agent

        return load_mcts_agent(spec, env_plugin=env_plugin, seed=seed, device=device, trust_pickle=trust_pickle)
    if spec == "random":
        return RandomAgent(action_space, seed=seed)
    if name in plugins.entry_point_names("rlft.agents"):  # an installed package's agent class, e.g. `mybot:3`
        cls = plugins.resolve(name, kind="agent", group="rlft.agents")
        return _instantiate(cls, [arg] if arg else [], seed=seed, action_space=action_space)
    if Path(spec).exists():
        return load_agent(spec, trust_pickle=trust_pickle, device=device)
    if ":" in spec:
        plugins.check_code_allowed(spec, "agent")
        obj = plugins.import_object(spec, "agent")
        agent = _instantiate(obj, [], seed=seed, action_space=action_space) if isinstance(obj, type) else obj
        if not callable(getattr(agent, "act", None)):
            raise PluginError(f"Agent '{spec}' has no act(observation, action_mask=None) method.")
        return agent
    known = ", ".join(sorted([*builtins, "random"]))
    raise PluginError(
        f"Unknown agent '{spec}'. It is not a built-in agent of this env ({known}), not an existing run, checkpoint "
        "or .zip path, and not 'pkg.module:Class' / 'file.py:Class'."
    )


def _instantiate(cls: Callable[..., Any], args: list[str], *, seed: int | None, action_space: Any) -> Any:
    """Construct a built-in agent class, passing ``seed`` / ``action_space`` only if it accepts them."""

    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    kwargs: dict[str, Any] = {}
    if "seed" in params:
        kwargs["seed"] = seed
    if "action_space" in params:
        kwargs["action_space"] = action_space
    return cls(*args, **kwargs)


def start_policy(start_from: str, artifacts: Artifacts, *, by: str, device: str, trust_pickle: bool = False,
                 env: str | None = None) -> tuple[Any, dict[str, Any]] | None:
    """The policy a stage starts from, and its ``agent.json`` metadata; None for a fresh network.

    ``start_from`` is ``""`` or ``scratch`` (a fresh network), ``previous`` (the newest agent an earlier stage
    produced), the name of an earlier stage, or a run / checkpoint / SB3 ``.zip`` path.
    """
    if start_from in ("", "scratch"):
        return None
    if start_from == "previous":
        path = artifacts.latest_agent()
        if path is None:
            raise ConfigError(f"{by} is 'previous', but no earlier stage produced an agent. Add `imitate` (or another "
                              "stage that trains one) before it, or set it to `scratch` or a checkpoint path.")
    elif start_from in artifacts.agents or not Path(start_from).exists() and ":" not in start_from \
            and "/" not in start_from and not start_from.endswith(".zip"):
        path = artifacts.agent_of(start_from, by=by)
    else:
        path = start_from
    agent = load_agent(path, device=device, trust_pickle=trust_pickle, env=env)
    if not isinstance(agent, PolicyAgent):
        raise ConfigError(f"{by} '{start_from}' ({path}) is not a policy checkpoint that this stage can train.")
    return agent.policy, agent.meta


def agent_spec_in_run(spec: str, artifacts: Artifacts, *, by: str) -> str:
    """An agent spec with an earlier stage named in it replaced by that stage's agent folder: ``imitate`` or
    ``previous`` -> its path, ``mcts:imitate,sims=64`` -> ``mcts:<path>,sims=64`` (so expert iteration can search
    with the agent the run just trained). Other specs are returned unchanged."""
    head, colon, rest = spec.partition(":")
    search = head in SEARCH_SPECS and colon
    target, comma, options = rest.partition(",") if search else (spec, "", "")
    if target == "previous":
        path = artifacts.latest_agent()
        if path is None:
            raise ConfigError(f"{by} '{spec}' searches with the previous stage's agent, but no earlier stage produced "
                              "one. Put a stage that trains one (imitate, finetune) before it, or name a run folder.")
    elif target in artifacts.agents:
        path = artifacts.agents[target]
    else:
        return spec
    return f"{head}:{path}{comma}{options}" if search else str(path)


def check_agent_fits(agent: Any, observation_space: Any, action_space: Any, env: str, what: str = "The agent") -> None:
    """A policy agent's network must fit the env's observations and actions; a CheckpointError names both otherwise
    (instead of a shape error deep in a forward pass). Agents that are not policies are not checked."""
    policy = getattr(agent, "policy", None)
    if not isinstance(policy, ActorCriticPolicy):
        return
    have_obs, have_act = policy.observation_space, policy.action_space
    same_obs = getattr(have_obs, "shape", None) == getattr(observation_space, "shape", None)
    same_act = type(have_act) is type(action_space) and all(
        getattr(have_act, a, None) == getattr(action_space, a, None) for a in ("n", "shape"))
    if not (same_obs and same_act):
        trained_on = getattr(agent, "meta", {}).get("env") or "another env"
        raise CheckpointError(
            f"{what} does not fit the env '{env}': its network takes observations {have_obs} and actions {have_act}, "
            f"the env gives {observation_space} and {action_space}. It was trained on {trained_on}: use it there "
            "(--env), or train one for this env.")
