"""A search space: a YAML file mapping dotted config keys to distributions, checked on load.

Each entry is one of::

    finetune.learning_rate: {log_uniform: [1.0e-5, 1.0e-3]}   # float, sampled on a log scale
    finetune.gae_lambda: {uniform: [0.8, 0.99]}               # float
    finetune.n_epochs: {int: [3, 20]}                         # integer, both ends included
    finetune.batch_size: {log_int: [32, 256]}                 # integer on a log scale
    finetune.n_steps: {choice: [32, 64, 128]}                 # one of the listed values
    finetune.total_timesteps: 12000                           # a plain value: fixed for every trial
    stages: [finetune, eval]                                  # (a list is a fixed value too)
    finetune.policy: {fixed: {arch: mlp, net_arch: [64]}}     # a fixed mapping is written with `fixed:`

Sampling goes through Optuna's ``trial.suggest_*`` (TPE by default); the names of the parameters are the dotted keys.

Example::

    space = load_space("configs/spaces/cartpole.yaml")
    params = space.suggest(trial)            # {"finetune.learning_rate": 0.00031, ...}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlft.core.config import read_yaml
from rlft.core.errors import ConfigError

KINDS = ("log_uniform", "uniform", "int", "log_int", "choice")
"""The distributions a space entry can name (plus ``fixed``)."""


@dataclass(frozen=True)
class Param:
    """One searched config key."""

    key: str
    """The dotted config key, e.g. ``finetune.learning_rate``."""
    kind: str
    """One of :data:`KINDS`."""
    values: tuple[Any, ...]
    """``(low, high)`` for the numeric kinds, the options for ``choice``."""

    def suggest(self, trial: Any) -> Any:
        """Draw this parameter from an Optuna trial."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.values))
        low, high = self.values
        if self.kind in ("int", "log_int"):
            return trial.suggest_int(self.key, low, high, log=self.kind == "log_int")
        return trial.suggest_float(self.key, low, high, log=self.kind == "log_uniform")

    def extremes(self) -> list[Any]:
        """The values that bound this parameter (every option of a choice): what a space check tries."""
        return list(self.values)


@dataclass
class Space:
    """A parsed search space: the searched keys and the keys fixed for every trial."""

    params: list[Param] = field(default_factory=list)
    fixed: dict[str, Any] = field(default_factory=dict)
    source: str = "<space>"

    def suggest(self, trial: Any) -> dict[str, Any]:
        """One value per searched key, drawn from ``trial``."""
        return {p.key: p.suggest(trial) for p in self.params}

    def to_json(self) -> dict[str, Any]:
        """Plain data that identifies the space (kept in the study, so a rerun with another space is refused)."""
        return {"params": {p.key: {p.kind: list(p.values)} for p in self.params}, "fixed": self.fixed}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_param(key: str, kind: str, values: Any, where: str) -> Param:
    example = {"log_uniform": "[1.0e-5, 1.0e-3]", "uniform": "[0.8, 0.99]", "int": "[3, 20]",
               "log_int": "[32, 256]", "choice": "[32, 64, 128]"}[kind]
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: '{key}: {{{kind}: ...}}' needs a list, e.g. {{{kind}: {example}}}.")
    if kind == "choice":
        bad = [v for v in values if not (v is None or isinstance(v, str | bool | int | float))]
        if bad:
            raise ConfigError(f"{where}: the options of '{key}' must be plain values (numbers, strings, booleans); "
                              f"{bad[0]!r} is not. Fix a mapping or list for every trial with {{fixed: ...}}.")
        return Param(key, kind, tuple(values))
    if len(values) != 2 or not all(_number(v) for v in values):
        raise ConfigError(f"{where}: '{key}: {{{kind}: {values}}}' needs two numbers [low, high], e.g. "
                          f"{{{kind}: {example}}}. (YAML reads 1e-5 as a string: write 1.0e-5.)")
    low, high = values
    if kind in ("int", "log_int") and not all(isinstance(v, int) for v in values):
        raise ConfigError(f"{where}: '{key}: {{{kind}: {values}}}' needs two integers.")
    if not low < high:
        raise ConfigError(f"{where}: '{key}: {{{kind}: {values}}}' needs low < high.")
    if kind.startswith("log") and low <= 0:
        raise ConfigError(f"{where}: '{key}: {{{kind}: {values}}}' is on a log scale, so low must be > 0.")
    return Param(key, kind, (low, high) if kind.endswith("int") else (float(low), float(high)))


def parse_space(data: dict[str, Any], source: str = "<space>") -> Space:
    """Check and parse the mapping of a space file (see the module docstring for the entries)."""
    space = Space(source=source)
    if not data:
        raise ConfigError(f"{source} is empty: map at least one config key to a distribution, e.g. "
                          "'finetune.learning_rate: {log_uniform: [1.0e-5, 1.0e-3]}'.")
    for key, value in data.items():
        where = f"{source}, key '{key}'"
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"{source}: '{key}' is not a dotted config key (e.g. finetune.learning_rate).")
        if isinstance(value, dict):
            if list(value) == ["fixed"]:
                space.fixed[key] = value["fixed"]
                continue
            if len(value) != 1 or next(iter(value)) not in KINDS:
                raise ConfigError(f"{where}: {value!r} is not a distribution. Write exactly one of "
                                  f"{', '.join(KINDS)} (e.g. {{log_uniform: [1.0e-5, 1.0e-3]}}), or "
                                  "{fixed: VALUE} for a value every trial uses.")
            kind = next(iter(value))
            space.params.append(_parse_param(key, kind, value[kind], where))
        else:
            space.fixed[key] = value
    if not space.params:
        raise ConfigError(f"{source} fixes keys but searches none: give at least one key a distribution, e.g. "
                          "'finetune.learning_rate: {log_uniform: [1.0e-5, 1.0e-3]}'.")
    return space


def load_space(path: str | Path) -> Space:
    """Read and check a space file (``yaml.safe_load``); every problem is a ConfigError naming the key."""
    return parse_space(read_yaml(path), source=f"the space file '{path}'")
