"""Text views of the built-in board games: how an observation is written as a prompt and how a move is read back.

A text view is what lets a language model play an env. It is declared by an env plugin as
``EnvPlugin.extras["text_view"] = "module:Class"`` (a class constructed with no arguments) and implements
:class:`rlft.game_text.TextView`:

* ``prompt(observation)`` -- the position for the seat to move, as text (the planes are mover-relative; the text is
  absolute: ``X`` is the first player, ``O`` the second, and the prompt ends with the mover's mark and ``>``);
* ``move_text(action)`` -- the completion that plays ``action``;
* ``parse_move(text)`` -- the action a completion names (``None`` when it names none);
* ``observation(prompt)`` -- the mover-relative planes back from a prompt (used by the env reward to rebuild the
  position in the real env);
* ``replay(observation)`` -- a sequence of legal actions from the initial position that reaches it.

Tic-tac-toe: ``X1O|3X5|67O X>`` (free squares show their action number, rows joined by ``|``); a move is the square
digit. Connect Four: the six rows top to bottom, ``.`` for an empty cell, then the mover: ``.......|...|..XO... X>``;
a move is the column digit.

Example::

    view = TicTacToeText()
    view.prompt(obs["observation"])        # 'X1O|3X5|67O X>'
    view.parse_move(" 8")                  # 8
"""

from __future__ import annotations

import re

import numpy as np

_DIGIT = re.compile(r"\d")


def _marks(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(first player's cells, second player's cells, mover mark) from mover-relative planes."""
    planes = np.asarray(planes)
    own, opp = planes[..., 0].astype(bool), planes[..., 1].astype(bool)
    mover_first = own.sum() == opp.sum()  # the first player moves when both have placed as many pieces
    return (own, opp, "X") if mover_first else (opp, own, "O")


def _planes(first: np.ndarray, second: np.ndarray, mover: str) -> np.ndarray:
    own, opp = (first, second) if mover == "X" else (second, first)
    return np.stack([own, opp], axis=-1).astype(np.int8)


class _BoardText:
    """Shared parts: a grid of cells rendered row by row, moves named by one digit."""

    rows: int
    cols: int
    n_actions: int

    def cell(self, r: int, c: int, first: bool, second: bool) -> str:
        return "X" if first else "O" if second else "."

    def prompt(self, observation: np.ndarray, action_mask: np.ndarray | None = None) -> str:
        first, second, mover = _marks(observation)
        rows = ["".join(self.cell(r, c, bool(first[r, c]), bool(second[r, c])) for c in range(self.cols))
                for r in range(self.rows)]
        return "|".join(rows) + f" {mover}>"

    def move_text(self, action: int) -> str:
        return str(int(action))

    def parse_move(self, text: str) -> int | None:
        """The first digit of the completion, when it names an action of this game; else None."""
        m = _DIGIT.search(text)
        if m is None or int(m.group()) >= self.n_actions:
            return None
        return int(m.group())

    def observation(self, prompt: str) -> np.ndarray:
        """The mover-relative planes of a prompt written by :meth:`prompt`; ValueError for any other text."""
        m = re.fullmatch(r"(.+) ([XO])>", prompt.strip())
        rows = m.group(1).split("|") if m else []
        if m is None or len(rows) != self.rows or any(len(r) != self.cols for r in rows):
            raise ValueError(f"not a {type(self).__name__} prompt: {prompt!r}")
        first = np.array([[ch == "X" for ch in row] for row in rows])
        second = np.array([[ch == "O" for ch in row] for row in rows])
        return _planes(first, second, m.group(2))


class TicTacToeText(_BoardText):
    """Tic-tac-toe as text: ``X1O|3X5|67O X>``; a move is the square number 0..8 (``3 * row + col``)."""

    rows, cols, n_actions = 3, 3, 9

    def cell(self, r: int, c: int, first: bool, second: bool) -> str:
        return "X" if first else "O" if second else str(3 * r + c)

    def observation(self, prompt: str) -> np.ndarray:
        m = re.fullmatch(r"(.+) ([XO])>", prompt.strip())
        if m is None:
            raise ValueError(f"not a tic-tac-toe prompt: {prompt!r}")
        board = m.group(1).replace("|", "")
        if len(board) != 9 or any(ch not in "XO" and ch != str(i) for i, ch in enumerate(board)):
            raise ValueError(f"not a tic-tac-toe prompt: {prompt!r}")
        first = np.array([ch == "X" for ch in board]).reshape(3, 3)
        second = np.array([ch == "O" for ch in board]).reshape(3, 3)
        return _planes(first, second, m.group(2))

    def replay(self, observation: np.ndarray) -> list[int]:
        """X's and O's squares interleaved (X first): any such order reaches the position (no line is completed
        early, since the position itself has none)."""
        first, second, _ = _marks(observation)
        xs, os_ = np.flatnonzero(first.reshape(-1)), np.flatnonzero(second.reshape(-1))
        moves: list[int] = []
        for i, x in enumerate(xs):
            moves.append(int(x))
            if i < len(os_):
                moves.append(int(os_[i]))
        return moves


class ConnectFourText(_BoardText):
    """Connect Four as text: six rows of seven cells, top row first (``.`` empty); a move is the column 0..6."""

    rows, cols, n_actions = 6, 7, 7

    def replay(self, observation: np.ndarray) -> list[int]:
        """Columns to play, alternating X and O from the empty board, that stack each column as in the position
        (a depth-first search over which column each player fills next)."""
        first, second, _ = _marks(observation)
        stacks: list[list[str]] = []
        for c in range(self.cols):
            col = ["X" if first[r, c] else "O" for r in range(self.rows - 1, -1, -1) if first[r, c] or second[r, c]]
            stacks.append(col)
        total = sum(len(s) for s in stacks)
        heights = [0] * self.cols
        moves: list[int] = []
        seen: set[tuple[int, ...]] = set()

        def search() -> bool:
            if len(moves) == total:
                return True
            key = tuple(heights)
            if key in seen:
                return False
            mark = "X" if len(moves) % 2 == 0 else "O"
            for c in range(self.cols):
                if heights[c] < len(stacks[c]) and stacks[c][heights[c]] == mark:
                    heights[c] += 1
                    moves.append(c)
                    if search():
                        return True
                    heights[c] -= 1
                    moves.pop()
            seen.add(key)
            return False

        if not search():
            raise ValueError("the Connect Four position cannot be reached by alternating moves")
        return moves
