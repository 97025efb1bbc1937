"""Typed artifacts: what a stage produced (:class:`Outputs`) and what all earlier stages produced (:class:`Artifacts`).

Stages hand each other files, never objects: a recorded dataset, agent folders (one per stage), the newest causal LM,
the newest encoder, the newest classifier, and text data made from games. A stage reads what it needs from
``ctx.artifacts`` (typed fields, with errors that name the stage to add) instead of another stage's config section.

Example::

    dataset = ctx.artifacts.require("dataset", by="imitate", hint="run `record` before it or set imitate.dataset")
    start = ctx.artifacts.agent_of("imitate")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlft.core.errors import ConfigError


@dataclass
class TextData:
    """Text datasets a stage made (e.g. from recorded games), offered to later stages as named data sources."""

    env: str
    """The env whose positions the text describes ('' when none): an LLM trained on it can play that env."""
    sources: dict[str, str] = field(default_factory=dict)
    """Source name (``game_text``, ``game_text:test``, ...) -> file path."""


@dataclass
class Outputs:
    """What one stage produced. Every field is a path (or None)."""

    dataset: str | None = None
    """Recorded episodes (a Minari dataset folder)."""
    agent: str | None = None
    """A folder ``rlft.load_agent`` loads: a game policy, or an LLM that plays a game."""
    model: str | None = None
    """A causal LM folder (Hugging Face format); later LLM stages continue from it."""
    encoder: str | None = None
    """An encoder folder; ``classify`` with ``backbone: previous`` starts from it."""
    classifier: str | None = None
    """A trained classifier folder."""
    reward_model: str | None = None
    """A reward model folder (sequence classifier); a later `rl` stage names it by stage: `{model: <stage>}`."""
    text: TextData | None = None
    """Text data sources for later stages."""

    @property
    def final(self) -> str | None:
        """The folder ``DIR/final`` gets when this stage is the last to produce one."""
        return self.agent or self.model or self.classifier

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outputs:
        text = data.get("text")
        return cls(**{**{k: v for k, v in data.items() if k in _FIELDS}, "text": TextData(**text) if text else None})


_FIELDS = {f.name for f in dataclasses.fields(Outputs)}


@dataclass
class Artifacts:
    """Everything the earlier stages of a pipeline produced."""

    dataset: str | None = None
    datasets: dict[str, str] = field(default_factory=dict)
    """Dataset folders by the name of the stage that wrote them, in pipeline order."""
    agents: dict[str, str] = field(default_factory=dict)
    """Agent folders by the name of the stage that produced them, in pipeline order."""
    model: str | None = None
    encoder: str | None = None
    classifier: str | None = None
    reward_models: dict[str, str] = field(default_factory=dict)
    """Reward model folders by the name of the stage that trained them."""
    text: TextData | None = None
    final: str | None = None

    def add(self, stage: str, out: Outputs) -> None:
        """Take in what ``stage`` produced (newer artifacts replace older ones of the same kind)."""
        for name in ("dataset", "model", "encoder", "classifier", "text"):
            value = getattr(out, name)
            if value is not None:
                setattr(self, name, value)
        if out.dataset is not None:
            self.datasets[stage] = out.dataset
        if out.agent is not None:
            self.agents[stage] = out.agent
        if out.reward_model is not None:
            self.reward_models[stage] = out.reward_model
        if out.final is not None:
            self.final = out.final

    def agent_of(self, stage: str, *, by: str) -> str:
        """The agent folder ``stage`` produced; a ConfigError naming the stages that did, if it did not run."""
        if stage not in self.agents:
            have = ", ".join(self.agents) or "none"
            raise ConfigError(f"{by} starts from the agent of stage '{stage}', but no stage of that name produced "
                              f"one before it (stages with agents so far: {have}). Put '{stage}' earlier in "
                              "`stages`, or start from `scratch` or a checkpoint path.")
        return self.agents[stage]

    def dataset_of(self, source: str, *, by: str) -> str:
        """The dataset an earlier stage named ``source`` wrote, else ``source`` as a dataset folder or id; a
        ConfigError naming the stages that wrote one, when it is neither."""
        if source in self.datasets:
            return self.datasets[source]
        if Path(source).exists() or "/" in source or "\\" in source:
            return source  # a folder (load_transitions says clearly if it is not a dataset)
        have = ", ".join(self.datasets) or "none"
        raise ConfigError(f"{by} names '{source}', which is neither an earlier stage that recorded a dataset (stages "
                          f"with datasets so far: {have}) nor a dataset folder. Put that record stage earlier in "
                          "`stages`, or give the dataset's path.")

    def latest_agent(self) -> str | None:
        """The newest agent folder (None when no stage produced one)."""
        return next(reversed(self.agents.values()), None)

    def data_source(self, source: str) -> str:
        """A data source by name: a text source an earlier stage produced (``game_text``), else ``source`` itself."""
        if self.text is not None and source in self.text.sources:
            return self.text.sources[source]
        return source
