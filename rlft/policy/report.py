"""The one evaluation report of an agent: returns on single-agent envs, W/D/L per opponent on two-player games.

Example::

    report = AgentReport.from_returns(*evaluate_gym(agent, env, 20))
    report.headline()          # Headline("mean_return", 500.0)
    report.to_json()           # {"mean_return": 500.0, "std_return": 0.0, "episodes": 20, "mean_length": 500.0}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlft.pipeline.results import Headline


def result_of(reward: float) -> str:
    """``win`` / ``draw`` / ``loss`` of a seat's final game return."""
    return "win" if reward > 0 else "loss" if reward < 0 else "draw"


@dataclass
class GameRecord:
    """An agent's games against one opponent (half in each seat)."""

    wins: int = 0
    draws: int = 0
    losses: int = 0
    wins_first: int = 0
    games_first: int = 0
    """Wins and games with the agent in the first seat (the rest it played second)."""

    def add(self, reward: float, first_seat: bool) -> None:
        """Count one finished game with the agent's final ``reward``."""
        kind = result_of(reward)
        self.wins += kind == "win"
        self.draws += kind == "draw"
        self.losses += kind == "loss"
        self.games_first += first_seat
        self.wins_first += first_seat and kind == "win"

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    def rate(self, kind: str) -> float:
        """Share of games won (``win``), drawn (``draw``) or lost (``loss``)."""
        return {"win": self.wins, "draw": self.draws, "loss": self.losses}[kind] / max(self.games, 1)

    @property
    def score(self) -> float:
        """(wins + draws / 2) / games."""
        return (self.wins + 0.5 * self.draws) / max(self.games, 1)

    def to_json(self) -> dict[str, Any]:
        second = self.games - self.games_first
        return {"win": self.rate("win"), "draw": self.rate("draw"), "loss": self.rate("loss"), "games": self.games,
                "wins": self.wins, "draws": self.draws, "losses": self.losses,
                "win_first": self.wins_first / max(self.games_first, 1),
                "win_second": (self.wins - self.wins_first) / max(second, 1),
                "games_first": self.games_first, "wins_first": self.wins_first}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GameRecord:
        return cls(int(data["wins"]), int(data["draws"]), int(data["losses"]), int(data.get("wins_first", 0)),
                   int(data.get("games_first", 0)))


@dataclass
class AgentReport:
    """How an agent did: ``returns`` on a single-agent env, or ``per_opponent`` records on a two-player game."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    per_opponent: dict[str, GameRecord] = field(default_factory=dict)
    moves: dict[str, float] | None = None
    """LLM agents: what the free model would have played (illegal / unparsable rates)."""

    @classmethod
    def from_returns(cls, returns: list[float], lengths: list[int]) -> AgentReport:
        return cls(returns=list(returns), lengths=list(lengths))

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    def headline(self) -> Headline:
        """Games: the mean score over opponents ((W + D/2) / games); single-agent envs: the mean return."""
        if self.per_opponent:
            return Headline("score", float(np.mean([r.score for r in self.per_opponent.values()])))
        return Headline("mean_return", self.mean_return)

    def to_json(self) -> dict[str, Any]:
        if self.per_opponent:
            out: dict[str, Any] = {"per_opponent": {o: r.to_json() for o, r in self.per_opponent.items()}}
            if self.moves is not None:
                out["moves"] = dict(self.moves)
            return out
        return {"mean_return": self.mean_return,
                "std_return": float(np.std(self.returns)) if self.returns else float("nan"),
                "episodes": len(self.returns),
                "mean_length": float(np.mean(self.lengths)) if self.lengths else float("nan")}

    def scalars(self) -> dict[str, float]:
        """Flat figures for TensorBoard and ``results.json`` (``<opponent>/win``, ``mean_return``, ...)."""
        data = self.to_json()
        flat: dict[str, float] = {}
        for key, value in data.items():
            if isinstance(value, dict):
                for sub, inner in value.items():
                    if isinstance(inner, dict):
                        flat.update({f"{sub}/{k}": float(v) for k, v in inner.items()})
                    else:
                        flat[f"{key}/{sub}"] = float(inner)
            else:
                flat[key] = float(value)
        return flat
