"""Build solver-labelled Connect Four positions for ``rlft eval --positions`` (a JSONL file, one position a line).

Every position carries the exact value of each legal move, from the mover's point of view (higher is better; > 0 a
win, 0 a draw, < 0 a loss), so a move is *optimal* when its value is the best one and *outcome-preserving* when it
keeps the position's win / draw / loss class. Three game stages:

* ``7-ply``: the children of a 7-ply position are 8-ply positions, all in the MIT-licensed ``bitbully-databases``
  8-ply book (win / draw / loss only, so here optimal = outcome-preserving);
* ``11-ply``: children in the 12-ply book with win distances (a faster win / slower loss is better);
* ``late`` (20-30 plies): solved here by an exact alpha-beta search with a transposition table (distances too).

The positions come from games between noisy alpha-beta players (so they look like play, not noise), deduplicated,
and only positions where the moves differ in value are kept (in the others every move is optimal).

Book format (read from the package's files; the loader is ours, the AGPL ``bitbully`` solver is not used): entries
sorted by a Huffman code of the board (columns left to right, each bottom to top: ``10`` first player, ``11`` second,
``0`` ends a column), the mirror image stored once; values for the first player, who is to move at 8 and 12 plies.
The 8-ply book stores 0 (draw) or -1 (loss) in the low two bits of a 3-byte code and leaves out won positions; the
12-ply distance book stores a signed byte (100 - plies to a win, -100 + plies to a loss, 0 a draw).

Usage::

    python scripts/build_c4_positions.py --out benchmarks/data/c4_positions.jsonl      # ~3-5 min on 2 busy cores
    python scripts/build_c4_positions.py --check                                        # cross-check the books
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from bitbully_databases import BitBullyDatabases

from rlft.envs.connect_four import AlphaBeta
from rlft.envs.game_state import C4_COLS, C4_ROWS, ConnectFourState

WIN_NOW = 1000
"""Value of a move that wins on the spot (better than any book distance)."""


def huffman(state: ConnectFourState, mirror: bool = False) -> int:
    """The books' code of a position (first player ``10``, second ``11``; see the module docstring)."""
    first = state.mine if state.ply % 2 == 0 else state.occupied ^ state.mine
    bits, n = 0, 0
    for col in range(C4_COLS):
        c = C4_COLS - 1 - col if mirror else col
        for h in range(C4_ROWS + 1):
            bit = 1 << (7 * c + h)
            if h == C4_ROWS or not state.occupied & bit:
                bits, n = bits << 1, n + 1
                break
            bits, n = (bits << 2) | (0b10 if first & bit else 0b11), n + 2
    bits, n = bits << 1, n + 1
    return bits - (1 << 32) if (bits >> (n - 1)) & 1 and n > 30 else bits  # the package's signed 32-bit codes


class Book:
    """One opening book as sorted NumPy arrays (codes, first-player values)."""

    def __init__(self, name: str) -> None:
        raw = Path(BitBullyDatabases.get_database_path(name)).read_bytes()
        if name == "8-ply":
            b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int64)
            code = (b[:, 0] << 16) | (b[:, 1] << 8) | b[:, 2]
            self.values = -(code & 3)
            self.codes = code & ~3
            self.missing_is_win = True
        else:  # 12-ply-dist: 4-byte signed code + signed byte
            rec = np.frombuffer(raw, dtype=np.dtype([("p", ">i4"), ("s", "i1")]))
            self.codes, self.values = rec["p"].astype(np.int64), rec["s"].astype(np.int64)
            self.missing_is_win = False
        assert np.all(np.diff(self.codes) > 0), f"the {name} book is not sorted"

    def value(self, state: ConnectFourState) -> int | None:
        """The first player's value of a position with the first player to move (None: not in the book)."""
        for mirror in (False, True):
            code = huffman(state, mirror)
            i = int(np.searchsorted(self.codes, code))
            if i < len(self.codes) and self.codes[i] == code:
                return int(self.values[i])
        return 1 if self.missing_is_win else None


def wins_now(state: ConnectFourState) -> bool:
    return any(state.play(a).last_won for a in np.flatnonzero(state.legal_mask()))


def book_move_values(state: ConnectFourState, book: Book) -> list[int | None] | None:
    """Value of every move of a position one ply before the book's (None for illegal moves; None if unknown)."""
    values: list[int | None] = [None] * C4_COLS
    for a in np.flatnonzero(state.legal_mask()):
        child = state.play(int(a))
        if child.last_won:
            values[a] = WIN_NOW
            continue
        v = book.value(child)
        if v is None and wins_now(child):
            v = 99  # the book leaves out positions won on the next move
        if v is None:
            return None
        values[a] = -v
    return values


