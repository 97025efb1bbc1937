"""Scripted players for two-player board games: ``greedy`` and ``alphabeta:K``, written once over a small rules API.

A game supplies :class:`Rules` -- how to read the PettingZoo observation of the seat to move into a compact state,
the legal moves, the state after a move, whether the last move won, and a heuristic score. The state is always seen
from the player to move ("me" first), so search is plain negamax.

Both players read only what an agent gets: ``act(observation, action_mask)``, with ``observation`` the (H, W, 2)
planes (plane 0 = own pieces, plane 1 = the opponent's). The action mask is authoritative for the legal moves.

Example::

    agent = AlphaBetaAgent(CONNECT_FOUR, "3", seed=0)
    action = agent.act(obs["observation"], action_mask=obs["action_mask"])
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from rlft.core.agent import check_mask
from rlft.core.errors import IllegalActionError

State = tuple[int, int, int]
"""(bits of the player to move, bits of the other player, cell of the last move or -1)."""

WIN = 1_000_000.0
"""Score of a won position (plus the remaining search depth, so quicker wins score higher)."""


class Rules(Protocol):
    """What a board game tells the search about itself."""

    def from_observation(self, planes: np.ndarray) -> State:
        """The state seen by the player to move, from its observation planes."""
        ...

    def legal(self, state: State) -> list[int]:
        """Legal moves (actions) in ``state``."""
        ...

    def play(self, state: State, move: int) -> State:
        """The state after ``move``, seen by the other player."""
        ...

    def last_won(self, state: State) -> bool:
        """True when the move that led to ``state`` won the game."""
        ...

    def heuristic(self, state: State) -> float:
        """How good ``state`` is for the player to move (search leaves)."""
        ...

    def order(self, moves: list[int]) -> list[int]:
        """Moves in the order the search should try them (best first, for pruning); stable."""
        ...

    # Optional: ``winning_moves(state) -> set[int]``, the moves that win on the spot for the player to move (a fast
    # form of playing each legal move and asking ``last_won``; the search and the tactics use it when present).


def _winning(rules: Rules, state: State, moves: list[int]) -> list[int]:
    """The moves of ``moves`` that win on the spot for the player to move, in the order given."""
    fast = getattr(rules, "winning_moves", None)
    if fast is not None:
        wins = fast(state)
        return [m for m in moves if m in wins] if wins else []
    return [m for m in moves if rules.last_won(rules.play(state, m))]


def negamax(rules: Rules, state: State, depth: int, alpha: float, beta: float) -> float:
    """Alpha-beta negamax value of ``state`` for the player to move, searching ``depth`` plies."""
    if rules.last_won(state):
        return -(WIN + depth)
    moves = rules.legal(state)
    if not moves:
        return 0.0
    if depth == 0:
        # A leaf where the player to move wins on the spot is a win, not a heuristic score (a one-ply quiescence
        # check that removes the worst horizon blunders).
        if _winning(rules, state, moves):
            return WIN
        return rules.heuristic(state)
    best = -math.inf
    for move in rules.order(moves):
        value = -negamax(rules, rules.play(state, move), depth - 1, -beta, -alpha)
        if value > best:
            best = value
        if value > alpha:
            alpha = value
        if alpha >= beta:
            break
    return best


def immediate_wins(rules: Rules, state: State, moves: list[int]) -> list[int]:
    """Moves that win on the spot for the player to move."""
    return _winning(rules, state, moves)


def threats(rules: Rules, state: State, moves: list[int]) -> list[int]:
    """Moves the *opponent* would win with if it moved now (the cells to block)."""
    passed: State = (state[1], state[0], -1)
    return _winning(rules, passed, moves)


def tactical_moves(rules: Rules, state: State, moves: list[int]) -> list[int]:
    """The moves a sound player must choose from: the immediate wins, else the blocks of the opponent's immediate
    wins, else none (empty: no tactic applies)."""
    return immediate_wins(rules, state, moves) or threats(rules, state, moves)


class _Scripted:
    """Common part of the scripted players: a rules object, a seeded RNG, mask checking."""

    def __init__(self, rules: Rules, seed: int | None = None) -> None:
        self.rules = rules
        self.rng = np.random.default_rng(seed)

    def _legal(self, observation: Any, action_mask: Any) -> tuple[State, list[int]]:
        planes = np.asarray(observation)
        state = self.rules.from_observation(planes)
        mask = check_mask(action_mask)
        moves = [int(m) for m in np.flatnonzero(mask)] if mask is not None else self.rules.legal(state)
        if not moves:

            raise IllegalActionError("No legal move in this position: the game should already be over.")
        return state, moves

    random_ties = True
    """Choose among equally good moves at random (False: the first in the game's move order)."""

    def _pick(self, options: list[int]) -> int:
        return int(self.rng.choice(options)) if self.random_ties else self.rules.order(options)[0]

    def _tactics(self, state: State, moves: list[int]) -> int | None:
        """Win now if possible, else block the opponent's immediate win."""
        options = tactical_moves(self.rules, state, moves)
        return self._pick(options) if options else None


class GreedyAgent(_Scripted):
    """Takes an immediate win, else blocks an immediate loss, else plays a random legal move."""

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> int:
        state, moves = self._legal(observation, action_mask)
        tactic = self._tactics(state, moves)
        return tactic if tactic is not None else int(self.rng.choice(moves))


_CHOICES: dict[tuple[Any, ...], tuple[list[int], bool]] = {}
"""The positions :class:`AlphaBetaAgent` has searched: (rules, depth, my bits, their bits, legal moves) -> its
choices (see ``AlphaBetaAgent.cache_size``)."""


class AlphaBetaAgent(_Scripted):
    """Depth-K alpha-beta search with the game's heuristic at the leaves.

    ``arg`` is ``"K"``, ``"K,EPS"`` or ``"K,EPS,first"``, optionally followed by ``,plies=N``: search depth K >= 1
    plies, an optional probability EPS of a uniformly random legal move (for varied demonstrations; immediate wins
    and blocks are still always played), the tie-break, and with ``plies=N`` the noise only while fewer than N stones
    are on the board (a varied opening, then the search's own play: the game's outcome then says more about the
    positions after the opening). By default every move of the best value is found (the root searches with a window
    that keeps ties exact) and one is drawn at random (seeded), so an opponent cannot win by replaying one line
    against it; with ``first`` it plays the first best move in the game's move order (centre first), the old
    deterministic player.
    """

    def __init__(self, rules: Rules, arg: str | int = "2", seed: int | None = None) -> None:
        super().__init__(rules, seed)
        fields = str(arg).split(",")
        plies = [f for f in fields if f.startswith("plies=")]
        rest = [f for f in fields if not f.startswith("plies=")]
        usage = ("alphabeta takes 'K', 'K,EPS', 'K,EPS,first' and an optional ',plies=N' (e.g. alphabeta:3, "
                 f"alphabeta:3,0.1 or alphabeta:4,0.3,plies=12), got {arg!r}")
        if len(rest) > 3 or len(plies) > 1:
            raise ValueError(usage)
        depth, eps, ties = (rest + ["", ""])[:3]
        try:
            self.depth = int(depth)
            self.epsilon = float(eps) if eps else 0.0
            self.noise_plies = int(plies[0].removeprefix("plies=")) if plies else None
        except ValueError as e:
            raise ValueError(usage) from e
        if (self.depth < 1 or not 0.0 <= self.epsilon <= 1.0 or ties not in ("", "random", "first")
                or (self.noise_plies is not None and self.noise_plies < 0)):
            raise ValueError(f"alphabeta needs depth K >= 1, 0 <= EPS <= 1, a tie-break `random` or `first` and "
                             f"plies=N >= 0, got {arg!r}")
        self.random_ties = ties != "first"

    def best_moves(self, state: State, moves: list[int]) -> list[int]:
        """Every move of the best depth-K value (exact ties: a move is searched with the bound just above the best
        value so far, so a move as good as the best is scored exactly instead of cut off at that bound)."""
        best, choices, alpha = -math.inf, [], -math.inf
        for move in self.rules.order(moves):
            value = -negamax(self.rules, self.rules.play(state, move), self.depth - 1, -math.inf, -alpha + 0.5)
            if value > best:
                best, choices = value, [move]
            elif value == best:
                choices.append(move)
            alpha = max(alpha, value)
        return choices

    last_search_policy: np.ndarray | None = None
    """After every move: the moves the search found best (a win now, else a block, else every move of the best
    depth-K value), as a uniform distribution over the actions -- also when an EPS-random move was played instead.
    Recording stores it (``infos["search_policy"]``), so imitation can learn the search's choice from games whose
    moves were varied by the noise (``imitate.targets: search``)."""

    cache_size: int = 200_000
    """Positions whose search result (the moves to choose from) is kept, shared by every player of the same game and
    depth (0: no cache). The result of a position is fixed, so the cache changes no move and no draw of the RNG;
    openings repeat across games, and self-play and recording play thousands of them."""

    def choices(self, state: State, moves: list[int]) -> tuple[list[int], bool]:
        """The moves to choose from (a win now, else a block, else :meth:`best_moves`) and whether they are
        tactical (a win or a block: played even when the EPS noise fires)."""
        key = (self.rules, self.depth, state[0], state[1], tuple(moves))
        found = _CHOICES.get(key) if self.cache_size else None
        if found is None:
            tactical = tactical_moves(self.rules, state, moves)
            found = (tactical or self.best_moves(state, moves), bool(tactical))
            if self.cache_size:
                if len(_CHOICES) >= self.cache_size:
                    _CHOICES.clear()
                _CHOICES[key] = found
        return list(found[0]), found[1]

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> int:
        state, moves = self._legal(observation, action_mask)
        choices, tactical = self.choices(state, moves)
        if action_mask is not None:  # (without a mask the number of actions is unknown here)
            self.last_search_policy = np.zeros(len(np.asarray(action_mask)), np.float32)
            self.last_search_policy[choices] = 1.0 / len(choices)
        noisy = self.noise_plies is None or bin(state[0] | state[1]).count("1") < self.noise_plies
        if not tactical and self.epsilon and noisy and self.rng.random() < self.epsilon:
            return int(self.rng.choice(moves))
        return self._pick(choices)


def window_score(me: int, opp: int, windows: list[int], weights: tuple[float, ...]) -> float:
    """Sum over line windows: ``+weights[k]`` for a window holding k of my pieces and none of the opponent's,
    ``-weights[k]`` for the reverse."""
    score = 0.0
    for w in windows:
        a, b = me & w, opp & w
        if a and not b:
            score += weights[a.bit_count()]
        elif b and not a:
            score -= weights[b.bit_count()]
    return score


def planes_to_bits(planes: np.ndarray) -> tuple[int, int]:
    """(own bits, opponent bits) of (H, W, 2) planes; cell ``r * W + c`` is bit ``r * W + c``."""
    flat_me = np.asarray(planes[..., 0]).reshape(-1)
    flat_opp = np.asarray(planes[..., 1]).reshape(-1)
    me = sum(1 << i for i in np.flatnonzero(flat_me))
    opp = sum(1 << i for i in np.flatnonzero(flat_opp))
    return int(me), int(opp)
