"""Move quality on solver-labelled positions (``rlft eval AGENT --positions FILE``).

A positions file is JSONL, one position a line: ``{"moves": [3, 3, 2], "values": [-1, 0, 1, null, ...], "stage":
"7-ply"}`` -- the moves that lead to it from the start, and the exact value of every action for the player to move
(higher is better; > 0 a win, 0 a draw, < 0 a loss; ``null`` for an illegal action). The agent sees the position's
observation and action mask, exactly as in a game. A move is **optimal** when its value is the best one, and
**outcome-preserving** when it keeps the position's win / draw / loss class. ``scripts/build_c4_positions.py`` writes
such a file for Connect Four from the ``bitbully-databases`` opening books and an exact endgame search.

Example::

    rlft eval runs/c4 --positions benchmarks/data/c4_positions.jsonl
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlft.core.agent import checked_action
from rlft.core.errors import DatasetError


@dataclass
class PositionScore:
    """Shares of optimal and outcome-preserving moves, over all positions and per stage."""

    positions: int = 0
    optimal: int = 0
    preserving: int = 0
    by_stage: dict[str, list[int]] = field(default_factory=dict)
    """stage -> [positions, optimal, outcome-preserving]."""

    def add(self, stage: str, optimal: bool, preserving: bool) -> None:
        self.positions += 1
        self.optimal += optimal
        self.preserving += preserving
        counts = self.by_stage.setdefault(stage, [0, 0, 0])
        counts[0] += 1
        counts[1] += optimal
        counts[2] += preserving

    def scalars(self) -> dict[str, float]:
        out = {"optimal_share": self.optimal / max(self.positions, 1),
               "outcome_preserving_share": self.preserving / max(self.positions, 1), "positions": self.positions}
        for stage, (n, opt, keep) in sorted(self.by_stage.items()):
            out[f"optimal_share/{stage}"] = opt / n
            out[f"outcome_preserving_share/{stage}"] = keep / n
        return out


def read_positions(path: str | Path) -> list[dict[str, Any]]:
    """The positions of a JSONL file, checked (a DatasetError names the line and what is wrong)."""
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as e:
        raise DatasetError(f"The positions file '{p}' cannot be read ({e}). Pass a JSONL file of labelled positions, "
                           "e.g. the one scripts/build_c4_positions.py writes.") from e
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            moves, values = row["moves"], row["values"]
            ok = isinstance(moves, list) and isinstance(values, list) and all(isinstance(m, int) for m in moves) \
                and all(v is None or isinstance(v, int | float) for v in values) and any(v is not None for v in values)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise DatasetError(f"Line {i} of the positions file '{p}' is not a labelled position: each line must be a "
                               'JSON object {"moves": [int, ...], "values": [number or null per action], "stage": '
                               '"..."}. Regenerate the file (scripts/build_c4_positions.py) or fix that line.')
        rows.append(row)
    if not rows:
        raise DatasetError(f"The positions file '{p}' holds no positions.")
    return rows


def score_positions(agent: Any, state_cls: Any, rows: list[dict[str, Any]], deterministic: bool = True
                    ) -> PositionScore:
    """Ask ``agent`` for a move in every position; count the optimal and the outcome-preserving ones."""
    score = PositionScore()
    for i, row in enumerate(rows):
        state = state_cls.initial()
        try:
            for m in row["moves"]:
                state = state.play(int(m))
        except (ValueError, IndexError) as e:
            raise DatasetError(f"Position {i + 1} of the positions file replays an illegal move ({e}): the file is not "
                               "for this game.") from e
        values = row["values"]
        mask = state.legal_mask()
        if len(values) != len(mask) or any((v is not None) != bool(ok) for v, ok in zip(values, mask)):
            raise DatasetError(f"Position {i + 1} of the positions file labels the actions {values}, but the legal "
                               f"actions there are {np.flatnonzero(mask).tolist()}: the file is not for this game.")
        action = int(checked_action(agent, state.observation(), mask.astype(np.int8), deterministic))
        best = max(v for v in values if v is not None)
        chosen = values[action]
        score.add(str(row.get("stage", "all")), chosen == best, bool(np.sign(chosen) == np.sign(best)))
    return score
