"""The pipeline config: a shared block (env, model, seed, device, threads) plus one typed section per stage.

A YAML pipeline lists ``stages``; each stage has a section named after it, whose type is the stage's config class
(:mod:`rlft.pipeline.registry`). A stage's *kind* is its name, or the section's ``kind`` key -- so one kind can appear
twice under two names::

    stages: [record, imitate, finetune, finetune_b, eval]
    finetune:   {total_timesteps: 20000, self_play: {opponents: [random]}}
    finetune_b: {kind: finetune, start_from: finetune, self_play: {opponents: [alphabeta:1]}}

Precedence is defaults < file < ``--set section.key=value``. An unknown key, a wrong type, an out-of-range value, a
section of no listed stage or a renamed key is a :class:`~rlft.core.errors.ConfigError` naming the key and the file.

Example::

    cfg = load_pipeline("configs/cartpole.yaml", ["finetune.total_timesteps=20000"])
    cfg.section("finetune").total_timesteps  # 20000
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rlft.core.config import Origins, apply_overrides, build, param, read_yaml
from rlft.core.errors import ConfigError, RlftError
from rlft.core.rundir import write_text
from rlft.pipeline.registry import RENAMED_STAGES, is_stage_kind, resolve_stage


@dataclass
class EnvConfig:
    """The environment every game stage uses (and that a text-trained LLM plays)."""

    id: str = "cartpole"
    """Env spec: a built-in name, a Gymnasium id, `pkg.module:make_env`, or `path/to/file.py:make_env`."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the env factory (e.g. `render_mode`)."""


@dataclass
class ModelConfig:
    """The pretrained causal LM the first LLM stage starts from (later ones continue from the previous one's model)."""

    name: str = ""
    """Hugging Face causal-LM id or local folder. Empty: the model must come from an earlier stage (e.g. `build`)."""
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    """Weights dtype when loading `name`."""
    trust_remote_code: bool = False
    """Allow model code shipped with a hub repo to run (off by default: it executes code from the download)."""
    num_threads: int = param(0, ge=0)
    """CPU threads of the LLM stages only, overriding the top-level `num_threads` (0: no override)."""


