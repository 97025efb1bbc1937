"""The runner: run a pipeline's stages in order into a run folder, resumably.

For each stage the runner resolves its kind in the registry, builds a :class:`~rlft.pipeline.context.StageContext`
with the stage's own section and the artifacts of earlier stages, calls ``run(ctx)`` and records the
:class:`~rlft.pipeline.results.StageResult` in ``DIR/run.json``. ``--resume`` skips finished stages (their recorded
outputs become artifacts again) and the interrupted one continues from its newest checkpoint. At the end the last
agent or model is copied atomically to ``DIR/final`` and every result is written to ``DIR/results.json``.

Example::

    cfg = load_pipeline("configs/cartpole.yaml")
    results = run_pipeline(cfg, "runs/cartpole")
    results["eval"].headline
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from rlft.core import plugins
from rlft.core.errors import ConfigError, PluginError
from rlft.core.metrics import log
from rlft.core.rundir import AtomicDir, RunDir, write_json
from rlft.core.runtime import peak_rss_mb, resolve_device, seed_everything, set_threads
from rlft.pipeline.artifacts import Artifacts
from rlft.pipeline.config import PipelineConfig, dump_pipeline, pipeline_yaml
from rlft.pipeline.context import StageContext
from rlft.pipeline.registry import resolve_stage
from rlft.pipeline.results import StageResult


def run_pipeline(
    cfg: PipelineConfig,
    run_dir: str | Path | RunDir,
    *,
    resume: bool = False,
    progress: bool = False,
    on_stage_end: Callable[[str, StageResult], None] | None = None,
    on_eval: Callable[[str, int, float, bool], None] | None = None,
) -> dict[str, StageResult]:
    """Run ``cfg.stages`` into ``run_dir``; returns ``{stage name: result}``. ``final/`` gets the last agent/model.

    ``on_eval(stage, step, value, higher_is_better)`` receives what stages report from their periodic evaluations
    (:meth:`StageContext.report`); ``rlft tune`` prunes trials with it.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir.create(
        run_dir, resume=resume, config=None if resume else pipeline_yaml(cfg))
    if not resume:
        dump_pipeline(cfg, run.config_path)
    elif not run.config_path.is_file():
        raise ConfigError(f"Cannot resume '{run.path}': its config.yaml is missing.")
    device = resolve_device(cfg.device)
    # The config is the caller's own -- unless it was read from a file that names code (`rlft train --resume` reads the
    # run's saved config.yaml): then its code specs need --trust-code, the env's too.
    with plugins.user_given(*([cfg.env.id] if plugins.code_source() is None else [])):
        return _run_stages(cfg, run, device, resume, progress, on_stage_end, on_eval)


def _run_stages(cfg: PipelineConfig, run: RunDir, device: str, resume: bool, progress: bool,
                on_stage_end: Callable[[str, StageResult], None] | None,
                on_eval: Callable[[str, int, float, bool], None] | None = None) -> dict[str, StageResult]:
    artifacts = Artifacts()
    results: dict[str, StageResult] = {}
    for index, name in enumerate(cfg.stages):
        done = run.stage_done(name)
        if done is not None:
            log.info("%s: already finished, skipping (resume)", name)
            results[name] = StageResult.from_json(done)
            artifacts.add(name, results[name].outputs)
            continue
        stage = resolve_stage(cfg.kinds[name])
        seed = cfg.seed + index
        seed_everything(seed)
        set_threads(cfg.num_threads)
        ctx: StageContext[object] = StageContext(
            name=name, kind=cfg.kinds[name], config=cfg.sections[name], run=run, seed=seed, device=device,
            env=cfg.env, model=cfg.model, artifacts=artifacts, resume=resume, progress=progress,
            keep_checkpoints=cfg.keep_checkpoints, on_eval=on_eval)
        log.info("%s: starting", name)
        start = time.time()
        result = stage.run_function()(ctx)
        if not isinstance(result, StageResult):
            raise PluginError(f"The stage '{name}' (kind '{ctx.kind}') returned a {type(result).__name__}; a stage's "
                              "run(ctx) must return an rlft.StageResult.")
        result.seconds = round(time.time() - start, 2)
        # Every stage's cost for `rlft compare`: the process's peak memory so far, unless the stage measured its own.
        result.metrics.setdefault("peak_memory_mb", round(peak_rss_mb(), 1))
        result.kind, result.family = ctx.kind, stage.family
        run.mark_done(name, result.to_json())
        artifacts.add(name, result.outputs)
        results[name] = result
        if on_stage_end is not None:
            on_stage_end(name, result)
    _write_final(run, artifacts.final)
    write_json(run.path / "results.json", {name: r.to_json() for name, r in results.items()})
    return results


def _write_final(run: RunDir, source: str | None) -> None:
    """Copy the last agent (or model) into ``DIR/final`` atomically."""
    if not source or not Path(source).is_dir():
        return
    if run.final_dir.exists() and Path(source).resolve() == run.final_dir.resolve():
        return
    with AtomicDir(run.final_dir) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
