"""A stage whose score is a config value: what the tests of `rlft tune` search over (the search machinery, not RL).

Every one of its ``evals`` periodic evaluations reports ``x`` (after ``sleep`` seconds), and ``x`` is its headline,
so a test knows exactly what each trial scores and where the pruner must stop it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import rlft


@dataclass
class ScoreConfig:
    x: float = 0.5
    """The score of the run (reported at every evaluation, and the headline)."""
    evals: int = 4
    """Periodic evaluations."""
    sleep: float = 0.0
    """Seconds before each evaluation (so a test can kill a study while a trial runs)."""


def run(ctx: rlft.StageContext[ScoreConfig]) -> rlft.StageResult:
    for i in range(ctx.config.evals):
        time.sleep(ctx.config.sleep)
        ctx.report(i, ctx.config.x)
    return rlft.StageResult(metrics={"x": ctx.config.x}, headline=rlft.Headline("x", ctx.config.x))


STAGE = rlft.Stage(config=ScoreConfig, run=run, summary="score = x (tests of rlft tune)")
