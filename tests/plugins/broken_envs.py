"""Envs that break the Gymnasium API, for the env-checker tests."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class _Base(gym.Env[np.ndarray, int]):
    observation_space = gym.spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(2, dtype=np.float32), 0.0, True, False, {}


class BareReset(_Base):
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32)  # breaks the rule: reset returns (obs, info)


class OutOfSpace(_Base):
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        return np.full(2, 5.0, dtype=np.float32), {}  # 5.0 is outside Box(0, 1)


def make_bare_reset() -> BareReset:
    return BareReset()


def make_out_of_space() -> OutOfSpace:
    return OutOfSpace()
