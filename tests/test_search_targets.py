"""Soft targets: recording a search agent stores its visit distribution per move in the Minari episodes, reading
the dataset gives exactly those distributions back, and ``imitate`` fits the policy to them (cross-entropy); an
expert-iteration loop (record with ``mcts:<stage>`` -> imitate -> record again) runs through the pipeline."""

from __future__ import annotations

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
from rlft.policy.stages.imitate import bc_loss_and_accuracy, use_search_targets
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


def config(tmp_path: Path) -> dict[str, Any]:
    imitate = {"policy": {"net_arch": [32]}, "epochs": 2, "critic_warmup_epochs": 1, "batch_size": 64, "gamma": 1.0}
    return {
        "name": "exit", "seed": 0, "num_threads": 1, "device": "cpu", "env": {"id": "tictactoe"},
        "stages": ["record", "imitate", "record_1", "imitate_1", "eval"],
        "record": {"agent": "perfect:0.3", "episodes": 20},
        "imitate": imitate,
        "record_1": {"kind": "record", "agent": "mcts:imitate,sims=16", "episodes": 8, "deterministic": False},
        "imitate_1": {**imitate, "kind": "imitate", "start_from": "imitate", "targets": "search"},
        "eval": {"episodes": 4, "opponents": ["random"]},
    }


def test_expert_iteration_round_through_the_pipeline(tmp_path: Path) -> None:
    cfg = pipeline_from_dict(config(tmp_path), source="test")
    results = run_pipeline(cfg, tmp_path / "run")
    data = load_transitions(tmp_path / "run" / "data" / "record_1")
    assert data.action_targets is not None and len(data) > 8 * 4
    assert results["imitate_1"].metrics["holdout_accuracy"] >= 0  # trained on the soft targets
    assert set(results["eval"].details["table"]) >= {"imitate", "imitate_1"}
