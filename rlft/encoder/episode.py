"""Classification as a one-step episode: the degenerate-reward view, runnable through rlft's PPO machinery.

An episode shows one example (the observation); the agent's single action is a label; the reward is 1 if the label
is right and 0 otherwise; the episode ends. Any PPO / policy-gradient code can learn a classifier this way -- the
``finetune`` stage runs it unchanged (``env.id: rlft.encoder.episode:make_blobs_env``).

How this relates to supervised training (``classify``), for a softmax policy ``pi(a|x)`` and true label ``y``:

* The expected reward is ``J = sum_a pi(a|x) [a = y] = pi(y|x)``, so the exact policy gradient is
  ``grad pi(y|x) = pi(y|x) * grad log pi(y|x)``: the supervised (cross-entropy) gradient, weighted by the
  probability the policy already gives the true label. REINFORCE/PPO estimate it from sampled actions.
* With the reward set to the log-likelihood of the true label, ``r = log pi(y|x)``, the objective *is* the
  negative cross-entropy, and its gradient is exactly the supervised gradient; equivalently, REINFORCE with the
  action fixed to the known label and reward 1 gives ``grad log pi(y|x)``.

So when labels are known, the supervised path is the same loop with the best possible reward and no sampling:
every example gives a full-strength, zero-variance gradient (not one scaled down by ``pi(y|x)`` -- tiny exactly on
the examples the model gets wrong), and no exploration is needed. rlft therefore uses the supervised gradient by
default and keeps the reward-driven loop for what labels cannot express: a score for a whole behaviour.

Example::

    env = make_blobs_env(seed=0)
    obs, _ = env.reset(seed=0)
    _, reward, terminated, _, _ = env.step(env.action_space.sample())  # reward 1.0 or 0.0, terminated True
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class ClassificationEpisodeEnv(gym.Env[np.ndarray, np.int64]):
    """One labelled example per episode; action = predicted label; reward 1 if correct; one step long."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, features: np.ndarray, labels: np.ndarray, num_labels: int | None = None) -> None:
        features = np.asarray(features, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        if len(features) != len(labels) or len(labels) == 0:
            raise ValueError(f"need as many labels as examples (got {len(features)} examples, {len(labels)} labels)")
        self.features, self.labels = features, labels
        n = int(num_labels if num_labels is not None else labels.max() + 1)
        low, high = float(features.min()) - 1.0, float(features.max()) + 1.0
        self.observation_space = gym.spaces.Box(low, high, features.shape[1:], dtype=np.float32)
        self.action_space = gym.spaces.Discrete(n)
        self._index = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._index = int(self.np_random.integers(len(self.labels)))
        return self.features[self._index].copy(), {"label": int(self.labels[self._index])}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        label = int(self.labels[self._index])
        reward = 1.0 if int(action) == label else 0.0
        return self.features[self._index].copy(), reward, True, False, {"label": label}


def blobs(n: int = 600, num_labels: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A tiny separable problem: ``num_labels`` Gaussian blobs (std 0.5) on a circle of radius 3 in 2-D."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(num_labels, size=n)
    angles = 2 * np.pi * labels / num_labels
    centres = 3.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return (centres + 0.5 * rng.standard_normal((n, 2))).astype(np.float32), labels.astype(np.int64)


def make_blobs_env(n: int = 600, num_labels: int = 3, seed: int = 0) -> ClassificationEpisodeEnv:
    """Env plugin factory: :func:`blobs` as one-step episodes (``env.id: rlft.encoder.episode:make_blobs_env``)."""
    features, labels = blobs(n, num_labels, seed)
    return ClassificationEpisodeEnv(features, labels, num_labels)
