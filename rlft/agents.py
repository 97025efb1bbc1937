"""Agents: anything with ``act(observation, action_mask=None, deterministic=True)``, and how to load them.

``rlft.load_agent(path)`` accepts a run folder (loads ``DIR/final``), a checkpoint folder (``agent.json`` +
``model.safetensors``), or a Stable-Baselines3 ``.zip`` (weights only; the full pickle-based load needs
``trust_pickle=True``). Agent *specs* (for recording, opponents and the arena) add built-in names of an env's scripted
agents (``expert``, ``random``, ``alphabeta:2``) and ``pkg.module:Class`` / ``file.py:Class``.

Example::

    agent = rlft.load_agent("runs/cartpole")
    action = agent.act(observation, action_mask=None, deterministic=True)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy

from rlft import plugins
from rlft.errors import CheckpointError, IllegalActionError, PluginError


@runtime_checkable
class Agent(Protocol):
    """The one interface every policy, expert and opponent implements."""

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> Any:
        """Return an action for ``observation``; with a mask, only an action whose mask entry is 1."""
        ...


def check_mask(action_mask: Any) -> np.ndarray | None:
    """Validate an action mask: a state with no legal action is an error, not a silent move."""
    if action_mask is None:
        return None
    mask = np.asarray(action_mask).astype(bool)
    if not mask.any():
        raise IllegalActionError(
            "The action mask has no legal action, so no move can be chosen. The env should have ended the episode "
            "(terminated=True) in this state; check the env's termination logic."
        )
    return mask


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
        from rlft.policies.networks import action_logits, masked_logits

        with torch.no_grad():
            logits = action_logits(self.policy, self._obs_tensor(observation))[0]
        return masked_logits(logits, check_mask(action_mask))

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> Any:
        import gymnasium as gym

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


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------

AGENT_KINDS: dict[str, str] = {"policy": "rlft.agents:_load_policy_agent", "llm": "rlft.llm.agent:load_llm_agent"}
"""Loaders by the ``kind`` field of ``agent.json``: policies here; LLM agents register ``llm``."""


def _load_policy_agent(folder: Path, meta: dict[str, Any], device: str) -> Agent:
    from rlft.policies.checkpoint import load_policy

    policy, meta = load_policy(folder, device=device)
    return PolicyAgent(policy, meta)


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA when present, else CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def agent_folder(path: str | Path) -> Path:
    """The folder holding ``agent.json`` for a run folder (its ``final/``) or a checkpoint folder."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"No agent at '{p}': the path does not exist.")
    if (p / "agent.json").is_file():
        return p
    if (p / "run.json").is_file():
        if (p / "final" / "agent.json").is_file():
            return p / "final"
        raise CheckpointError(
            f"The run '{p}' has no final agent yet (it did not finish). Resume it with "
            f"`rlft train --run-dir {p} --resume`, or load one of its checkpoints in '{p / 'checkpoints'}'."
        )
    raise CheckpointError(
        f"'{p}' is neither a run folder (run.json) nor an agent checkpoint (agent.json) nor an SB3 .zip file."
    )


def load_agent(path: str | Path, *, device: str = "auto", trust_pickle: bool = False,
               env: str | None = None) -> Agent:
    """Load an agent from a run folder, a checkpoint folder or an SB3 ``.zip``.

    ``trust_pickle`` allows SB3's full load, which unpickles (and so can execute) code from the file; without it a
    ``.zip`` is read weights-only. ``env`` (a spec) supplies spaces when an SB3 file's metadata lacks them.
    """
    device = resolve_device(device)
    p = Path(path)
    if p.suffix == ".zip" and p.is_file():
        from rlft.policies.sb3_zip import load_sb3_zip

        policy, meta = load_sb3_zip(p, trust_pickle=trust_pickle, env=env, device=device)
        return PolicyAgent(policy, meta)
    folder = agent_folder(p)
    from rlft.run import read_json

    meta = read_json(folder / "agent.json", "agent metadata")
    kind = meta.get("kind", "policy") if isinstance(meta, dict) else None
    if kind not in AGENT_KINDS:
        raise CheckpointError(f"'{folder}' holds an agent of unknown kind {kind!r}; known: {sorted(AGENT_KINDS)}.")
    loader = plugins.import_object(AGENT_KINDS[kind], "agent loader")
    return loader(folder, meta, device)  # type: ignore[no-any-return]


def resolve_agent(spec: str, env_plugin: Any = None, *, action_space: Any = None, seed: int | None = None,
                  trust_pickle: bool = False, device: str = "auto") -> Agent:
    """Resolve an agent spec: built-in name of the env's agents, ``random``, a run/checkpoint/zip path, or a class.

    Built-in agents may take a parameter after a colon (``alphabeta:2`` -> ``Cls("2")``).
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
    if spec == "random":
        return RandomAgent(action_space, seed=seed)
    if Path(spec).exists():
        return load_agent(spec, trust_pickle=trust_pickle, device=device)
    if ":" in spec:
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
    import inspect

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
