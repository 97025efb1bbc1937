"""Solver-labelled positions: the shipped Connect Four set, the book decoding that labels it, ``rlft eval
--positions``, and alpha-beta's random tie-breaking (the evaluation opponent that cannot be replayed)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from rlft.cli.main import main
from rlft.core.envs import resolve_env
from rlft.envs.game_state import ConnectFourState
from rlft.policy.agents import resolve_agent
from rlft.policy.games.positions import read_positions, score_positions

ROOT = Path(__file__).parents[1]
POSITIONS = ROOT / "benchmarks" / "data" / "c4_positions.jsonl"


def builder():  # scripts/build_c4_positions.py as a module
    spec = importlib.util.spec_from_file_location("build_c4_positions", ROOT / "scripts" / "build_c4_positions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_set_has_several_stages_of_informative_positions() -> None:
    rows = read_positions(POSITIONS)
    assert len(rows) >= 500
    stages = {r["stage"] for r in rows}
    assert stages == {"7-ply", "11-ply", "late"}
    for r in rows:
        legal = [v for v in r["values"] if v is not None]
        assert len(set(legal)) > 1  # not every move equally good: the position tells moves apart


def test_late_labels_are_the_exact_search_values() -> None:
    solver = builder().Solver()
    late = [r for r in read_positions(POSITIONS) if r["stage"] == "late"][:5]
    for r in late:
        state = ConnectFourState.initial()
        for m in r["moves"]:
            state = state.play(m)
        assert solver.move_values(state) == r["values"]


def test_book_decoding_matches_the_package() -> None:
    pytest.importorskip("bitbully_databases")
    from bitbully_databases import BitBullyDatabases

    b = builder()
    book, theirs = b.Book("8-ply"), BitBullyDatabases("8-ply")
    rng = np.random.default_rng(0)
    checked = 0
    while checked < 20:  # random 8-ply positions: our code and lookup give the package's own answer
        state = ConnectFourState.initial()
        for _ in range(8):
            legal = np.flatnonzero(state.legal_mask())
            state = state.play(int(rng.choice(legal))) if len(legal) else state
        if state.ply != 8 or state.terminal_value() is not None or b.wins_now(state):
            continue
        planes = state.observation()  # first player to move at 8 plies: plane 0 is the first player's
        board = (planes[..., 0] + 2 * planes[..., 1]).tolist()
        assert book.value(state) == theirs.get_book_value(board)
        assert b.huffman(state) == BitBullyDatabases._to_huffman(board)
        checked += 1


def test_scores_count_optimal_and_outcome_preserving_moves(tmp_path: Path) -> None:
    rows = [{"moves": [], "values": [-2, -1, 0, 3, 0, -1, -2], "stage": "a"},   # best: 3 (a win)
            {"moves": [3], "values": [-5, -1, 0, 0, 0, -1, -5], "stage": "b"}]  # best: a draw (2, 3 or 4)
    first = resolve_agent("alphabeta:1,0,first", resolve_env("connect_four"))  # centre first: column 3
    score = score_positions(first, ConnectFourState, rows)
    assert score.scalars()["optimal_share"] == 1.0
    rows[0]["values"] = [-2, -1, 0, 1, 3, -1, -2]  # now 4 is best; 3 still wins
    s = score_positions(first, ConnectFourState, rows).scalars()
    assert (s["optimal_share"], s["outcome_preserving_share"], s["optimal_share/a"]) == (0.5, 1.0, 0.0)


def test_cli_eval_positions_and_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = tmp_path / "p.jsonl"
    small.write_text("".join(json.dumps(r) + "\n" for r in read_positions(POSITIONS)[:30]))
    agent = tmp_path / "agent"
    from rlft.policies.checkpoint import save_policy
    from rlft.policies.networks import PolicySpec
    from tests.test_search import network

    save_policy(agent, network().policy, PolicySpec(arch="mlp", net_arch=[]), masked=True, env="connect_four", step=0)
    assert main(["eval", str(agent), "--positions", str(small), "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["positions"] == 30 and 0 <= out["optimal_share"] <= out["outcome_preserving_share"] <= 1
    assert main(["eval", f"mcts:{agent},sims=8", "--positions", str(small), "--json", "-q"]) == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"moves": [1]}\n')
    assert main(["eval", str(agent), "--positions", str(bad), "-q"]) == 2
    assert "Line 1" in capsys.readouterr().err


def test_alphabeta_breaks_ties_at_random_unless_asked_not_to() -> None:
    plugin = resolve_env("connect_four")
    state = ConnectFourState.initial()
    for _ in range(6):  # a full centre column: a mirror-symmetric position, so columns c and 6 - c tie
        state = state.play(3)
    obs, mask = state.observation(), state.legal_mask().astype(np.int8)
    picks = {resolve_agent("alphabeta:2", plugin, seed=s).act(obs, mask) for s in range(12)}
    fixed = {resolve_agent("alphabeta:2,0,first", plugin, seed=s).act(obs, mask) for s in range(12)}
    assert len(picks) > 1 and len(fixed) == 1


def test_alphabeta_noise_stops_after_plies() -> None:
    """`plies=N` keeps the EPS noise to the first N stones: with EPS=1 the player moves at random on an empty board
    but plays its search's best move once N stones are down; a malformed option is a clear error."""
    plugin = resolve_env("connect_four")
    empty = ConnectFourState.initial()
    later = empty
    for move in [3, 3, 2, 4]:
        later = later.play(move)

    def picks(spec: str, state: ConnectFourState) -> set[int]:
        obs, mask = state.observation(), state.legal_mask().astype(np.int8)
        return {resolve_agent(spec, plugin, seed=s).act(obs, mask) for s in range(16)}

    best_later = picks("alphabeta:2,0,first", later)
    assert len(picks("alphabeta:2,1,first,plies=4", empty)) > 2  # noise at the opening
    assert picks("alphabeta:2,1,first,plies=4", later) == best_later  # none once 4 stones are down
    assert len(picks("alphabeta:2,1,first", later)) > 2  # without plies= the noise never stops
    from rlft.core.errors import PluginError

    for bad in ["alphabeta:2,0.1,plies=x", "alphabeta:2,0.1,plies=-1", "alphabeta:2,0.1,first,random"]:
        with pytest.raises(PluginError, match="alphabeta"):
            resolve_agent(bad, plugin)
