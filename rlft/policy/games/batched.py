"""Batched opponent inference for self-play: one forward pass per opponent network per vectorised step.

Without it every env of a ``DummyVecEnv`` asks its opponent for a reply inside its own ``step``: with a snapshot of the
learner as the opponent, that is one forward pass of batch size 1 per env and step. :class:`BatchedReplies` wraps the
vectorised env: before the envs step, it computes the position each env will be in after the learner's move (with the
env plugin's game state, :mod:`rlft.envs.game_state`), evaluates all positions that face the same network opponent in
one batch, and queues each env's reply; the env then plays it instead of calling the opponent. Everything else --
rewards, resets, the pool's results, Monitor statistics -- is the env's own ``step``. Scripted opponents, the
opponent's first move of a game (made inside ``reset``) and subprocess envs are not batched.

The envs step as in ``DummyVecEnv.step_wait``, but the infos are handed on as shallow copies instead of SB3's deep
copy of every info dict (a self-play env returns a fresh dict per step, so the copy only cost time: about 3% of the
rollouts).

Example::

    venv = BatchedReplies(make_vec_env("connect_four", 8, adapter=hooks.adapter(cfg, seed)))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

from rlft.policies.networks import action_logits, masked_logits


class BatchedReplies(VecEnvWrapper):
    """Batches the network opponents' replies across the envs of a ``DummyVecEnv`` of self-play envs."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        assert isinstance(venv, DummyVecEnv), "BatchedReplies needs in-process envs (DummyVecEnv)"
        self.selfplay: list[Any] = [env.unwrapped for env in venv.envs]
        self.batches = 0
        """Forward passes made for replies (one per network opponent per step)."""
        self.replies = 0
        """Replies computed in those batches."""

    def reset(self) -> Any:
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        groups: dict[str, list[tuple[Any, Any]]] = {}  # by opponent: every env holds a copy of each snapshot
        for env, action in zip(self.selfplay, actions):
            position = env.position_after(int(action))
            if position is not None:
                groups.setdefault(env.opponent.key, []).append((env, position))
        for items in groups.values():
            self._reply(items)
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        """``DummyVecEnv.step_wait`` (SB3 2.x, its buffers and ``_save_obs``), infos shallow-copied."""
        venv = self.venv
        assert isinstance(venv, DummyVecEnv)
        for i, env in enumerate(venv.envs):
            obs, venv.buf_rews[i], terminated, truncated, info = env.step(venv.actions[i])
            venv.buf_dones[i] = terminated or truncated
            info = dict(info)
            info["TimeLimit.truncated"] = truncated and not terminated
            if venv.buf_dones[i]:
                info["terminal_observation"] = obs
                obs, venv.reset_infos[i] = env.reset()
            venv.buf_infos[i] = info
            venv._save_obs(i, obs)  # private SB3 API, as DummyVecEnv.step_wait uses it
        return venv._obs_from_buf(), np.copy(venv.buf_rews), np.copy(venv.buf_dones), list(venv.buf_infos)

    def _reply(self, items: list[tuple[Any, Any]]) -> None:
        """One forward pass for every env facing the same network; each env gets its reply queued."""
        opponent = items[0][0].opponent
        policy = opponent.agent.policy
        obs = torch.as_tensor(np.stack([p.observation() for _, p in items]), device=policy.device)
        masks = np.stack([p.legal_mask() for _, p in items])
        with torch.no_grad():
            logits = masked_logits(action_logits(policy, obs), masks)
            chosen = logits.argmax(-1) if opponent.deterministic else torch.distributions.Categorical(
                logits=logits).sample()
        for (env, _), action in zip(items, chosen.tolist()):
            env.queue_reply(int(action))
        self.batches += 1
        self.replies += len(items)

