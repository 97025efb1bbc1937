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


def test_position_after_offers_only_network_replies_to_legal_non_final_moves() -> None:
    from rlft.core.envs import resolve_env as resolve
    from rlft.envs.game_state import TicTacToeState
    from rlft.policy.envs import make_gym_env
    from rlft.policy.games.selfplay import SelfPlayEnv

    def env(opponents: list[str], pool_size: int) -> SelfPlayEnv:
        cfg = SelfPlayConfig(opponents=opponents, pool_size=pool_size, self_play_fraction=1.0,
                             snapshot_deterministic=True)
        adapter = functools.partial(make_self_play_env, adapter_kwargs=self_play_kwargs(cfg, 0))
        made = make_gym_env(resolve("tictactoe"), {}, adapter)
        assert isinstance(made, SelfPlayEnv)
        return made

    spec = PolicySpec(arch="mlp", net_arch=[8])
    learner = env([], 1)
    torch.manual_seed(0)
    policy = build_policy(spec, learner.observation_space, learner.action_space, masked=True)
    learner.add_snapshot(snapshot_payload(policy, spec, True, "snap"))
    planes, _ = learner.reset(seed=0)  # the learner moves first on an empty board
    after = learner.position_after(0)
    assert isinstance(after, TicTacToeState)
    np.testing.assert_array_equal(after.observation(), TicTacToeState.from_observation(planes).play(0).observation())
    assert learner.position_after(9) is None and learner.position_after(-1) is None  # not a move
    before, *_ = learner.step(0)
    assert learner.position_after(0) is None  # occupied now
    # The reply that was queued is the one played, whatever the network would have chosen (two different replies
    # from the same position: the network can have chosen at most one of them).
    free = [a for a in range(9) if learner.action_masks()[a]]
    move = free[0]
    for reply in (free[-1], free[-2]):
        learner._episode = 0
        learner.reset(seed=0)
        before, *_ = learner.step(0)
        learner.queue_reply(reply)
        obs, *_ = learner.step(move)
        expected = TicTacToeState.from_observation(before).play(move).play(reply)  # back to the learner's side
        np.testing.assert_array_equal(np.asarray(obs), expected.observation())
    # A move that ends the game has no reply to batch.
    learner._planes = TicTacToeState(0b000000011, 0b000011000).observation()  # mine: 0, 1; theirs: 3, 4
    learner._mask = TicTacToeState(0b000000011, 0b000011000).legal_mask()
    assert learner.position_after(2) is None and learner.position_after(8) is not None
    # An env without a game state offers nothing to batch either.
    from rlft.core.envs import EnvPlugin

    plain = SelfPlayEnv(EnvPlugin("tictactoe", "rlft.envs.tictactoe:make_env"), resolve("tictactoe").make(),
                        SelfPlayConfig(opponents=[], pool_size=1))
    plain.add_snapshot(snapshot_payload(policy, spec, True, "snap"))
    plain.reset(seed=0)
    assert plain._state_cls is None and plain.position_after(0) is None
    # A fixed scripted opponent is not a network: nothing to batch.
    scripted = env(["random"], 0)
    scripted.reset(seed=0)
    assert scripted.position_after(0) is None


def test_batched_infos_match_dummy_vec_env_and_are_copies() -> None:
    """The shallow-copied infos carry what DummyVecEnv's deep copies do (terminal observations included), and a
    consumer's edit to one does not reach the next step's."""
    plain, batched = venv(4), BatchedReplies(venv(4))
    plain.reset(), batched.reset()
    rng = np.random.default_rng(1)
    terminal = 0
    for _ in range(60):
        masks = np.stack(plain.env_method("action_masks"))
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        *_, infos_a = plain.step(actions)
        *_, infos_b = batched.step(actions)
        for a, b in zip(infos_a, infos_b):
            assert a.keys() == b.keys()
            for key in a:
                if key == "episode":  # Monitor's statistics: the same return and length, its own clock
                    assert (a[key]["r"], a[key]["l"]) == (b[key]["r"], b[key]["l"])
                else:
                    np.testing.assert_array_equal(a[key], b[key])
            terminal += "terminal_observation" in b
            assert b.get("edited") is None
            b["edited"] = True
    assert terminal > 5

