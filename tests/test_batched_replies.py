"""Batched opponent inference: a vectorised self-play env whose snapshot opponent's replies are computed in one
forward pass per step plays exactly the games the unbatched envs play (same seeds, same learner moves)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from rlft.core.envs import resolve_env
from rlft.policies.networks import PolicySpec, build_policy
from rlft.policy.config import SelfPlayConfig
from rlft.policy.envs import make_vec_env
from rlft.policy.games.batched import BatchedReplies
from rlft.policy.games.hooks import GameHooks
from rlft.policy.games.pool import snapshot_payload
from rlft.policy.games.selfplay import make_self_play_env, self_play_kwargs


def venv(n: int) -> object:
    cfg = SelfPlayConfig(opponents=[], pool_size=2, self_play_fraction=1.0, snapshot_deterministic=True)
    adapter = functools.partial(make_self_play_env, adapter_kwargs=self_play_kwargs(cfg, 0))
    v = make_vec_env("connect_four", n, seed=3, adapter=adapter)
    torch.manual_seed(0)
    env = v.envs[0].unwrapped
    policy = build_policy(PolicySpec(arch="mlp", net_arch=[16]), env.observation_space, env.action_space, masked=True)
    v.env_method("add_snapshot", snapshot_payload(policy, PolicySpec(arch="mlp", net_arch=[16]), True, "snap"))
    return v


def test_batched_replies_play_the_same_games() -> None:
    plain, batched = venv(4), BatchedReplies(venv(4))
    rng = np.random.default_rng(0)
    obs_a, obs_b = plain.reset(), batched.reset()
    np.testing.assert_array_equal(obs_a, obs_b)
    dones = 0
    for _ in range(100):
        masks = np.stack(plain.env_method("action_masks"))
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        obs_a, rew_a, done_a, _ = plain.step(actions)
        obs_b, rew_b, done_b, _ = batched.step(actions)
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(rew_a, rew_b)
        np.testing.assert_array_equal(done_a, done_b)
        dones += int(done_a.sum())
    assert dones > 10
    assert batched.replies > 2 * batched.batches > 0  # several envs' replies per forward pass
    assert sum(batched.get_attr("moves")) == sum(plain.get_attr("moves"))


def test_game_hooks_batch_in_process_envs_only() -> None:
    hooks = GameHooks(resolve_env("connect_four"), {})
    v = venv(2)
    assert isinstance(hooks.vectorised(v), BatchedReplies)
