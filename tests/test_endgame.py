"""The exact endgame solver (rlft/policy/endgame.py) and the search agent's use of it (mcts:...,solve=K)."""

from __future__ import annotations

import numpy as np
import pytest

from rlft.envs.game_state import ConnectFourState, TicTacToeState
from rlft.policy.endgame import EndgameSolver, empty_cells
from rlft.policy.search import MCTSAgent, SearchSettings, _Node
from tests.test_search import network


def negamax_values(state: ConnectFourState | TicTacToeState) -> np.ndarray:
    """Every legal move's exact score by plain negamax (no pruning; memoised), the reference: a win
    +(empty cells after the winning stone + 1), a loss the negative, a draw 0."""

    memo: dict[tuple[int, int], int] = {}

    def value(s: ConnectFourState | TicTacToeState, cells: int) -> int:
        done = s.terminal_value()
        if done is not None:
            return -(cells + 1) if done == -1 else 0
        if s.key() not in memo:
            memo[s.key()] = max(-value(s.play(int(a)), cells - 1) for a in np.flatnonzero(s.legal_mask()))
        return memo[s.key()]

    cells = empty_cells(state)
    return np.array([-value(state.play(a), cells - 1) if ok else np.nan for a, ok in enumerate(state.legal_mask())])


def random_position(cls: type, plies: int, rng: np.random.Generator) -> ConnectFourState | TicTacToeState | None:
    s = cls.initial()
    for _ in range(plies):
        if s.terminal_value() is not None:
            return None
        s = s.play(int(rng.choice(np.flatnonzero(s.legal_mask()))))
    return s if s.terminal_value() is None else None


@pytest.mark.parametrize(("cls", "plies", "n"), [(TicTacToeState, 0, 1), (TicTacToeState, 3, 30),
                                                 (ConnectFourState, 32, 25)])
def test_solver_agrees_with_plain_negamax(cls: type, plies: int, n: int) -> None:
    rng = np.random.default_rng(0)
    positions = [p for p in (random_position(cls, plies, rng) for _ in range(40 * n)) if p is not None][:n]
    assert len(positions) == n
    solver = EndgameSolver(max_nodes=10**6)
    outcomes, distances = set(), set()
    for s in positions:
        got, want = solver.move_values(s), negamax_values(s)
        assert got is not None
        best = np.nanmax(want)
        np.testing.assert_array_equal(got == np.nanmax(got), want == best)  # the same optimal moves
        assert np.nanmax(got) == best  # with their exact score
        assert np.all(np.isnan(got) == np.isnan(want)) and np.all(got[want < best] < best)
        outcomes.add(float(np.sign(best)))
        distances.add(float(best))
    if plies == 0:
        assert outcomes == {0.0}  # tic-tac-toe is a draw
    else:
        assert len(outcomes) > 1  # wins, draws and losses among the positions: the check is not one-sided
    if cls is ConnectFourState:
        assert len(distances) > len(outcomes)  # and wins (or losses) of different lengths


def test_solver_gives_up_past_its_budget() -> None:
    solver = EndgameSolver(max_nodes=50)
    assert solver.move_values(ConnectFourState.initial()) is None
    assert solver.nodes > 50


def test_search_with_the_solver_plays_only_moves_of_the_best_exact_value() -> None:
    """A flat network (uniform prior, value 0) with 16 simulations cannot tell Connect Four endgame moves apart;
    with solve=10 every move it picks keeps the best exact result, and without it some do not."""
    rng = np.random.default_rng(1)
    decisive: list[tuple[ConnectFourState, np.ndarray]] = []
    while len(decisive) < 40:  # positions where the moves differ in exact value
        s = random_position(ConnectFourState, 32, rng)
        if s is not None and np.unique((v := negamax_values(s))[~np.isnan(v)]).size > 1:
            decisive.append((s, v))
    solving = MCTSAgent(network(), ConnectFourState, SearchSettings(sims=16, solve=10))
    pure = MCTSAgent(network(), ConnectFourState, SearchSettings(sims=16))

    def best_kept(agent: MCTSAgent) -> float:
        picks = [agent.act(s.observation(), s.legal_mask().astype(np.int8)) for s, _ in decisive]
        return float(np.mean([v[a] == np.nanmax(v) for a, (_, v) in zip(picks, decisive)]))

    assert best_kept(solving) == 1.0
    assert best_kept(pure) < 1.0
    assert solving.last_search_value in (-1.0, 0.0, 1.0)  # the exact result, for the player who moved


def test_a_reused_tree_whose_visits_the_solver_rules_out_still_plays_a_best_move() -> None:
    """reuse=1 + solve: the subtree kept from the last move may hold all its visits on a move the solver now rules
    out; the search must still spend its simulations on (and play) a move of the best exact value."""
    rng = np.random.default_rng(3)
    found = 0
    while found < 5:
        parent = random_position(ConnectFourState, 31, rng)
        if parent is None:
            continue
        last = int(rng.choice(np.flatnonzero(parent.legal_mask())))
        state = parent.play(last)
        if state.terminal_value() is not None:
            continue
        values = negamax_values(state)
        legal = np.flatnonzero(state.legal_mask())
        best = np.flatnonzero(values == np.nanmax(values))
        if legal[0] in best:  # the first legal move is what an empty visit count would fall back to
            continue
        found += 1
        worst = int(legal[np.argmin(values[legal])])
        agent = MCTSAgent(network(), ConnectFourState, SearchSettings(sims=16, solve=10, reuse=1))
        root = _Node(parent)
        root.prior = parent.legal_mask() / parent.legal_mask().sum()
        kept = root.child(last)
        kept.prior = state.legal_mask() / state.legal_mask().sum()
        kept.visits[worst], kept.value_sum[worst] = 100, 50  # the old tree liked the move the solver rules out
        agent._tree = root
        assert agent.act(state.observation(), state.legal_mask().astype(np.int8)) in best
        assert agent.last_search_policy is not None and agent.last_search_policy[worst] == 0
