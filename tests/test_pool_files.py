"""The self-play opponent pool on disk: save -> read -> load gives back the same snapshots and results."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from rlft.core.envs import resolve_env
from rlft.policies.networks import PolicySpec, build_policy
from rlft.policy.config import SelfPlayConfig
from rlft.policy.envs import make_gym_env
from rlft.policy.games.pool import (
    OpponentPool,
    load_pool,
    policy_from_payload,
    read_pool,
    save_pool,
    snapshot_payload,
)
from rlft.policy.games.selfplay import make_self_play_env


def one_env_venv() -> DummyVecEnv:
    settings = {"self_play": {"opponents": ["random"], "pool_size": 3}}
    adapter = functools.partial(make_self_play_env, adapter_kwargs=settings)
    return DummyVecEnv([lambda: make_gym_env(resolve_env("tictactoe"), {}, adapter)])


def test_pool_round_trip_through_a_new_nested_folder(tmp_path: Path) -> None:
    venv = one_env_venv()
    spec = PolicySpec(net_arch=[8])
    for i in range(2):
        torch.manual_seed(i)
        policy = build_policy(spec, venv.observation_space, venv.action_space, masked=True)
        venv.env_method("add_snapshot", snapshot_payload(policy, spec, True, f"snap-{i}"))
    venv.env_method("set_pool_results", {"snap-0": [0.25, 4.0], "snap-1": [0.75, 2.0]}, indices=[0])
    folder = tmp_path / "not" / "yet" / "pool"
    save_pool(folder, venv, last_snapshot=256)
    save_pool(folder, venv, last_snapshot=512)  # writing again over the same folder works
    meta, payloads = read_pool(folder)
    assert meta["last_snapshot"] == 512 and [p["key"] for p in payloads] == ["snap-0", "snap-1"]

    fresh = one_env_venv()
    assert load_pool(folder, fresh) == 512
    saved, loaded = venv.env_method("pool_state")[0], fresh.env_method("pool_state")[0]
    assert loaded["results"] == saved["results"]
    assert loaded["results"]["snap-0"] == [0.25, 4.0]
    assert [p["key"] for p in loaded["snapshots"]] == ["snap-0", "snap-1"]
    for a, b in zip(saved["snapshots"], loaded["snapshots"]):
        assert a["spec"] == b["spec"] and a["masked"] is b["masked"] is True
        assert a["state"].keys() == b["state"].keys()
        assert all(np.array_equal(a["state"][k], b["state"][k]) for k in a["state"])


@pytest.mark.parametrize("deterministic", [True, False])
def test_a_pool_of_one_keeps_the_newest_snapshot_playing_as_configured(deterministic: bool) -> None:
    pool = OpponentPool(SelfPlayConfig(opponents=[], pool_size=1, snapshot_deterministic=deterministic),
                        {"random": object()})
    for key in ("a", "b", "c"):
        pool.add_snapshot(key, object())
    assert [e.key for e in pool.snapshots] == ["c"] and [e.key for e in pool.entries] == ["random", "c"]
    assert [e.deterministic for e in pool.snapshots] == [deterministic]


def test_a_rebuilt_snapshot_is_the_same_frozen_masked_policy() -> None:
    venv = one_env_venv()
    spec = PolicySpec(net_arch=[8])
    torch.manual_seed(0)
    policy = build_policy(spec, venv.observation_space, venv.action_space, masked=True)
    agent = policy_from_payload(snapshot_payload(policy, spec, True, "s"), venv.observation_space, venv.action_space)
    assert type(agent.policy) is type(policy)  # the maskable policy class, not the plain one
    assert not any(p.requires_grad for p in agent.policy.parameters())
    assert all(torch.equal(a, b) for a, b in zip(agent.policy.state_dict().values(), policy.state_dict().values()))
