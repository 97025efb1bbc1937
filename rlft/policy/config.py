"""x"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rlft.core.config import param

if TYPE_CHECKING:
    pass


@dataclass
class SelfPlayConfig:
    """Opponents of the learner during fine-tuning on a two-player game (``finetune.self_play``)."""

    opponents: list[str] = field(default_factory=lambda: ["random"])
    """Fixed opponents (agent specs: `random`, `greedy`, `alphabeta:2`, a run folder, `module:Class`)."""
    pool_size: int = param(5, ge=0)
    """Frozen snapshots of the learner kept in the pool (0: no self-play, fixed opponents only)."""
    snapshot_every: int = param(20_000, ge=1)
    """Env steps between snapshots (the starting policy is the first snapshot)."""
    self_play_fraction: float = param(0.5, ge=0, le=1)
    """Probability that an episode's opponent is a snapshot rather than a fixed opponent (when both exist)."""
    pfsp_power: float = param(1.0, ge=0)
    """Prioritised fictitious self-play: weight ``(1 - score) ** power``; 0 samples uniformly."""
    pfsp_floor: float = param(0.05, ge=0)
    """Added to every weight, so an opponent the learner always beats is still played now and then."""
    snapshot_deterministic: bool = False
    """Snapshots play greedily (False: they sample from their policy, for more varied games)."""
    eval_opponents: list[str] = field(default_factory=list)
    """Opponents of the periodic evaluation (empty: `eval.opponents`); the first one's win rate is the headline."""
    elo_games: int = param(20, ge=0)
    """Games per pair of evaluation opponents to rate them once (for the learner's Elo curve; 0: no Elo)."""

    def validate(self) -> None:
        if not self.opponents and self.pool_size == 0:
            raise ValueError("self_play needs fixed opponents or pool_size > 0: the learner has nobody to play.")
