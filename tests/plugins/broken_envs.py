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


class NaNLater(gym.Env[np.ndarray, int]):
    """Passes Gymnasium's checker, then returns NaN observations after a few steps (as a buggy simulator might)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, after: int = 30) -> None:
        self.after, self.t = after, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        value = np.nan if self.t > self.after else 0.0
        return np.full(2, value, dtype=np.float32), 1.0, False, self.t % 50 == 0, {}


class RaisesLater(NaNLater):
    """Raises inside step() after a few steps."""

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        if self.t > self.after:
            raise RuntimeError("the simulator lost its connection")
        return np.zeros(2, dtype=np.float32), 1.0, False, self.t % 50 == 0, {}


def make_nan_later() -> NaNLater:
    return NaNLater()


def make_raises_later() -> RaisesLater:
    return RaisesLater(after=300)  # passes check-env's 200 random steps, then fails during training


def make_nan_much_later() -> NaNLater:
    return NaNLater(after=300)  # passes check-env's 200 random steps, then returns NaN during training
