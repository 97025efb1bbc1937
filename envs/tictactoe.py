"""Tic-tac-toe (``pettingzoo.classic.tictactoe_v3``) with scripted players, including a perfect one.

Observation of the seat to move: (3, 3, 2) planes, ``observation[r, c]`` is square ``3 * r + c`` and action ``a``
plays square ``a``. Players: ``random``, ``greedy``, ``alphabeta:K`` (heuristic: open lines, +1 / +4 for 1 / 2 own
marks, minus the same for the opponent) and ``perfect`` (full minimax, memoised; wins as fast as possible, picks at
random among equally good moves).

Example::

    rlft eval runs/ttt --env tictactoe --opponent perfect --episodes 200
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from rlft.envs.board_agents import AlphaBetaAgent, GreedyAgent, State, _Scripted, planes_to_bits, window_score

LINES = [sum(1 << i for i in line) for line in (
    (0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))]
FULL = (1 << 9) - 1
WEIGHTS = (0.0, 1.0, 4.0, 0.0)
_ORDER = {4: 0, 0: 1, 2: 1, 6: 1, 8: 1, 1: 2, 3: 2, 5: 2, 7: 2}


class TicTacToeRules:
    """Bitboard rules (square ``3 * r + c`` is bit ``3 * r + c``)."""

    def from_observation(self, planes: np.ndarray) -> State:
        me, opp = planes_to_bits(planes)
        return me, opp, -1

    def legal(self, state: State) -> list[int]:
        occupied = state[0] | state[1]
        return [a for a in range(9) if not (occupied >> a) & 1]

    def play(self, state: State, move: int) -> State:
        if ((state[0] | state[1]) >> move) & 1:
            raise ValueError(f"square {move} is taken")
        return state[1], state[0] | (1 << move), move

    def last_won(self, state: State) -> bool:
        mover = state[1]
        return state[2] >= 0 and any(mover & w == w for w in LINES)

    def heuristic(self, state: State) -> float:
        return window_score(state[0], state[1], LINES, WEIGHTS)

    def order(self, moves: list[int]) -> list[int]:
        return sorted(moves, key=_ORDER.__getitem__)


RULES = TicTacToeRules()


@functools.cache
def minimax_value(me: int, opp: int) -> int:
    """Exact value for the player to move: ``10 - plies`` to a win, 0 for a draw, negative for a loss."""
    if any(opp & w == w for w in LINES):
        return -(10 - (me | opp).bit_count())
    if (me | opp) == FULL:
        return 0
    return max(-minimax_value(opp, me | (1 << a)) for a in range(9) if not ((me | opp) >> a) & 1)


def best_moves(me: int, opp: int) -> list[int]:
    """Every optimal move for the player to move."""
    values = {a: -minimax_value(opp, me | (1 << a)) for a in range(9) if not ((me | opp) >> a) & 1}
    top = max(values.values())
    return [a for a, v in values.items() if v == top]


def make_env(**kwargs: Any) -> Any:
    """``pettingzoo.classic.tictactoe_v3.env(**kwargs)`` (AEC)."""
    from pettingzoo.classic import tictactoe_v3

    return tictactoe_v3.env(**kwargs)


class Greedy(GreedyAgent):
    """Tic-tac-toe ``greedy``: win now, else block, else random."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(RULES, seed)


class AlphaBeta(AlphaBetaAgent):
    """Tic-tac-toe ``alphabeta:K`` (or ``alphabeta:K,EPS``)."""

    def __init__(self, arg: str = "2", seed: int | None = None) -> None:
        super().__init__(RULES, arg, seed)


class Perfect(_Scripted):
    """Perfect play (``perfect`` or ``perfect:EPS`` with a probability EPS of a random move, for varied data)."""

    def __init__(self, arg: str = "0", seed: int | None = None) -> None:
        super().__init__(RULES, seed)
        self.epsilon = float(arg)

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> int:
        state, moves = self._legal(observation, action_mask)
        if self.epsilon and self.rng.random() < self.epsilon:
            return int(self.rng.choice(moves))
        good = [a for a in best_moves(state[0], state[1]) if a in moves]
        return int(self.rng.choice(good or moves))


def render_text(observation: np.ndarray, mover: int) -> str:
    """The board as text (``X`` first player, ``O`` second, free squares show their action number)."""
    planes = np.asarray(observation)
    first, second = (planes[..., 0], planes[..., 1]) if mover == 0 else (planes[..., 1], planes[..., 0])
    rows = []
    for r in range(3):
        rows.append(" " + " | ".join("X" if first[r, c] else "O" if second[r, c] else str(3 * r + c)
                                     for c in range(3)))
    return "\n---+---+---\n".join(rows)