class Solver:
    """Exact negamax with alpha-beta and a transposition table: value = +/-(43 - ply at the end), 0 a draw."""

    def __init__(self) -> None:
        self.table: dict[tuple[int, int], tuple[int, int]] = {}  # key -> (flag, value); flag 0 exact, 1 lower, 2 upper

    def value(self, s: ConnectFourState, alpha: int = -100, beta: int = 100) -> int:
        if s.last_won:
            return -(43 - s.ply)
        if s.ply == 42:
            return 0
        key = s.key()
        hit = self.table.get(key)
        if hit is not None:
            flag, v = hit
            if flag == 0 or (flag == 1 and v >= beta) or (flag == 2 and v <= alpha):
                return v
        children = [s.play(a) for a in (3, 2, 4, 1, 5, 0, 6) if not s.occupied & (1 << (7 * a + 5))]
        for c in children:
            if c.last_won:
                return 43 - c.ply
        a0, best = alpha, -100
        for c in children:
            v = -self.value(c, -beta, -alpha)
            if v > best:
                best = v
            alpha = max(alpha, v)
            if alpha >= beta:
                break
        self.table[key] = (1 if best >= beta else 2 if best <= a0 else 0, best)
        return best

    def move_values(self, state: ConnectFourState) -> list[int | None]:
        return [None if not ok else -self.value(state.play(a)) for a, ok in enumerate(state.legal_mask())]


def sample_position(rng: np.random.Generator, ply: int, players: list[AlphaBeta]) -> ConnectFourState | None:
    """Play ``ply`` moves of noisy alpha-beta self-play (each move by a random one of ``players``)."""
    state = ConnectFourState.initial()
    for _ in range(ply):
        if state.terminal_value() is not None:
            return None
        player = players[int(rng.integers(len(players)))]
        state = state.play(player.act(state.observation(), state.legal_mask()))
    return state if state.terminal_value() is None and not wins_now(state) else None


def build(counts: dict[str, int], seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    players = [AlphaBeta("2,0.5", seed=seed), AlphaBeta("3,0.25", seed=seed + 1), AlphaBeta("1,0.7", seed=seed + 2)]
    books = {"7-ply": Book("8-ply"), "11-ply": Book("12-ply-dist")}
    out: list[dict[str, object]] = []
    seen: set[tuple[int, int]] = set()
    for stage, n in counts.items():
        got, start = 0, time.time()
        while got < n:
            ply = {"7-ply": 7, "11-ply": 11}.get(stage) or int(rng.integers(20, 31))
            moves: list[int] = []
            state = ConnectFourState.initial()
            for _ in range(ply):  # play and keep the moves
                if state.terminal_value() is not None:
                    break
                player = players[int(rng.integers(len(players)))]
                a = player.act(state.observation(), state.legal_mask())
                moves.append(a)
                state = state.play(a)
            if len(moves) != ply or state.terminal_value() is not None or wins_now(state) or state.key() in seen:
                continue
            values = (book_move_values(state, books[stage]) if stage in books else Solver().move_values(state))
            legal = [v for v in (values or []) if v is not None]
            if not legal or len(set(legal)) == 1:
                continue  # unknown, or every move equally good
            seen.add(state.key())
            out.append({"stage": stage, "ply": ply, "moves": moves, "values": values})
            got += 1
        print(f"{stage}: {n} positions in {time.time() - start:.0f} s")
    return out


def check(seed: int = 0) -> None:
    """Cross-check the two books: an 8-ply position's value equals the 4-ply minimax of 12-ply book values."""
    rng = np.random.default_rng(seed)
    b8, b12 = Book("8-ply"), Book("12-ply-dist")
    players = [AlphaBeta("2,0.5", seed=seed)]

    def minimax(s: ConnectFourState, depth: int) -> int:  # value class for the mover, from the 12-ply book
        if s.last_won:
            return -1
        if depth == 0:
            v = b12.value(s)
            v = 1 if v is None and wins_now(s) else v
            assert v is not None
            return int(np.sign(v))
        return max(-minimax(s.play(int(a)), depth - 1) for a in np.flatnonzero(s.legal_mask()))

    for ply in range(0, 20):  # our code of a board is the package's
        s = sample_position(rng, ply, players)
        if s is not None:
            planes = s.observation()
            first, second = (planes[..., 0], planes[..., 1]) if ply % 2 == 0 else (planes[..., 1], planes[..., 0])
            board = (first + 2 * second).tolist()
            assert huffman(s) == BitBullyDatabases._to_huffman(board), ply
    for _ in range(5):
        s = sample_position(rng, 8, players)
        if s is None:
            continue
        v8 = b8.value(s)
        assert v8 is not None
        print("8-ply book", v8, "= minimax over the 12-ply book", minimax(s, 4))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/data/c4_positions.jsonl")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--counts", default="7-ply=250,11-ply=250,late=150", help="positions per stage")
    p.add_argument("--check", action="store_true", help="cross-check the books instead")
    args = p.parse_args()
    if args.check:
        check(args.seed)
        return
    counts = {k: int(v) for k, v in (kv.split("=") for kv in args.counts.split(","))}
    rows = build(counts, args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} positions to {args.out}")


if __name__ == "__main__":
    main()
