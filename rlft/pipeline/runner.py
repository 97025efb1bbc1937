"""The pipeline: the root config, the stage registry, and the loop that runs the stages into a run folder.

A pipeline config lists ``stages`` (e.g. ``[record, imitate, finetune, eval]``); each stage reads its own section
of the config and what earlier stages produced (``ctx.outputs``: a ``dataset`` path, an ``agent`` folder, ...), and
returns its outputs and headline metrics. Finished stages are recorded in ``DIR/run.json``, so ``--resume`` skips
them and the interrupted stage continues from its newest checkpoint.

Example::

    cfg = load_config(PipelineConfig, "configs/cartpole.yaml")
    results = run_pipeline(cfg, "runs/cartpole")
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlft.bridges.game_text.stage import GameTextConfig
from rlft.core import plugins
from rlft.core.config import dump_yaml, param
from rlft.core.errors import ConfigError
from rlft.core.metrics import MetricLogger, log
from rlft.core.rundir import AtomicDir, RunDir, write_json
from rlft.core.tuning import TuningConfig
from rlft.encoder.config import ClassifyConfig, ImagePretrainConfig, MLMConfig
from rlft.llm.config import (
    InitConfig,
    LLMEvalConfig,
    LLMModelConfig,
    PretrainConfig,
    RLStageConfig,
    SFTStageConfig,
)
from rlft.policy.stages.eval import EvalConfig
from rlft.policy.stages.finetune import FinetuneConfig
from rlft.policy.stages.imitate import ImitateConfig
from rlft.policy.stages.record import RecordConfig


@dataclass
class EnvConfig:
    """The environment every game stage uses."""

    id: str = "cartpole"
    """Env spec: a built-in name, a Gymnasium id, `pkg.module:make_env`, or `path/to/file.py:make_env`."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the env factory (e.g. `render_mode`)."""


@dataclass
class PipelineConfig:
    """A whole run: which stages, in which order, and each stage's settings."""

    name: str = "run"
    """A label for the run (shown in summaries)."""
    seed: int = param(0, ge=0)
    """Seed of every random number generator (stage i uses seed + i)."""
    device: str = "auto"
    """`auto` (CUDA when present, else CPU), `cpu`, or `cuda[:N]`."""
    num_threads: int = param(0, ge=0)
    """CPU threads PyTorch may use (0: PyTorch's default, all cores). Small policy networks run fastest with 1,
    especially on a busy machine."""
    stages: list[str] = field(default_factory=lambda: ["record", "imitate", "finetune", "eval"])
    """Stages to run, in order. Game stages: record, imitate, finetune, eval."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """The environment."""
    record: RecordConfig = field(default_factory=RecordConfig)
    """`record` stage: play an expert and save its games."""
    imitate: ImitateConfig = field(default_factory=ImitateConfig)
    """`imitate` stage: behaviour cloning + critic warm-up."""
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    """`finetune` stage: PPO with a KL penalty toward the starting policy."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """`eval` stage: evaluate the agents the run produced."""
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    """`classify` stage: a pretrained backbone + new head on labelled examples (full / freeze / lora)."""
    mlm: MLMConfig = field(default_factory=MLMConfig)
    """`mlm` stage: masked-language-model training of a text encoder (feeds `classify`)."""
    ssl_image: ImagePretrainConfig = field(default_factory=ImagePretrainConfig)
    """`ssl_image` stage: self-supervised image encoder training (feeds `classify`)."""
    model: LLMModelConfig = field(default_factory=LLMModelConfig)
    """LLM stages: the causal LM the first of them starts from (hub id or folder; empty with the `init` stage)."""
    tuning: TuningConfig = field(default_factory=TuningConfig)
    """LLM stages `sft` and `rl`: full / freeze / lora (`pretrain` always trains every parameter)."""
    init: InitConfig = field(default_factory=InitConfig)
    """`init` stage: train a small tokenizer and build a tiny Qwen2-style causal LM, offline."""
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    """`pretrain` stage: self-supervised causal-LM training on a text corpus."""
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    """`sft` stage: TRL SFTTrainer on prompt/completion demonstrations."""
    rl: RLStageConfig = field(default_factory=RLStageConfig)
    """`rl` stage: TRL GRPO or RLOO with reward plugins."""
    llm_eval: LLMEvalConfig = field(default_factory=LLMEvalConfig)
    game_text: GameTextConfig = field(default_factory=GameTextConfig)
    """`game_text` stage: recorded games -> prompt/completion text (data sources `game_text`, `game_text:test`)."""
    """LLM held-out evaluation (exact match greedy/sampled, reward): before/after each LLM stage and `llm_eval`."""

    def validate(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown} in 'stages'; known stages: {sorted(STAGES)}.")
        if len(set(self.stages)) != len(self.stages):
            raise ValueError(f"'stages' lists a stage twice: {self.stages}.")


STAGES: dict[str, str] = {
    "record": "rlft.policy.stages.record:run",
    "imitate": "rlft.policy.stages.imitate:run",
    "finetune": "rlft.policy.stages.finetune:run",
    "eval": "rlft.policy.stages.eval:run",
    "classify": "rlft.encoder.stages.classify:run",
    "mlm": "rlft.encoder.stages.mlm:run_mlm",
    "ssl_image": "rlft.encoder.stages.ssl_image:run_ssl_image",
    "init": "rlft.llm.stages.build:run",
    "pretrain": "rlft.llm.stages.pretrain:run",
    "sft": "rlft.llm.stages.sft:run",
    "rl": "rlft.llm.stages.rl:run",
    "llm_eval": "rlft.llm.stages.llm_eval:run",
    "game_text": "rlft.bridges.game_text.stage:run",
}
"""Stage name -> ``"module:function"``; the function takes a :class:`StageContext` and returns its result dict."""


@dataclass
class StageContext:
    """What a stage gets: the run folder, the config, the device, and what earlier stages produced."""

    run: RunDir
    cfg: PipelineConfig
    stage: str
    seed: int
    device: str
    resume: bool = False
    progress: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)
    """Artifacts of earlier stages: `dataset` (path), `agent` (folder), `agents` ({stage: folder}), `model`, ..."""

    def metrics(self) -> MetricLogger:
        """The stage's TensorBoard logger (``DIR/tb/<stage>``)."""
        return MetricLogger(self.run.tb_dir(self.stage))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _merge_outputs(outputs: dict[str, Any], stage: str, new: dict[str, Any]) -> None:
    for key, value in new.items():
        outputs[key] = value
        if key in ("agent", "model"):
            outputs["final"] = value  # the last agent or model produced becomes DIR/final
            outputs.setdefault("agents", {})[stage] = value


