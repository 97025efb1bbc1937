"""Evaluating a policy-kind agent on an env: mean return on a single-agent env, W/D/L against opponents (half the
games in each seat) on a two-player game. The env's hooks decide which (:mod:`rlft.policy.hooks`); the result is one
:class:`~rlft.policy.report.AgentReport`.

Example::

    report = evaluate_agent(rlft.load_agent("runs/c4"), "connect_four", {}, 200, seed=0, opponents=["alphabeta:2"])
    report.per_opponent["alphabeta:2"].rate("win")
"""

from __future__ import annotations

from typing import Any

from rlft.policy.games.ray_games import RayGames
from rlft.policy.hooks import env_hooks
from rlft.policy.report import AgentReport


def evaluate_agent(agent: Any, env_spec: str, env_kwargs: dict[str, Any], episodes: int, seed: int,
                   deterministic: bool = True, opponents: list[str] | None = None, progress: bool = False,
                   ray: RayGames | None = None) -> AgentReport:
    """Evaluate one agent on ``env_spec``: returns, or W/D/L against each opponent on a two-player game (with
    ``ray``, those games in Ray actors: :mod:`rlft.policy.games.ray_games`)."""
    return env_hooks(env_spec, env_kwargs).evaluate(agent, episodes, seed=seed, deterministic=deterministic,
                                                    opponents=opponents, progress=progress, ray=ray)
