"""Exact endgame solving for the search agent (``mcts:...,solve=K``): negamax with alpha-beta to the end of the game.

Near the end of a board game the tree left is small enough to search exhaustively, and there the network's value
head is least needed and most costly to get wrong: a Connect Four endgame is often decided by who is forced to fill
the last columns (zugzwang), which a value head trained on game outcomes rarely sees and 200 PUCT simulations
cannot prove. :class:`EndgameSolver` works on any state of the game-state protocol (``envs/game_state.py``): it only
plays moves and reads the rules' results.

Values count how soon the game ends, as a game solver's do (John Tromp's and Pascal Pons' Connect Four solvers):
for the player to move, a win is ``+(empty cells left after the winning stone + 1)`` (a sooner win scores higher), a
loss the negative of the opponent's win, a draw 0. So of two winning moves the solver prefers the faster win, and of
two losing ones the move that holds out longer (the one that gives an opponent who is not perfect the most chances to
go wrong). The count assumes that every move fills one cell (Connect Four, tic-tac-toe); the cells left are read
from the observation planes. Scores are bounded by the cells left, which narrows the alpha-beta window at every
node; a transposition table (keyed by the state's ``key()`` when it has one, else its observation) is kept between
moves, since the values are exact; a state's optional ``ordered_moves()`` says which moves to try first. A node
budget bounds the time: when it runs out, the solver says so and the search plays on without it.

Example::

    solver = EndgameSolver(max_nodes=50_000)
    values = solver.move_values(state)       # (n_actions,) a score per legal move (see above), NaN for illegal ones
    if values is None: ...                    # not solved within the budget
    best = values == np.nanmax(values)        # the optimal moves; np.sign(values): win / draw / loss
"""

from __future__ import annotations

from typing import Any

import numpy as np


class _OutOfBudget(Exception):
    """The node budget ran out before the position was solved."""


_EXACT, _LOWER, _UPPER = 0, 1, 2
_INF = 10**6


def empty_cells(state: Any) -> int:
    """Cells of the board not yet filled (one stone per occupied cell of the observation planes)."""
    planes = state.observation()
    return int(planes[..., 0].size - int(planes.sum()))


class EndgameSolver:
    """Exact values of positions with their distance to the end, by alpha-beta over the rules (see the module
    docstring)."""

    def __init__(self, max_nodes: int = 50_000, max_table: int = 2_000_000) -> None:
        self.max_nodes = max_nodes
        """Positions visited per :meth:`move_values` call before it gives up."""
        self.max_table = max_table
        """Entries the transposition table may hold; it is cleared when full."""
        self.table: dict[Any, tuple[int, int]] = {}
        self.nodes = 0
        self._orders: dict[bytes, list[int]] = {}

    def move_values(self, state: Any) -> np.ndarray | None:
        """The score of every legal move for the player to move (> 0 a win, larger the sooner; 0 a draw; < 0 a
        loss, closer to 0 the later; NaN for illegal moves), or None when the budget ran out first. The moves of the
        best score get their exact score; a worse move may get an upper bound of its own (still below the best)."""
        if len(self.table) > self.max_table:
            self.table.clear()
        self.nodes = 0
        legal = state.legal_mask()
        values = np.full(len(legal), np.nan)
        cells = empty_cells(state)
        best = -_INF
        try:
            for a in self._order(legal):
                child = state.play(a)
                done = child.terminal_value()
                if done is not None:  # -1: this move wins, leaving cells - 1 empty; 0: it fills the board
                    v = cells if done == -1 else 0
                else:  # alpha = best - 1: a move as good as the best one so far gets its exact score
                    v = -self._value(child, cells - 1, -_INF, -(best - 1))
                values[a] = v
                best = max(best, v)
        except _OutOfBudget:
            return None
        return values

    def _order(self, legal: np.ndarray) -> list[int]:
        """Legal moves, centre first (in Connect Four the centre columns are the strong ones: good moves first make
        alpha-beta cut early), for states without ``ordered_moves()``."""
        key = legal.tobytes()
        order = self._orders.get(key)
        if order is None:
            n = len(legal)
            order = sorted((int(a) for a in np.flatnonzero(legal)), key=lambda a: abs(a - (n - 1) / 2))
            self._orders[key] = order
        return order

    @staticmethod
    def _key(state: Any) -> Any:
        key = getattr(state, "key", None)
        return key() if key is not None else state.observation().tobytes()

    def _value(self, state: Any, cells: int, alpha: int, beta: int) -> int:
        """Negamax score of the unfinished ``state`` (``cells`` empty) for its player to move, within the window
        (alpha, beta): exact inside it, a bound outside."""
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise _OutOfBudget
        ordered = getattr(state, "ordered_moves", None)
        children = ([c for _, c in ordered()] if ordered is not None
                    else [state.play(a) for a in self._order(state.legal_mask())])
        for c in children:
            if c.terminal_value() == -1:  # a win at once
                return cells
        # no win now: at best a win with the next stone but one, at worst the opponent's win with its next stone
        alpha, beta = max(alpha, -(cells - 1)), min(beta, cells - 2)
        if alpha >= beta:
            return alpha
        key = self._key(state)
        hit = self.table.get(key)
        if hit is not None:
            flag, v = hit
            if flag == _EXACT:
                return v
            if flag == _LOWER:
                alpha = max(alpha, v)
            else:
                beta = min(beta, v)
            if alpha >= beta:
                return v
        start, best = alpha, -_INF
        for child in children:
            v = 0 if child.terminal_value() is not None else -self._value(child, cells - 1, -beta, -alpha)
            if v > best:
                best = v
                if v > alpha:
                    alpha = v
                    if alpha >= beta:
                        break
        self.table[key] = (_LOWER if best >= beta else _UPPER if best <= start else _EXACT, best)
        return best
