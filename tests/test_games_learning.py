""""It learns" on the full tic-tac-toe config (slow: about 4 minutes on 2 cores; `pytest -m slow`).

The acceptance line of the games issue: the final agent loses none of 200 games against perfect minimax (both seats)
and wins at least 0.8 of 200 against random, measured with `rlft.load_agent` on the real PettingZoo env.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import rlft
from rlft.cli.main import main
from rlft.core.envs import resolve_env
from rlft.policy.games.arena import evaluate_game


@pytest.mark.slow
def test_tictactoe_config_never_loses_to_perfect_play(tmp_path: Path) -> None:
    run_dir = tmp_path / "ttt"
    assert main(["train", "configs/tictactoe.yaml", "--run-dir", str(run_dir), "-q"]) == 0
    agent = rlft.load_agent(run_dir)
    result = evaluate_game(agent, resolve_env("tictactoe"), {}, ["perfect", "random"], 200, seed=123)
    result = {k: r.to_json() for k, r in result.items()}
    assert result["perfect"]["losses"] == 0
    assert result["random"]["win"] >= 0.8
