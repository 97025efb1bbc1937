"""Evaluating agents on single-agent Gymnasium envs (two-player games are in :mod:`rlft.games`).

Every action an agent returns is checked (:func:`checked_action`): an action outside the action space or one that
the action mask forbids is an :class:`~rlft.errors.IllegalActionError`, never a silent wrong move.

Example::

    result = evaluate_gym(rlft.load_agent("runs/cartpole"), "CartPole-v1", episodes=20, seed=1000)
    print(result.mean, result.std)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlft.errors import IllegalActionError


def checked_action(agent: Any, obs: Any, mask: Any, deterministic: bool, action_space: Any = None) -> Any:
    """Ask ``agent`` for an action and check it is legal."""
    action = agent.act(obs, action_mask=mask, deterministic=deterministic)
    if isinstance(action, np.ndarray) and action.shape == ():
        action = action.item()
    if mask is not None:
        m = np.asarray(mask).astype(bool)
        if not (isinstance(action, int | np.integer) and 0 <= int(action) < len(m) and m[int(action)]):
            raise IllegalActionError(
                f"Agent {type(agent).__name__} chose action {action!r}, which the action mask forbids "
                f"(legal: {np.flatnonzero(m).tolist()}). Agents must respect action_mask."
            )
    elif action_space is not None and not action_space.contains(
        np.asarray(action, dtype=action_space.dtype) if getattr(action_space, "shape", ()) else action
    ):
        raise IllegalActionError(
            f"Agent {type(agent).__name__} chose action {action!r}, which is outside the action space {action_space}."
        )
    return action


@dataclass
class EvalResult:
    """Returns of evaluation episodes."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    @property
    def std(self) -> float:
        return float(np.std(self.returns)) if self.returns else float("nan")

    def as_dict(self) -> dict[str, float]:
        return {"mean_return": self.mean, "std_return": self.std, "episodes": len(self.returns),
                "mean_length": float(np.mean(self.lengths)) if self.lengths else float("nan")}


def evaluate_gym(agent: Any, env: Any, episodes: int, seed: int = 0, deterministic: bool = True,
                 progress: bool = False) -> EvalResult:
    """Play ``episodes`` episodes of a Gymnasium env (an instance) with ``agent``; seeds are ``seed + i``."""
    from tqdm.auto import tqdm

    result = EvalResult()
    for ep in tqdm(range(episodes), desc="eval", disable=not progress, unit="ep"):
        obs, info = env.reset(seed=seed + ep)
        total, length, done = 0.0, 0, False
        while not done:
            mask = info.get("action_mask") if isinstance(info, dict) else None
            action = checked_action(agent, obs, mask, deterministic, env.action_space)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            length += 1
            done = terminated or truncated
        result.returns.append(total)
        result.lengths.append(length)
    return result