@dataclass
class PipelineConfig:
    """A whole run: the shared block, which stages run in which order, and each stage's own section."""

    name: str = "run"
    """A label for the run (shown in summaries)."""
    seed: int = param(0, ge=0)
    """Seed of every random number generator (stage i uses seed + i)."""
    device: str = "auto"
    """`auto` (CUDA when present, else CPU), `cpu`, or `cuda[:N]`."""
    num_threads: int = param(0, ge=0)
    """CPU threads PyTorch may use (0: PyTorch's default, all cores). Small networks run fastest with 1."""
    keep_checkpoints: int = param(2, ge=0)
    """Checkpoints kept per stage in `DIR/checkpoints/<stage>/` (the newest ones; 0 keeps all)."""
    stages: list[str] = field(default_factory=lambda: ["record", "imitate", "finetune", "eval"])
    """Stages to run, in order: built-in kinds (`rlft stages` lists them) or names whose section sets `kind`."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """The environment (game stages; LLM stages that play a game)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The pretrained causal LM of the LLM stages."""
    sections: dict[str, Any] = field(default_factory=dict, metadata={"internal": True})
    """Stage name -> its typed config section (built from the YAML key of the same name)."""
    kinds: dict[str, str] = field(default_factory=dict, metadata={"internal": True})
    """Stage name -> its kind (the registry name)."""

    def section(self, name: str) -> Any:
        """The config section of stage ``name``."""
        return self.sections[name]

    def validate(self) -> None:
        if not self.stages:
            raise ValueError("'stages' is empty: list at least one stage (`rlft stages` lists them).")
        bad = [s for s in self.stages if not _NAME.fullmatch(s)]
        if bad:
            raise ValueError(f"stage names must be lowercase identifiers (letters, digits, _): {bad}.")
        twice = sorted({s for s in self.stages if self.stages.count(s) > 1})
        if twice:
            raise ValueError(f"'stages' lists {twice} twice. To run a kind twice, give the second one its own name "
                             "and section with `kind:`, e.g. finetune_b: {kind: finetune, ...}.")


_NAME = re.compile(r"[a-z][a-z0-9_]*")
SHARED_KEYS = tuple(f.name for f in dataclasses.fields(PipelineConfig) if not f.metadata.get("internal"))
MOVED_KEYS: dict[str, str] = {"tuning": "the `tuning` key of each stage (sft.tuning, rl.tuning)"}
"""Old top-level keys whose settings moved into stage sections."""


def pipeline_from_dict(data: dict[str, Any], source: str = "<dict>", overrides: list[str] | None = None
                       ) -> PipelineConfig:
    """Build and validate a :class:`PipelineConfig` from plain data plus ``--set`` overrides."""
    origins = Origins(source)
    data = apply_overrides(_copy(data), overrides or [], origins)
    for key, where in MOVED_KEYS.items():
        stages = data.get("stages")
        if key in data and key not in (stages if isinstance(stages, list) else []):
            raise ConfigError(f"Config key '{key}' (from {origins.of(key)}) moved: its settings now live in {where}. "
                              "Move them there.")
    shared = {k: data.pop(k) for k in SHARED_KEYS if k in data}
    cfg = build(PipelineConfig, shared, "", origins)
    names = list(cfg.stages)
    extra = [k for k in data if k not in names]
    for key in extra:  # a section of a stage that is not listed: validated when it is a stage kind, else an error
        if not (is_stage_kind(key) or isinstance(data[key], dict) and "kind" in data[key]):
            hint = f" The stage '{key}' was renamed to '{new}'." if (new := RENAMED_STAGES.get(key)) else ""
            raise ConfigError(
                f"Unknown config key '{key}' (from {origins.of(key)}). It is neither a shared key "
                f"({', '.join(SHARED_KEYS)}) nor the section of a stage.{hint} List the stage in `stages`, or check "
                "the spelling; `rlft config --docs` prints every key.")
    for name in [*names, *extra]:
        raw = data.get(name, {})
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"Config section '{name}' (from {origins.of(name)}) must be a mapping of keys to values.")
        raw = dict(raw)
        kind = str(raw.pop("kind", name))
        try:
            stage = resolve_stage(kind)
        except RlftError as e:
            raise ConfigError(f"Stage '{name}' (from {origins.of(name)}): {e}") from e
        cfg.sections[name] = build(stage.config_class(), raw, name, origins)
        cfg.kinds[name] = kind
    for i, name in enumerate(names):  # checks across stages (e.g. a reward model named by stage), before any runs
        check = getattr(cfg.sections[name], "check_pipeline", None)
        if callable(check):
            check(name, names[:i], cfg.kinds)
    return cfg


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (_copy(v) if isinstance(v, dict) else v) for k, v in data.items()}


def load_pipeline(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """Load a pipeline config from a YAML file (optional) and ``--set`` overrides, validating every key."""
    data = read_yaml(path) if path is not None else {}
    return pipeline_from_dict(data, source=f"config file '{path}'" if path else "defaults", overrides=overrides)


def pipeline_to_dict(cfg: PipelineConfig) -> dict[str, Any]:
    """Plain data that :func:`pipeline_from_dict` reads back to the same config."""
    out: dict[str, Any] = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v  # type: ignore[arg-type]
                           for k in SHARED_KEYS for v in [getattr(cfg, k)]}
    for name, section in cfg.sections.items():
        kind = cfg.kinds.get(name, name)
        out[name] = {**({"kind": kind} if kind != name else {}), **dataclasses.asdict(section)}
    return out


def pipeline_yaml(cfg: PipelineConfig) -> str:
    """The resolved config as YAML text (what ``DIR/config.yaml`` holds)."""
    return yaml.safe_dump(pipeline_to_dict(cfg), sort_keys=False)


def dump_pipeline(cfg: PipelineConfig, path: str | Path) -> None:
    """Write the resolved config to YAML (``DIR/config.yaml``), atomically."""
    write_text(path, pipeline_yaml(cfg))
