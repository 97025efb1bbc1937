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

from rlft.envs.board_agents import AlphaBetaAgent, GreedyAgent, State, planes_to_bits, window_score

ROWS, COLS = 6, 7


def _windows() -> list[list[int]]:
    cells = []
    for r in range(ROWS):
        for c in range(COLS):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                line = [(r + i * dr, c + i * dc) for i in range(4)]
                if all(0 <= rr < ROWS and 0 <= cc < COLS for rr, cc in line):
                    cells.append([rr * COLS + cc for rr, cc in line])
    return cells


_WINDOW_CELLS = _windows()
WINDOWS = [sum(1 << i for i in w) for w in _WINDOW_CELLS]
"""The 69 lines of four, as bit masks."""
WINDOWS_BY_CELL = [[m for m, w in zip(WINDOWS, _WINDOW_CELLS) if cell in w] for cell in range(ROWS * COLS)]
CENTRE = sum(1 << (r * COLS + COLS // 2) for r in range(ROWS))
WEIGHTS = (0.0, 1.0, 4.0, 16.0, 0.0)
_ORDER = {c: abs(c - COLS // 2) for c in range(COLS)}


class ConnectFourRules:
    """Bitboard rules for the search (cell ``r * 7 + c``, row 0 at the top)."""

    def from_observation(self, planes: np.ndarray) -> State:
        me, opp = planes_to_bits(planes)
        return me, opp, -1

    def legal(self, state: State) -> list[int]:
        occupied = state[0] | state[1]
        return [c for c in range(COLS) if not (occupied >> c) & 1]

    def play(self, state: State, move: int) -> State:
        occupied = state[0] | state[1]
        for r in range(ROWS - 1, -1, -1):
            cell = r * COLS + move
            if not (occupied >> cell) & 1:
                return state[1], state[0] | (1 << cell), cell
        raise ValueError(f"column {move} is full")

    def last_won(self, state: State) -> bool:
        cell, mover = state[2], state[1]
        return cell >= 0 and any(mover & w == w for w in WINDOWS_BY_CELL[cell])

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