def _resolve_data_sources(cfg: PipelineConfig, outputs: dict[str, Any]) -> None:
    """Point every ``<section>.data.source`` that names a source an earlier stage produced (``game_text``) at it."""
    sources: dict[str, str] = outputs.get("data_sources") or {}
    if not sources:
        return
    for section in vars(cfg).values():
        data = getattr(section, "data", None)
        if data is not None and getattr(data, "source", None) in sources:
            data.source = sources[data.source]


def run_pipeline(
    cfg: PipelineConfig,
    run_dir: str | Path | RunDir,
    *,
    resume: bool = False,
    progress: bool = False,
    on_stage_end: Callable[[str, dict[str, Any]], None] | None = None,
    initial_outputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``cfg.stages`` into ``run_dir``; returns ``{stage: result}``. ``final/`` gets the last agent or model."""
    from rlft.core.runtime import resolve_device

    run = run_dir if isinstance(run_dir, RunDir) else RunDir.create(run_dir, resume=resume)
    if not resume:
        dump_yaml(cfg, run.config_path)
    elif not run.config_path.is_file():
        raise ConfigError(f"Cannot resume '{run.path}': its config.yaml is missing.")
    device = resolve_device(cfg.device)
    outputs: dict[str, Any] = dict(initial_outputs or {})
    results: dict[str, Any] = {}
    for index, stage in enumerate(cfg.stages):
        done = run.stage_done(stage)
        if done is not None:
            log.info("%s: already finished, skipping (resume)", stage)
            _merge_outputs(outputs, stage, done.get("outputs", {}))
            results[stage] = done
            continue
        seed = cfg.seed + index
        seed_everything(seed)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        _resolve_data_sources(cfg, outputs)
        ctx = StageContext(run=run, cfg=cfg, stage=stage, seed=seed, device=device, resume=resume,
                           progress=progress, outputs=outputs)
        log.info("%s: starting", stage)
        start = time.time()
        fn = plugins.import_object(STAGES[stage], "stage")
        result = fn(ctx)
        result["seconds"] = round(time.time() - start, 2)
        run.mark_done(stage, result)
        _merge_outputs(outputs, stage, result.get("outputs", {}))
        results[stage] = result
        if on_stage_end is not None:
            on_stage_end(stage, result)
    _write_final(run, outputs)
    write_json(run.path / "results.json", results)
    return results


def _write_final(run: RunDir, outputs: dict[str, Any]) -> None:
    """Copy the last agent (or model) into ``DIR/final`` atomically."""
    import shutil

    source = outputs.get("final")
    if not source or not Path(source).is_dir():
        return
    if run.final_dir.exists() and Path(source).resolve() == run.final_dir.resolve():
        return
    with AtomicDir(run.final_dir) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
