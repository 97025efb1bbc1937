"""The game-state protocol search needs from a two-player board game, and its Connect Four and tic-tac-toe cores.

An env plugin offers search by naming a state class in its extras (``extras["game_state"] = "module:Class"``). A
state is immutable: :meth:`GameState.play` returns a new one, so a search tree can keep every node's state. Values
are always from the point of view of the player to move, like the observation planes PettingZoo gives that player
(plane 0 = own pieces), so search is plain negamax. Both cores are checked move for move against the PettingZoo
envs on random games (``tests/test_game_state.py``).

Example::

    state = ConnectFourState.initial()
    state = state.play(3)                    # first player drops in the centre column
    state.legal_mask(), state.terminal_value(), state.observation()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Symmetry:
    """A symmetry of a game's rules (Connect Four's mirror image): the same game, seen transformed.

    ``observations`` maps a batch of observation planes ``(N, *obs_shape)`` to the transformed positions' planes;
    ``actions[a]`` is the move in the transformed position that action ``a`` is in the original. Imitation uses it to
    train on both (``imitate.augment``)."""

    observations: Callable[[np.ndarray], np.ndarray]
    actions: np.ndarray


class GameState(Protocol):
    """A position of a two-player, alternating, zero-sum board game (see the module docstring)."""

    n_actions: int
    """Size of the (discrete) action space."""

    @classmethod
    def initial(cls) -> GameState:
        """The position at the start of a game (first player to move)."""
        ...

    @classmethod
    def from_observation(cls, planes: np.ndarray) -> GameState:
        """The position seen in the observation planes of the player to move."""
        ...

    def legal_mask(self) -> np.ndarray:
        """(n_actions,) bool: the legal moves (all False once the game is over)."""
        ...

    def play(self, action: int) -> GameState:
        """The position after the player to move plays ``action`` (a new state; this one is unchanged)."""
        ...

    def terminal_value(self) -> float | None:
        """None while the game goes on; else the result for the player to move: -1 (the last move won), 0 (draw)."""
        ...

    def observation(self) -> np.ndarray:
        """The observation planes of the player to move, exactly as the PettingZoo env gives them."""
        ...

    # Optional: ``symmetries() -> list[Symmetry]`` (classmethod), the game's symmetries other than the identity;
    # ``ordered_moves() -> list[tuple[int, GameState]]``, the legal moves and the positions they lead to, the most
    # promising first (the exact endgame solver, rlft/policy/endgame.py, visits them in this order: good moves first
    # make alpha-beta cut early).


# -- Connect Four ------------------------------------------------------------------------------------------------
# Column-major bitboard with a sentinel row (John Tromp's layout): bit 7 * c + h is row h (from the bottom) of column c.

C4_ROWS, C4_COLS, _H1 = 6, 7, 7
_BOTTOM = sum(1 << (_H1 * c) for c in range(C4_COLS))
_FULL = sum(((1 << C4_ROWS) - 1) << (_H1 * c) for c in range(C4_COLS))
_TOP = [1 << (_H1 * c + C4_ROWS - 1) for c in range(C4_COLS)]
_CENTRE_FIRST = (3, 2, 4, 1, 5, 0, 6)
# (bit, row from the top, column) of every cell: to read and write the (6, 7) planes
_CELLS = [(1 << (_H1 * c + h), C4_ROWS - 1 - h, c) for c in range(C4_COLS) for h in range(C4_ROWS)]
# (row, column, plane) -> the bit of that cell: planes = (bits >> _PLANE_SHIFTS) & 1, both planes in one pass
_PLANE_SHIFTS = np.repeat(np.array([[_H1 * c + C4_ROWS - 1 - r for c in range(C4_COLS)] for r in range(C4_ROWS)],
                                   dtype=np.int64)[..., None], 2, axis=-1)


def open_fours(bits: int, occupied: int) -> int:
    """The empty cells that would complete four in a line for the player whose pieces are ``bits`` (its threats;
    Pascal Pons' bitboard formula)."""
    r = (bits << 1) & (bits << 2) & (bits << 3)  # vertical: three below
    for shift in (_H1, _H1 - 1, _H1 + 1):  # horizontal and the two diagonals: the gap anywhere in the line
        pair = (bits << shift) & (bits << 2 * shift)
        r |= pair & (bits << 3 * shift)
        r |= pair & (bits >> shift)
        pair = (bits >> shift) & (bits >> 2 * shift)
        r |= pair & (bits << shift)
        r |= pair & (bits >> 3 * shift)
    return r & (_FULL ^ occupied)


def four_in_a_row(bits: int) -> bool:
    """True when ``bits`` (one player's pieces on the Connect Four bitboard) hold four in a line."""
    for shift in (1, _H1, _H1 - 1, _H1 + 1):  # vertical, horizontal, the two diagonals
        pairs = bits & (bits >> shift)
        if pairs & (pairs >> (2 * shift)):
            return True
    return False


class ConnectFourState:
    """A Connect Four position: the mover's pieces, all pieces, the ply, and whether the last move won."""

    __slots__ = ("mine", "occupied", "ply", "last_won")
    n_actions = C4_COLS

    def __init__(self, mine: int, occupied: int, ply: int, last_won: bool = False) -> None:
        self.mine = mine
        self.occupied = occupied
        self.ply = ply
        self.last_won = last_won

    @classmethod
    def initial(cls) -> ConnectFourState:
        return cls(0, 0, 0)

    @classmethod
    def from_observation(cls, planes: np.ndarray) -> ConnectFourState:
        planes = np.asarray(planes)
        mine = theirs = 0
        for bit, r, c in _CELLS:
            if planes[r, c, 0]:
                mine |= bit
            elif planes[r, c, 1]:
                theirs |= bit
        occupied = mine | theirs
        return cls(mine, occupied, occupied.bit_count(), four_in_a_row(theirs))

    def legal_mask(self) -> np.ndarray:
        if self.last_won or self.ply == C4_ROWS * C4_COLS:
            return np.zeros(C4_COLS, dtype=bool)
        return np.array([not self.occupied & top for top in _TOP])

    def play(self, action: int) -> ConnectFourState:
        if self.occupied & _TOP[action] or self.terminal_value() is not None:
            raise ValueError(f"column {action} cannot be played in this position")
        occupied = self.occupied | (self.occupied + (1 << (_H1 * action)))
        mover = self.mine | (occupied ^ self.occupied)
        return ConnectFourState(mover ^ occupied, occupied, self.ply + 1, four_in_a_row(mover))

    def terminal_value(self) -> float | None:
        if self.last_won:
            return -1.0
        return 0.0 if self.ply == C4_ROWS * C4_COLS else None

    def observation(self) -> np.ndarray:
        bits = np.array([self.mine, self.occupied ^ self.mine], dtype=np.int64)  # 49-bit boards: int64 is exact
        return ((bits >> _PLANE_SHIFTS) & 1).astype(np.int8)

    def key(self) -> tuple[int, int]:
        """A hashable identity of the position (for transposition tables)."""
        return self.mine, self.occupied

    def ordered_moves(self) -> list[tuple[int, ConnectFourState]]:
        """The legal moves and their positions, the ones that leave the mover the most threats (cells that would
        complete a four) first, then centre first: Pons' ordering, which halves the exact solver's nodes."""
        moves = [(a, self.play(a)) for a in _CENTRE_FIRST if not self.occupied & _TOP[a]]
        return sorted(moves, key=lambda m: -open_fours(m[1].occupied ^ m[1].mine, m[1].occupied).bit_count())

    @classmethod
    def symmetries(cls) -> list[Symmetry]:
        """The mirror image (columns reversed): column ``c`` becomes ``6 - c``."""
        return [Symmetry(lambda planes: np.ascontiguousarray(planes[:, :, ::-1]), np.arange(C4_COLS)[::-1].copy())]


# -- tic-tac-toe -------------------------------------------------------------------------------------------------

_TTT_LINES = [sum(1 << i for i in line) for line in (
    (0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))]


class TicTacToeState:
    """A tic-tac-toe position: the mover's squares and the opponent's (bit ``3 * r + c`` is square ``3 * r + c``)."""

    __slots__ = ("mine", "theirs")
    n_actions = 9

    def __init__(self, mine: int, theirs: int) -> None:
        self.mine = mine
        self.theirs = theirs

    @classmethod
    def initial(cls) -> TicTacToeState:
        return cls(0, 0)

    @classmethod
    def from_observation(cls, planes: np.ndarray) -> TicTacToeState:
        flat = np.asarray(planes).reshape(9, 2)
        mine = sum(1 << int(i) for i in np.flatnonzero(flat[:, 0]))
        theirs = sum(1 << int(i) for i in np.flatnonzero(flat[:, 1]))
        return cls(mine, theirs)

    def legal_mask(self) -> np.ndarray:
        if self.terminal_value() is not None:
            return np.zeros(9, dtype=bool)
        occupied = self.mine | self.theirs
        return np.array([not (occupied >> a) & 1 for a in range(9)], dtype=bool)

    def play(self, action: int) -> TicTacToeState:
        if ((self.mine | self.theirs) >> action) & 1 or self.terminal_value() is not None:
            raise ValueError(f"square {action} cannot be played in this position")
        return TicTacToeState(self.theirs, self.mine | (1 << action))

    def terminal_value(self) -> float | None:
        if any(self.theirs & w == w for w in _TTT_LINES):
            return -1.0
        return 0.0 if (self.mine | self.theirs) == (1 << 9) - 1 else None

    def observation(self) -> np.ndarray:
        planes = np.zeros((9, 2), dtype=np.int8)
        for a in range(9):
            planes[a, 0] = (self.mine >> a) & 1
            planes[a, 1] = (self.theirs >> a) & 1
        return planes.reshape(3, 3, 2)

    def key(self) -> tuple[int, int]:
        return self.mine, self.theirs
