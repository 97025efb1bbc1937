"""Exact endgame solving for the search agent (``mcts:...,solve=K``): negamax with alpha-beta to the end of the game.

Near the end of a board game the tree left is small enough to search exhaustively, and there the network's value
head is least needed and most costly to get wrong: a Connect Four endgame is often decided by who is forced to fill
the last columns (zugzwang), which a value head trained on game outcomes rarely sees and 200 PUCT simulations
cannot prove. :class:`EndgameSolver` works on any state of the game-state protocol (``envs/game_state.py``): it only
plays moves and reads the rules' results. Values are win / draw / loss for the player to move (+1 / 0 / -1), so
alpha-beta cuts as soon as a win is found; a transposition table (keyed by the state's ``key()`` when it has one,
else its observation) is kept between moves, since the values are exact. A node budget bounds the time: when it
runs out, the solver says so and the search plays on without it.

Example::

    solver = EndgameSolver(max_nodes=50_000)
    values = solver.move_values(state)       # (n_actions,) +1 / 0 / -1 per legal move, NaN for illegal ones
    if values is None: ...                    # not solved within the budget
"""

from __future__ import annotations

from typing import Any

import numpy as np


class _OutOfBudget(Exception):
    """The node budget ran out before the position was solved."""


_EXACT, _LOWER, _UPPER = 0, 1, 2


class EndgameSolver:
    """Exact win / draw / loss values of positions, by alpha-beta over the rules (see the module docstring)."""

    def __init__(self, max_nodes: int = 50_000, max_table: int = 2_000_000) -> None:
        self.max_nodes = max_nodes
        """Positions visited per :meth:`move_values` call before it gives up."""
        self.max_table = max_table
        """Entries the transposition table may hold; it is cleared when full."""
        self.table: dict[Any, tuple[int, int]] = {}
        self.nodes = 0

    def move_values(self, state: Any) -> np.ndarray | None:
        """The exact value of every legal move for the player to move (+1 a win, 0 a draw, -1 a loss; NaN for
        illegal moves), or None when the budget ran out first."""
        if len(self.table) > self.max_table:
            self.table.clear()
        self.nodes = 0
        legal = state.legal_mask()
        values = np.full(len(legal), np.nan)
        try:
            for a in self._order(legal):
                values[a] = -self._value(state.play(int(a)), -1, 1)
        except _OutOfBudget:
            return None
        return values

    @staticmethod
    def _order(legal: np.ndarray) -> list[int]:
        """Legal moves, centre first (in Connect Four the centre columns are the strong ones: good moves first make
        alpha-beta cut early)."""
        n = len(legal)
        return [int(a) for a in sorted(np.flatnonzero(legal), key=lambda a: abs(a - (n - 1) / 2))]

    @staticmethod
    def _key(state: Any) -> Any:
        key = getattr(state, "key", None)
        return key() if key is not None else state.observation().tobytes()

    def _value(self, state: Any, alpha: int, beta: int) -> int:
        """Negamax value of ``state`` for its player to move, within the window (alpha, beta)."""
        done = state.terminal_value()
        if done is not None:
            return int(done)
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise _OutOfBudget
        key = self._key(state)
        hit = self.table.get(key)
        if hit is not None:
            flag, v = hit
            if flag == _EXACT or (flag == _LOWER and v >= beta) or (flag == _UPPER and v <= alpha):
                return v
        children = [state.play(a) for a in self._order(state.legal_mask())]
        if any(c.terminal_value() == -1 for c in children):  # a win at once
            self.table[key] = (_EXACT, 1)
            return 1
        start, best = alpha, -1
        for child in children:
            best = max(best, -self._value(child, -beta, -alpha))
            alpha = max(alpha, best)
            if alpha >= beta:
                break
        self.table[key] = (_LOWER if best >= beta else _UPPER if best <= start else _EXACT, best)
        return best
