"""Typed stage results: every stage returns a :class:`StageResult` with a declared :class:`Headline`.

The headline is the one number that says how well the stage did (held-out accuracy, win rate, exact match, mean
return), with its name and whether higher is better. The end-of-run table, ``rlft compare`` and hyper-parameter search
read it, so they work the same for game, LLM and encoder runs. ``metrics`` holds the stage's other flat figures;
``details`` anything structured a stage wants kept in ``results.json`` (evaluation tables, histories).

Example::

    return StageResult(outputs=Outputs(agent=str(folder)), metrics={"holdout_accuracy": 0.97},
                       headline=Headline("holdout_accuracy", 0.97))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rlft.pipeline.artifacts import Outputs


@dataclass
class Headline:
    """A stage's headline metric."""

    name: str
    """What is measured, e.g. ``accuracy``, ``win_rate_vs_random``, ``greedy_em``, ``mean_return``."""
    value: float
    higher_is_better: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "higher_is_better": self.higher_is_better}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Headline | None:
        if not isinstance(data, dict) or "name" not in data:
            return None
        value = data.get("value")
        return cls(str(data["name"]), float(value) if value is not None else math.nan,
                   bool(data.get("higher_is_better", True)))


@dataclass
class StageResult:
    """What a stage returns to the pipeline (and what ``run.json`` / ``results.json`` keep of it)."""

    outputs: Outputs = field(default_factory=Outputs)
    metrics: dict[str, Any] = field(default_factory=dict)
    """Flat figures: numbers (and a few short strings, e.g. the tuning mode)."""
    headline: Headline | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """Structured, JSON-serialisable extras (an evaluation table, a training history)."""
    seconds: float = 0.0
    """Wall time of the stage (set by the runner)."""
    kind: str = ""
    """The stage's registered kind (set by the runner)."""
    family: str = ""
    """The kind of model the stage belongs to: `policy`, `llm`, `encoder`, `bridge`, or a plugin's own (set by the
    runner from the registry)."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "family": self.family, "outputs": self.outputs.to_json(), "metrics": self.metrics,
                "headline": self.headline.to_json() if self.headline else None, "details": self.details,
                "seconds": self.seconds}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StageResult:
        return cls(outputs=Outputs.from_json(data.get("outputs") or {}), metrics=dict(data.get("metrics") or {}),
                   headline=Headline.from_json(data.get("headline")), details=dict(data.get("details") or {}),
                   seconds=float(data.get("seconds") or 0.0), kind=str(data.get("kind") or ""),
                   family=str(data.get("family") or ""))


def run_headline(results: Mapping[str, StageResult]) -> tuple[str, Headline] | None:
    """A run's headline: that of its last stage that has one, with the stage's name (None: no stage has one)."""
    found = [(name, r.headline) for name, r in results.items() if r.headline is not None]
    return found[-1] if found else None
