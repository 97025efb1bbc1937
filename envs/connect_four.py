"""Connect Four (``pettingzoo.classic.connect_four_v3``) with scripted players.

Observation of the seat to move: (6, 7, 2) planes, row 0 at the top, plane 0 = own pieces; action = column 0..6.
Players: ``random``, ``greedy`` (win now / block now / random), ``alphabeta:K`` (depth-K search; the heuristic counts
open windows of four: +1 / +4 / +16 for 1 / 2 / 3 own pieces in a window free of the opponent's, minus the same for
the opponent, plus 2 per own piece in the centre column).

Example::

    rlft play runs/c4 --env connect_four
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlft.envs.board_agents import AlphaBetaAgent, GreedyAgent, State, window_score
from rlft.envs.game_state import four_in_a_row, open_fours

ROWS, COLS = 6, 7


def _bit(r: int, c: int) -> int:
    """Bit of the cell in row ``r`` (0 at the top) and column ``c`` on the column-major bitboard of
    :mod:`rlft.envs.game_state` (bit ``7 * c + h``, ``h`` the height from the bottom; a sentinel bit tops each
    column)."""
    return 1 << (_H1 * c + ROWS - 1 - r)


def _windows() -> list[int]:
    masks = []
    for r in range(ROWS):
        for c in range(COLS):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                line = [(r + i * dr, c + i * dc) for i in range(4)]
                if all(0 <= rr < ROWS and 0 <= cc < COLS for rr, cc in line):
                    masks.append(sum(_bit(rr, cc) for rr, cc in line))
    return masks


_H1 = ROWS + 1
WINDOWS = _windows()
"""The 69 lines of four, as bit masks."""
CENTRE = sum(_bit(r, COLS // 2) for r in range(ROWS))
WEIGHTS = (0.0, 1.0, 4.0, 16.0, 0.0)
_ORDER = {c: abs(c - COLS // 2) for c in range(COLS)}
_BOTTOM = [1 << (_H1 * c) for c in range(COLS)]
_TOP = [_bit(0, c) for c in range(COLS)]
_BOTTOM_ROW = sum(_BOTTOM)
_COLUMN = [((1 << ROWS) - 1) << (_H1 * c) for c in range(COLS)]
# planes -> bits: sum of the bit weights of the occupied cells (all below 2 ** 49, so int64 is exact)
_PLANE_BITS = np.array([[_bit(r, c) for c in range(COLS)] for r in range(ROWS)], dtype=np.int64)


class ConnectFourRules:
    """Bitboard rules for the search: the column-major board of ``rlft.envs.game_state`` (a move is one addition,
    four in a row four shifts)."""

    def from_observation(self, planes: np.ndarray) -> State:
        planes = np.asarray(planes)
        return int((planes[..., 0] * _PLANE_BITS).sum()), int((planes[..., 1] * _PLANE_BITS).sum()), -1

    def legal(self, state: State) -> list[int]:
        occupied = state[0] | state[1]
        return [c for c in range(COLS) if not occupied & _TOP[c]]

    def play(self, state: State, move: int) -> State:
        occupied = state[0] | state[1]
        if occupied & _TOP[move]:
            raise ValueError(f"column {move} is full")
        cell = (occupied + _BOTTOM[move]) & ~occupied
        return state[1], state[0] | cell, cell.bit_length() - 1

    def last_won(self, state: State) -> bool:
        return state[2] >= 0 and four_in_a_row(state[1])

    def winning_moves(self, state: State) -> set[int]:
        """The columns whose next stone completes a four for the player to move: the cells that would complete one
        (``open_fours``) that are also the next free cell of their column (``occupied + bottom row``: one carry per
        column)."""
        occupied = state[0] | state[1]
        cells = open_fours(state[0], occupied) & (occupied + _BOTTOM_ROW)
        return {c for c in range(COLS) if cells & _COLUMN[c]} if cells else set()

    def heuristic(self, state: State) -> float:
        me, opp = state[0], state[1]
        centre = 2.0 * ((me & CENTRE).bit_count() - (opp & CENTRE).bit_count())
        return window_score(me, opp, WINDOWS, WEIGHTS) + centre

    def order(self, moves: list[int]) -> list[int]:
        return sorted(moves, key=_ORDER.__getitem__)


RULES = ConnectFourRules()


def make_env(**kwargs: Any) -> Any:
    """``pettingzoo.classic.connect_four_v3.env(**kwargs)`` (AEC)."""
    from pettingzoo.classic import connect_four_v3

    return connect_four_v3.env(**kwargs)


class Greedy(GreedyAgent):
    """Connect Four ``greedy``: win now, else block, else random."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(RULES, seed)


class AlphaBeta(AlphaBetaAgent):
    """Connect Four ``alphabeta:K`` (or ``alphabeta:K,EPS``)."""

    def __init__(self, arg: str = "2", seed: int | None = None) -> None:
        super().__init__(RULES, arg, seed)


def render_text(observation: np.ndarray, mover: int) -> str:
    """The board as text, ``X`` = first player, ``O`` = second; ``mover`` (0/1) is the seat the planes belong to."""
    planes = np.asarray(observation)
    first, second = (planes[..., 0], planes[..., 1]) if mover == 0 else (planes[..., 1], planes[..., 0])
    lines = []
    for r in range(ROWS):
        lines.append("| " + " ".join("X" if first[r, c] else "O" if second[r, c] else "." for c in range(COLS)) + " |")
    lines.append("+" + "-" * (2 * COLS + 1) + "+")
    lines.append("  " + " ".join(str(c) for c in range(COLS)))
    return "\n".join(lines)
