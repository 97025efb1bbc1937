"""Self-play snapshots are taken exactly on schedule: at the start, then once `snapshot_every` steps have passed since
the last one (checked at each rollout), never with `pool_size: 0`, and after a resume from the step the checkpoint's
pool was last refreshed at."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from rlft.core.config import from_dict
from rlft.core.envs import resolve_env
from rlft.policies.networks import PolicySpec
from rlft.policy.config import SelfPlayConfig
from rlft.policy.envs import make_gym_env
from rlft.policy.games.selfplay import make_self_play_env, self_play_kwargs
from rlft.policy.stages.finetune import FinetuneConfig, FinetuneRunner


def trained(pool_size: int, last_snapshot: int = -1, total: int = 320) -> FinetuneRunner:
    """``total`` steps of self-play PPO in rollouts of 64 (starting at steps 0, 64, 128, ...), snapshot_every 128."""
    cfg = from_dict(FinetuneConfig, {"total_timesteps": total, "n_envs": 2, "n_steps": 32, "batch_size": 64,
                                     "n_epochs": 1, "eval_every": 0,
                                     "self_play": {"opponents": ["random"], "pool_size": pool_size,
                                                   "snapshot_every": 128}})
    runner = FinetuneRunner(cfg=cfg, env_spec="tictactoe", env_kwargs={}, seed=0, device="cpu")
    runner.build(None, PolicySpec(net_arch=[8]))
    runner.last_snapshot = last_snapshot  # >= 0: as a resume sets it from the checkpoint's pool
    runner.learn()
    return runner


def snapshots(runner: FinetuneRunner) -> list[str]:
    (state, *others) = runner.model.get_env().env_method("pool_state")
    assert all([p["key"] for p in o["snapshots"]] == [p["key"] for p in state["snapshots"]] for o in others)
    return [p["key"] for p in state["snapshots"]]


@pytest.mark.parametrize("pool_size, expected", [(3, ["snapshot@0", "snapshot@128", "snapshot@256"]),
                                                 (1, ["snapshot@256"]),
                                                 (0, [])])
def test_snapshots_follow_the_schedule(pool_size: int, expected: list[str]) -> None:
    runner = trained(pool_size)
    assert snapshots(runner) == expected
    assert runner.last_snapshot == (256 if pool_size else -1)


def test_a_pool_of_one_gets_its_first_snapshot_at_the_start() -> None:
    assert snapshots(trained(1, total=64)) == ["snapshot@0"]


def test_a_resumed_schedule_continues_from_the_last_snapshot() -> None:
    """Resumed with a pool last refreshed at step 0: no new snapshot at the start, the next one 128 steps later."""
    runner = trained(3, last_snapshot=0)
    assert snapshots(runner) == ["snapshot@128", "snapshot@256"]


def test_snapshots_of_a_masked_learner_are_masked() -> None:
    runner = trained(1)
    (state, *_) = runner.model.get_env().env_method("pool_state")
    assert runner.masked and [p["masked"] for p in state["snapshots"]] == [True]


def test_the_seed_reaches_the_self_play_env() -> None:
    def env(seed: int) -> Any:
        adapter = functools.partial(make_self_play_env, adapter_kwargs=self_play_kwargs(SelfPlayConfig(), seed))
        return make_gym_env(resolve_env("tictactoe"), {}, adapter)

    assert env(5)._rng.random() == np.random.default_rng(5).random()
    assert env(6)._rng.random() == np.random.default_rng(6).random()
