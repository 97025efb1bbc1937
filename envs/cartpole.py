"""CartPole-v1 with a scripted expert (a PD controller on pole angle and angular velocity).

The expert balances the pole for the full 500 steps from almost every start; it is what `rlft record` uses as
``--agent expert`` on CartPole.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


def make_env(**kwargs: Any) -> gym.Env[Any, Any]:
    """``gymnasium.make("CartPole-v1", **kwargs)``."""
    return gym.make("CartPole-v1", **kwargs)


class CartPoleExpert:
    """Push toward the side the pole falls to, with damping on the cart: ``a = [k . obs > 0]``.

    The gains weigh pole angle and angular velocity most, and the cart's position and velocity a little, so the
    cart also stays near the centre (and the episode is not cut short by leaving the track).
    """

    gains = np.array([0.2, 0.5, 10.0, 2.0])

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> int:
        return int(float(np.dot(self.gains, np.asarray(observation, dtype=np.float64))) > 0.0)
