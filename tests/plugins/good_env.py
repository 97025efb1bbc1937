"""A custom env that no rlft file mentions: walk right along a line to reach the goal."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class LineWalk(gym.Env[np.ndarray, int]):
    """Position 0..size-1 starts at 0; action 1 moves right, 0 moves left; reaching the end gives +1."""

    def __init__(self, size: int = 6) -> None:
        self.size = size
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.pos = 0
        self.t = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.size, dtype=np.float32)
        obs[self.pos] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.pos, self.t = 0, 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.pos = min(self.size - 1, self.pos + 1) if action == 1 else max(0, self.pos - 1)
        self.t += 1
        terminated = self.pos == self.size - 1
        return self._obs(), float(terminated), terminated, self.t >= 4 * self.size, {}


def make_env(size: int = 6) -> LineWalk:
    return LineWalk(size)


class RightExpert:
    """Always walks right."""

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> int:
        return 1
