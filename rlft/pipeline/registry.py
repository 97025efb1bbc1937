"""The stage registry: built-in stages, the entry-point group ``rlft.stages``, and ``pkg.module:NAME`` specs.

A stage is a :class:`Stage`: its config class (one typed section of the pipeline config) and its ``run`` function,
``run(ctx: StageContext[MyConfig]) -> StageResult``. Built-ins are named by ``"module:attr"`` strings and imported on
first use, so reading a config imports only the config classes (leaf modules), never a trainer. An installed package
adds stages through the entry-point group ``rlft.stages`` (the entry point names a :class:`Stage`); a pipeline can
also name one as ``pkg.module:NAME`` or ``path/to/file.py:NAME``.

Example (a user package's ``pyproject.toml``)::

    [project.entry-points."rlft.stages"]
    my_stage = "my_pkg.stage:STAGE"        # STAGE = rlft.Stage(config=MyConfig, run=run)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from rlft.core import plugins
from rlft.core.errors import ConfigError, PluginError


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: its config section's class and its run function (objects, or ``"module:attr"`` strings)."""

    config: type | str
    run: Callable[..., Any] | str
    summary: str = ""
    """One line for ``rlft stages`` and the docs."""
    family: str = ""
    """The kind of model it trains or evaluates (`policy`, `llm`, `encoder`, `bridge`, ...): `rlft compare` shows it."""

    def config_class(self) -> type:
        cls = plugins.import_object(self.config, "stage config") if isinstance(self.config, str) else self.config
        if not isinstance(cls, type):
            raise PluginError(f"The stage config '{self.config}' is not a class (a dataclass is expected).")
        return cls

    def run_function(self) -> Callable[..., Any]:
        fn = plugins.import_object(self.run, "stage") if isinstance(self.run, str) else self.run
        if not callable(fn):
            raise PluginError(f"The stage function '{self.run}' is not callable.")
        return fn  # type: ignore[no-any-return]


def _builtin(config: str, run: str, summary: str) -> Stage:
    family = config.split(".")[1]  # rlft.<family>.config:Class
    return Stage(config=config, run=run, summary=summary, family={"bridges": "bridge"}.get(family, family))


BUILTIN_STAGES: dict[str, Stage] = {
    # game policies (rlft.policy)
    "record": _builtin("rlft.policy.config:RecordConfig", "rlft.policy.stages.record:run",
                       "an agent plays; its games are saved as a Minari dataset"),
    "imitate": _builtin("rlft.policy.config:ImitateConfig", "rlft.policy.stages.imitate:run",
                        "behaviour cloning from recorded games, then critic warm-up"),
    "finetune": _builtin("rlft.policy.config:FinetuneConfig", "rlft.policy.stages.finetune:run",
                         "PPO (SB3 / MaskablePPO) with a KL penalty toward the starting policy; self-play on games"),
    "eval": _builtin("rlft.policy.config:EvalConfig", "rlft.policy.stages.eval:run",
                     "evaluate every agent the run produced (returns, or W/D/L against opponents)"),
    # causal LMs (rlft.llm)
    "build": _builtin("rlft.llm.config:BuildConfig", "rlft.llm.stages.build:run",
                      "train a small tokenizer and build a tiny causal LM, offline"),
    "pretrain": _builtin("rlft.llm.config:PretrainConfig", "rlft.llm.stages.pretrain:run",
                         "self-supervised causal-LM training on a text corpus"),
    "sft": _builtin("rlft.llm.config:SFTConfig", "rlft.llm.stages.sft:run",
                    "supervised fine-tuning on demonstrations (TRL SFTTrainer)"),
    "rl": _builtin("rlft.llm.config:RLConfig", "rlft.llm.stages.rl:run",
                   "reward-driven fine-tuning with reward plugins (TRL GRPO / RLOO)"),
    "label": _builtin("rlft.llm.config:LabelConfig", "rlft.llm.stages.label:run",
                      "AI feedback: two sampled completions per prompt ordered by a judge -> preference pairs"),
    "reward_model": _builtin("rlft.llm.config:RewardModelConfig", "rlft.llm.stages.reward_model:run",
                             "a reward model fitted to preference pairs (TRL RewardTrainer)"),
    "dpo": _builtin("rlft.llm.config:DPOConfig", "rlft.llm.stages.dpo:run",
                    "direct preference optimisation on preference pairs (TRL DPOTrainer)"),
    "llm_eval": _builtin("rlft.llm.config:LLMEvalConfig", "rlft.llm.stages.llm_eval:run",
                         "held-out exact match (greedy, sampled) and reward of the current LLM"),
    # encoders (rlft.encoder)
    "classify": _builtin("rlft.encoder.config:ClassifyConfig", "rlft.encoder.stages.classify:run",
                         "a pretrained backbone + new head on labelled examples"),
    "mlm": _builtin("rlft.encoder.config:MLMConfig", "rlft.encoder.stages.mlm:run",
                    "masked-language-model training of a text encoder"),
    "ssl_image": _builtin("rlft.encoder.config:SSLImageConfig", "rlft.encoder.stages.ssl_image:run",
                          "self-supervised image encoder training (SimCLR, rotation, masked pixels)"),
    # bridges
    "game_text": _builtin("rlft.bridges.game_text.stage:GameTextConfig", "rlft.bridges.game_text.stage:run",
                          "recorded games -> prompt/completion text for the LLM stages"),
}
"""The stages rlft ships, by kind name."""

RENAMED_STAGES: dict[str, str] = {"init": "build"}
"""Old stage names -> new ones (an old name in a config is an error naming the new one)."""


def installed_stages() -> dict[str, str]:
    """``{name: "module:attr"}`` of the stages installed packages offer (entry-point group ``rlft.stages``)."""
    return {ep.name: ep.value for ep in entry_points(group="rlft.stages")}


def resolve_stage(kind: str) -> Stage:
    """The :class:`Stage` of a kind: a built-in name, an entry point in ``rlft.stages``, or ``pkg.module:NAME``."""
    if kind in RENAMED_STAGES:
        raise ConfigError(f"The stage '{kind}' was renamed: it is now '{RENAMED_STAGES[kind]}'. Rename it in "
                          f"`stages` (and its config section '{kind}:' to '{RENAMED_STAGES[kind]}:').")
    obj = plugins.resolve(kind, kind="stage", builtins=BUILTIN_STAGES, group="rlft.stages")
    if not isinstance(obj, Stage):
        raise PluginError(f"The stage '{kind}' resolved to a {type(obj).__name__}, not an rlft.Stage. A stage plugin "
                          "is `STAGE = rlft.Stage(config=MyConfig, run=run)`, with `run(ctx) -> rlft.StageResult`.")
    return obj


def is_stage_kind(name: str) -> bool:
    """True for a built-in stage name or one an installed package offers."""
    return name in BUILTIN_STAGES or name in installed_stages()
