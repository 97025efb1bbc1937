"""The self-play env and opponent pool: reward attribution per seat, seat alternation, masks in every path, PFSP
sampling, snapshots, Elo."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
import torch

from rlft.core.config import from_dict
from rlft.core.envs import resolve_env
from rlft.core.errors import IllegalActionError
from rlft.policies.networks import PolicySpec, build_policy
from rlft.policy.agents import PolicyAgent
from rlft.policy.config import SelfPlayConfig
from rlft.policy.envs import make_gym_env
from rlft.policy.games.arena import evaluate_game, fit_elo
from rlft.policy.games.play import play_game
from rlft.policy.games.pool import OpponentPool, PoolEntry, policy_from_payload, snapshot_payload
from rlft.policy.games.selfplay import SelfPlayEnv, make_self_play_env
from rlft.policy.hooks import env_hooks


class Scripted:
    """Plays the first legal square from a fixed preference list."""

    def __init__(self, order: list[int]) -> None:
        self.order = order

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> int:
        return next(a for a in self.order if action_mask[a])


def ttt_env(opponent: Any, **cfg: Any) -> SelfPlayEnv:
    settings = {"self_play": {"opponents": [], "pool_size": 1, **cfg}}
    adapter = functools.partial(make_self_play_env, adapter_kwargs=settings)
    env = make_gym_env(resolve_env("tictactoe"), {}, adapter)
    assert isinstance(env, SelfPlayEnv)
    env.pool = OpponentPool(env.cfg, {"scripted": opponent})
    return env


def test_reward_goes_to_the_learners_seat_in_both_seats() -> None:
    env = ttt_env(Scripted([3, 4, 5, 6, 7, 8]))
    # Episode 1: learner first (X). It takes 0, 1, 2 and wins; the opponent's replies happen inside step().
    obs, info = env.reset(seed=0)
    assert info["seat"] == env.seats[0] and obs.sum() == 0
    rewards = []
    for a in (0, 1, 2):
        obs, r, term, trunc, info = env.step(a)
        rewards.append(r)
    assert rewards == [0.0, 0.0, 1.0] and term and info["result"] == 1.0
    # Episode 2: learner second (O). The opponent has already moved (3) when the learner first sees the board.
    obs, info = env.reset()
    assert info["seat"] == env.seats[1]
    assert obs[1, 0, 1] == 1 and obs[..., 0].sum() == 0  # plane 1 = opponent's piece at square 3
    total, done = 0.0, False
    for a in (0, 1, 8):  # the opponent completes 3-4-5 after the learner's second move
        obs, r, done, _, info = env.step(a)
        total += r
        if done:
            break
    assert done and total == -1.0 and info["result"] == 0.0


def test_illegal_learner_action_is_an_error() -> None:
    env = ttt_env(Scripted(list(range(9))))
    env.reset(seed=0)
    env.step(4)  # opponent answers 0
    assert not env.action_masks()[0]
    with pytest.raises(IllegalActionError, match="forbids"):
        env.step(0)


def _rigged_policy(illegal_action: int, masked: bool = True) -> Any:
    """A tic-tac-toe policy with a huge logit on one action."""
    obs_space, act_space, _ = env_hooks("tictactoe").learner_spaces()
    policy = build_policy(PolicySpec(net_arch=[16]), obs_space, act_space, masked=masked)
    with torch.no_grad():
        policy.action_net.bias.zero_()
        policy.action_net.bias[illegal_action] = 1e4
    return policy


def test_huge_logit_on_an_illegal_action_is_never_played() -> None:
    policy = _rigged_policy(4)
    agent = PolicyAgent(policy)
    ttt = resolve_env("tictactoe")
    # Evaluation (greedy and sampled), as learner and as opponent: the agent prefers square 4 but never plays it
    # when it is taken.
    for det in (True, False):
        result = evaluate_game(agent, ttt, {}, ["perfect", "random"], 10, seed=0, deterministic=det)
        assert sum(r.games for r in result.values()) == 20
    # Snapshots rebuilt inside the env keep masking.
    frozen = policy_from_payload(snapshot_payload(policy, PolicySpec(net_arch=[16]), True, "s"),
                                 policy.observation_space, policy.action_space)
    env = ttt_env(frozen)
    for _ in range(4):
        env.reset()
        done = False
        while not done:
            legal = np.flatnonzero(env.action_masks())
            _, _, done, _, _ = env.step(int(legal[-1]))


def test_masks_in_bc_loss_kl_and_ppo_rollouts() -> None:
    from rlft.policies.networks import action_logits, masked_logits
    from rlft.policy.ppo import RlftMaskablePPO, categorical_kl
    from rlft.policy.stages.imitate import bc_loss_and_accuracy

    policy = _rigged_policy(4)
    obs = torch.zeros(2, 3, 3, 2)
    obs[:, 1, 1, 1] = 1  # square 4 taken by the opponent
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[:, 4] = False
    loss, acc = bc_loss_and_accuracy(policy, obs, torch.tensor([0, 8]), mask)
    assert torch.isfinite(loss) and loss.item() < 10  # the illegal logit does not swamp the legal ones
    loss.backward()
    assert policy.action_net.bias.grad[4].abs().item() == 0.0  # no gradient through the illegal action
    logits = masked_logits(action_logits(policy, obs), mask)
    ref = masked_logits(torch.zeros(2, 9), mask)
    kl = categorical_kl(logits, ref)
    assert torch.isfinite(kl).all()
    # PPO rollouts + updates from the rigged policy: the env raises on any illegal action, so none is sampled.
    env = ttt_env(Scripted([4, 0, 1, 2, 3, 5, 6, 7, 8]))
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: env])
    model = RlftMaskablePPO("MlpPolicy", venv, n_steps=64, batch_size=32, n_epochs=1, seed=0,
                            policy_kwargs={"net_arch": [16]}, kl_coef=0.1)
    model.policy.load_state_dict(_rigged_policy(4).state_dict(), strict=False)
    model.set_reference(model.policy)
    model.learn(256)


def test_pool_keeps_the_newest_snapshots() -> None:
    pool = OpponentPool(SelfPlayConfig(opponents=[], pool_size=3))
    for i in range(5):
        pool.add_snapshot(f"s{i}", object())
    assert [e.key for e in pool.snapshots] == ["s2", "s3", "s4"]
    assert OpponentPool(SelfPlayConfig(pool_size=0)).sample(np.random.default_rng(0)) is None


def test_pfsp_leans_toward_opponents_the_learner_loses_to() -> None:
    cfg = SelfPlayConfig(opponents=[], pool_size=3, pfsp_power=1.0, pfsp_floor=0.05)
    pool = OpponentPool(cfg)
    for key in ("easy", "even", "hard"):
        pool.add_snapshot(key, object())
    for _ in range(30):
        pool.record("easy", 1.0)
        pool.record("even", 0.5)
        pool.record("hard", 0.0)
    rng = np.random.default_rng(0)
    counts = {"easy": 0, "even": 0, "hard": 0}
    for _ in range(3000):
        entry = pool.sample(rng)
        assert entry is not None
        counts[entry.key] += 1
    assert counts["hard"] > counts["even"] > counts["easy"] > 0
    w = pool.weights(pool.snapshots)
    assert w[2] / w[0] > 5
    # The draws follow the PFSP weights themselves (3,000 draws: a standard error under 0.01).
    assert np.allclose([counts[k] / 3000 for k in ("easy", "even", "hard")], w, atol=0.03)


def test_pfsp_weights_by_hand() -> None:
    """(1 - win rate) ** power + floor, normalised; win rate = (score + 1) / (games + 2)."""
    pool = OpponentPool(SelfPlayConfig(opponents=[], pfsp_power=2.0, pfsp_floor=0.1))
    pool.entries = [PoolEntry("a", None, False, score=3.0, games=4.0), PoolEntry("b", None, False)]
    raw = [(1 - 4 / 6) ** 2 + 0.1, (1 - 0.5) ** 2 + 0.1]
    assert np.allclose(pool.weights(pool.entries), np.array(raw) / sum(raw))


def test_self_play_fraction_splits_fixed_and_snapshots() -> None:
    rng = np.random.default_rng(1)
    for fraction, expect in ((0.0, 0.0), (1.0, 1.0), (0.3, 0.3)):
        pool = OpponentPool(SelfPlayConfig(self_play_fraction=fraction), {"random": object()})
        pool.add_snapshot("s", object())
        draws = [not pool.sample(rng).fixed for _ in range(2000)]  # type: ignore[union-attr]
        assert abs(np.mean(draws) - expect) < 0.05
    uniform = OpponentPool(SelfPlayConfig(opponents=[], pfsp_power=0.0))
    uniform.entries = [PoolEntry("a", None, False, score=10, games=10), PoolEntry("b", None, False)]
    assert np.allclose(uniform.weights(uniform.entries), [0.5, 0.5])


def test_snapshot_callback_fills_the_pool_during_finetuning(tmp_path: Any) -> None:
    from rlft.policy.stages.finetune import FinetuneConfig, FinetuneRunner

    cfg = from_dict(FinetuneConfig, {"total_timesteps": 512, "n_envs": 2, "n_steps": 64, "batch_size": 64,
                                     "n_epochs": 1, "eval_every": 0,
                                     "self_play": {"opponents": ["random"], "pool_size": 2, "snapshot_every": 128}})
    runner = FinetuneRunner(cfg=cfg, env_spec="tictactoe", env_kwargs={}, seed=0, device="cpu")
    runner.build(None, PolicySpec(net_arch=[16]))
    assert runner.masked
    runner.learn()
    keys = runner.model.get_env().env_method("pool_stats")
    for stats in keys:
        snaps = [k for k in stats if k.startswith("snapshot@")]
        assert len(snaps) == 2 and "random" in stats


def test_checkpoint_keeps_the_opponent_pool_and_resume_restores_it(tmp_path: Any) -> None:
    from rlft.core.checkpoint import Checkpointer
    from rlft.core.errors import CheckpointError
    from rlft.policy.stages.finetune import FinetuneConfig, FinetuneRunner

    self_play = {"opponents": ["random"], "pool_size": 2, "snapshot_every": 128}
    cfg = from_dict(FinetuneConfig, {"total_timesteps": 512, "n_envs": 2, "n_steps": 64, "batch_size": 64,
                                     "n_epochs": 1, "eval_every": 0, "self_play": self_play})

    def runner() -> Any:
        r = FinetuneRunner(cfg=cfg, env_spec="tictactoe", env_kwargs={}, seed=0, device="cpu")
        r.build(None, PolicySpec(net_arch=[16]))
        return r

    first = runner()
    first.learn()
    checkpoints = Checkpointer(tmp_path / "ckpt")
    first.save_checkpoint(checkpoints, 512)
    second = runner()
    second.restore_checkpoint(checkpoints.path(512))
    before, after = first.model.get_env(), second.model.get_env()
    assert after.env_method("pool_stats") == before.env_method("pool_stats")  # same opponents, same results
    assert second.last_snapshot == first.last_snapshot > 0
    old, new = before.env_method("pool_state")[0], after.env_method("pool_state")[0]
    assert [p["key"] for p in new["snapshots"]] == [p["key"] for p in old["snapshots"]]
    for a, b in zip(old["snapshots"], new["snapshots"]):
        assert all(np.array_equal(a["state"][k], b["state"][k]) for k in a["state"])
    (checkpoints.path(512) / "pool" / "snapshot-0.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(CheckpointError, match="opponent pool"):
        runner().restore_checkpoint(checkpoints.path(512))


class Stubborn:
    """Always plays square 0, legal or not."""

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> int:
        return 0


def test_play_game_rejects_an_illegal_move() -> None:
    env = resolve_env("tictactoe").make()
    with pytest.raises(IllegalActionError):
        first, second = env.possible_agents
        play_game(env, {first: Stubborn(), second: Scripted([0, 1, 2, 3, 4, 5, 6, 7, 8])})


def test_self_play_config_is_validated() -> None:
    from rlft.core.errors import ConfigError

    with pytest.raises(ConfigError, match="nobody to play"):
        from_dict(SelfPlayConfig, {"opponents": [], "pool_size": 0})
    with pytest.raises(ConfigError, match="self_play_fraction"):
        from_dict(SelfPlayConfig, {"self_play_fraction": 2})


def test_elo_from_pairwise_results() -> None:
    # A scores 75% against B over many games: about +191 Elo.
    scores = np.array([[0, 750.0], [250.0, 0]])
    games = np.array([[0, 1000.0], [1000.0, 0]])
    elo = fit_elo(scores, games)
    assert abs((elo[0] - elo[1]) - 400 * np.log10(3)) < 5
    assert abs(elo.mean() - 1000) < 1e-6
    fixed = fit_elo(scores, games, fixed={1: 0.0})
    assert fixed[1] == 0.0 and abs(fixed[0] - 191) < 5


def test_board_cnn_policy_saves_and_loads(tmp_path: Any) -> None:
    """The `cnn` arch shares its features extractor under three names; the checkpoint must still round-trip."""
    from rlft.policies.checkpoint import load_policy, save_policy

    obs_space, act_space, _ = env_hooks("connect_four").learner_spaces()
    spec = PolicySpec(arch="cnn", cnn_channels=[8], net_arch=[16])
    policy = build_policy(spec, obs_space, act_space, masked=True)
    save_policy(tmp_path, policy, spec, masked=True, env="connect_four")
    loaded, meta = load_policy(tmp_path)
    obs = torch.zeros(1, 6, 7, 2)
    from rlft.policies.networks import action_logits

    assert torch.allclose(action_logits(policy, obs), action_logits(loaded, obs))
    assert meta["policy"]["arch"] == "cnn"
