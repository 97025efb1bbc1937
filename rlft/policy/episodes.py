"""Playing single-agent Gymnasium episodes: evaluation (returns) and recording (Minari episode buffers).

Every action an agent returns is checked (:func:`~rlft.core.agent.checked_action`): an action outside the action
space or one that the action mask forbids is an :class:`~rlft.core.errors.IllegalActionError`.

Example::

    returns, lengths = evaluate_gym(rlft.load_agent("runs/cartpole"), env, episodes=20, seed=1000)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from minari.data_collector.episode_buffer import EpisodeBuffer
from tqdm.auto import tqdm

from rlft.core.agent import checked_action


def evaluate_gym(agent: Any, env: Any, episodes: int, seed: int = 0, deterministic: bool = True,
                 progress: bool = False) -> tuple[list[float], list[int]]:
    """Play ``episodes`` episodes of a Gymnasium env (an instance) with ``agent``; seeds are ``seed + i``.

    Returns the episodes' returns and lengths.
    """

    returns: list[float] = []
    lengths: list[int] = []
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
        returns.append(total)
        lengths.append(length)
    return returns, lengths


def record_gym_episodes(env: Any, agent: Any, episodes: int, seed: int, deterministic: bool = True,
                        progress: bool = False) -> tuple[list[Any], list[float]]:
    """Play ``episodes`` episodes of a Gymnasium env; return Minari episode buffers and their returns."""

    buffers, returns = [], []
    for ep in tqdm(range(episodes), desc="record", disable=not progress, unit="ep"):
        obs, _ = env.reset(seed=seed + ep)
        observations, actions, rewards, terms, truncs = [obs], [], [], [], []
        done = False
        while not done:
            action = checked_action(agent, obs, None, deterministic, env.action_space)
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            terms.append(bool(terminated))
            truncs.append(bool(truncated))
            done = terminated or truncated
        buffers.append(EpisodeBuffer(id=ep, seed=seed + ep, observations=np.asarray(observations),
                                     actions=np.asarray(actions), rewards=rewards, terminations=terms,
                                     truncations=truncs, infos={}))
        returns.append(float(sum(rewards)))
    return buffers, returns
