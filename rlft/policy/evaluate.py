"""Evaluating agents on single-agent Gymnasium envs (two-player games: :mod:`rlft.policy.games.arena`).

Every action an agent returns is checked (:func:`~rlft.core.agent.checked_action`): an action outside the action
space or one that the action mask forbids is an :class:`~rlft.core.errors.IllegalActionError`.

Example::

    result = evaluate_gym(rlft.load_agent("runs/cartpole"), env, episodes=20, seed=1000)
    print(result.mean, result.std)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlft.core.agent import checked_action


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
