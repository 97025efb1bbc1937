"""Soft targets: recording a search agent stores its visit distribution per move in the Minari episodes, reading
the dataset gives exactly those distributions back, and ``imitate`` fits the policy to them (cross-entropy); an
expert-iteration loop (record with ``mcts:<stage>`` -> imitate -> record again) runs through the pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rlft.core.envs import resolve_env
from rlft.envs.game_state import TicTacToeState
from rlft.pipeline.config import pipeline_from_dict
from rlft.pipeline.runner import run_pipeline
from rlft.policy.datasets import load_dataset, load_transitions
from rlft.policy.games.play import play_game, write_games
from rlft.policy.search import MCTSAgent, SearchSettings
from rlft.policy.stages.imitate import bc_loss_and_accuracy, check_value_target, critic_targets, use_search_targets
from tests.test_search import network


def test_visit_distributions_round_trip_through_minari(tmp_path: Path) -> None:
    plugin = resolve_env("tictactoe")
    env = plugin.make()
    seats = {s: MCTSAgent(network(shape=(3, 3, 2), n=9), TicTacToeState, SearchSettings(sims=16, seed=i))
             for i, s in enumerate(env.possible_agents)}
    results = [play_game(env, seats, seed=g, deterministic=False, record=True) for g in range(4)]
    write_games(tmp_path / "ds", results, env, {"rlft_env": "tictactoe"})
    data = load_transitions(tmp_path / "ds")
    expected = np.concatenate([np.stack(t.search_policies) for r in results for t in r.traces.values()
                               if t.actions])
    assert data.action_targets is not None and data.action_targets.dtype == np.float32
    np.testing.assert_array_equal(data.action_targets, expected)  # exactly what the search produced, in order
    assert np.allclose(data.action_targets.sum(1), 1.0) and (data.action_targets[~data.action_masks] == 0).all()
    # the moves played are among the searched ones, and Minari itself reads the field too
    assert all(data.action_targets[i, a] > 0 for i, a in enumerate(data.actions))
    first = next(load_dataset(tmp_path / "ds").iterate_episodes())
    assert first.infos["search_policy"].shape == (len(first.actions) + 1, 9)
    # the root value of every move comes back too, in order
    values = np.array([v for r in results for t in r.traces.values() for v in t.search_values], dtype=np.float32)
    assert data.value_targets is not None and len(values) == len(data)
    np.testing.assert_array_equal(data.value_targets, values)
    assert (np.abs(values) <= 1).all() and first.infos["search_value"].shape == (len(first.actions) + 1, 1)


def test_critic_targets_take_the_search_value_where_there_is_one() -> None:
    returns = np.array([1.0, -1.0, 0.5], dtype=np.float32)
    searched = np.array([0.2, np.nan, -0.5], dtype=np.float32)
    np.testing.assert_allclose(critic_targets(returns, searched, "returns"), returns)
    np.testing.assert_allclose(critic_targets(returns, searched, "search"), [0.2, -1.0, -0.5])
    np.testing.assert_allclose(critic_targets(returns, searched, "mix"), [0.6, -1.0, 0.0])
    np.testing.assert_allclose(critic_targets(returns, None, "mix"), returns)


def test_soft_target_loss_is_the_cross_entropy() -> None:
    agent = network(shape=(3, 3, 2), n=9)
    obs = torch.zeros((2, 3, 3, 2))
    mask = torch.ones((2, 9), dtype=torch.bool)
    mask[:, 0] = False
    targets = torch.zeros((2, 9))
    targets[:, 1], targets[:, 2] = 0.75, 0.25
    loss, _ = bc_loss_and_accuracy(agent.policy, obs, targets, mask)
    # a zero network is uniform over the 8 legal moves: cross-entropy = log 8 whatever the target
    assert loss.item() == pytest.approx(np.log(8), abs=1e-5)


def test_search_targets_needed_when_asked(tmp_path: Path) -> None:
    from rlft.core.errors import DatasetError
    from rlft.policy.datasets import Transitions

    data = Transitions(*([np.zeros(1)] * 8), observation_space=None, action_space=None)  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="search_policy"):
        use_search_targets(data, "search", "d")
    with pytest.raises(DatasetError, match="search_value"):
        check_value_target(data, "mix", "d")
    check_value_target(data, "returns", "d")


def config(tmp_path: Path) -> dict[str, Any]:
    imitate = {"policy": {"net_arch": [32]}, "epochs": 2, "critic_warmup_epochs": 1, "batch_size": 64, "gamma": 1.0}
    return {
        "name": "exit", "seed": 0, "num_threads": 1, "device": "cpu", "env": {"id": "tictactoe"},
        "stages": ["record", "imitate", "record_1", "imitate_1", "eval"],
        "record": {"agent": "alphabeta:3,0.3", "episodes": 20},  # with its search targets
        "imitate": imitate,
        "record_1": {"kind": "record", "agent": "mcts:imitate,sims=16", "episodes": 8, "deterministic": False},
        "imitate_1": {**imitate, "kind": "imitate", "start_from": "imitate", "targets": "search", "replay": ["record"],
                      "value_target": "mix"},  # search values from record_1, the returns for record's games
        "eval": {"episodes": 4, "opponents": ["random"]},
    }


def test_expert_iteration_round_through_the_pipeline(tmp_path: Path) -> None:
    cfg = pipeline_from_dict(config(tmp_path), source="test")
    results = run_pipeline(cfg, tmp_path / "run")
    data = load_transitions(tmp_path / "run" / "data" / "record_1")
    assert data.action_targets is not None and len(data) > 8 * 4
    assert data.value_targets is not None and not np.isnan(data.value_targets).any()
    assert results["imitate_1"].metrics["holdout_accuracy"] >= 0  # trained on the soft targets
    assert set(results["eval"].details["table"]) >= {"imitate", "imitate_1"}
    # the replay window: imitate_1 learnt from record_1's search games and the first record's games
    meta = json.loads((tmp_path / "run" / "stages" / "imitate_1" / "agent.json").read_text())
    assert meta["replay"] == [str(tmp_path / "run" / "data" / "record")]


def test_replayed_datasets_are_joined_episode_by_episode(tmp_path: Path) -> None:
    from rlft.core.errors import ConfigError, DatasetError
    from rlft.pipeline.artifacts import Artifacts, Outputs
    from rlft.policy.datasets import concat_transitions

    plugin = resolve_env("tictactoe")
    env = plugin.make()
    for name, episodes in [("a", 3), ("b", 2)]:
        seats = {s: MCTSAgent(network(shape=(3, 3, 2), n=9), TicTacToeState, SearchSettings(sims=8, seed=i))
                 for i, s in enumerate(env.possible_agents)}
        results = [play_game(env, seats, seed=g, deterministic=False, record=True) for g in range(episodes)]
        write_games(tmp_path / name, results, env, {"rlft_env": "tictactoe"})
    a, b = load_transitions(tmp_path / "a"), load_transitions(tmp_path / "b")
    both = concat_transitions([a, b], ["a", "b"])
    assert len(both) == len(a) + len(b)
    np.testing.assert_array_equal(both.observations, np.concatenate([a.observations, b.observations]))
    np.testing.assert_array_equal(both.action_targets, np.concatenate([a.action_targets, b.action_targets]))
    b.value_targets = None  # e.g. alpha-beta games: no search values, NaN in the joined data
    mixed = concat_transitions([a, b], ["a", "b"]).value_targets
    assert mixed is not None and not np.isnan(mixed[:len(a)]).any() and np.isnan(mixed[len(a):]).all()
    # episodes stay distinct and in order, one last observation each
    assert len(np.unique(both.episode)) == len(np.unique(a.episode)) + len(np.unique(b.episode))
    assert (np.diff(both.episode) >= 0).all() and len(both.last_observations) == len(np.unique(both.episode))
    b.action_targets = None
    with pytest.raises(DatasetError, match="search targets"):
        concat_transitions([a, b], ["a", "b"])
    artifacts = Artifacts()
    artifacts.add("record", Outputs(dataset=str(tmp_path / "a")))
    assert artifacts.dataset_of("record", by="imitate.replay") == str(tmp_path / "a")
    with pytest.raises(ConfigError, match="record"):
        artifacts.dataset_of("record_9", by="imitate.replay")
