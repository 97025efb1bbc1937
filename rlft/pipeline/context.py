"""What a stage gets: :class:`StageContext` -- its own typed config section, the shared block, the run folder and
the typed artifacts of earlier stages.

A stage reads only ``ctx.config`` (its section), ``ctx.env`` / ``ctx.model`` / ``ctx.seed`` / ``ctx.device`` (the
shared block) and ``ctx.artifacts``; it never reads another stage's section. Everything it writes is named after
``ctx.name`` (``tb/<name>``, ``checkpoints/<name>/<step>``, ``stages/<name>``, ``data/<name>``), so a kind can run
twice in one pipeline under two names.

Example::

    def run(ctx: StageContext[MyConfig]) -> StageResult:
        with ctx.metrics() as m:
            m.log({"train/loss": 0.1}, step=1)
        with ctx.checkpointer().write(step=1) as folder:
            ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from rlft.core.checkpoint import Checkpointer
from rlft.core.metrics import MetricLogger
from rlft.core.rundir import RunDir
from rlft.pipeline.artifacts import Artifacts
from rlft.pipeline.config import EnvConfig, ModelConfig

C = TypeVar("C")


@dataclass
class StageContext(Generic[C]):
    """One stage's view of the pipeline."""

    name: str
    """The stage's name in this pipeline (e.g. `finetune_b`)."""
    kind: str
    """The registered stage kind (e.g. `finetune`)."""
    config: C
    """The stage's own config section."""
    run: RunDir
    seed: int
    device: str
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    artifacts: Artifacts = field(default_factory=Artifacts)
    resume: bool = False
    progress: bool = False
    keep_checkpoints: int = 2
    on_eval: Callable[[str, int, float, bool], None] | None = None
    """Receives ``(stage name, step, value, higher_is_better)`` from :meth:`report` (hyper-parameter search sets it:
    its pruner may stop the run by raising from here)."""

    def report(self, step: int, value: float, higher_is_better: bool = True) -> None:
        """Report the headline value of a periodic evaluation at ``step`` (a search may stop the run here)."""
        if self.on_eval is not None:
            self.on_eval(self.name, step, value, higher_is_better)

    def metrics(self, sub: str | None = None) -> MetricLogger:
        """The stage's TensorBoard logger (``DIR/tb/<name>[/<sub>]``)."""
        folder = self.run.tb_dir(self.name)
        return MetricLogger(folder / sub if sub else folder)

    def checkpointer(self, sub: str | None = None) -> Checkpointer:
        """The stage's checkpoints (``DIR/checkpoints/<name>[/<sub>]/<step>/``), keeping the newest ``keep``."""
        root = self.run.checkpoints_dir / self.name
        return Checkpointer(root / sub if sub else root, keep=self.keep_checkpoints)

    def output_dir(self) -> Path:
        """Where the stage saves the model it ends with (``DIR/stages/<name>``)."""
        return self.run.stage_dir(self.name)

    def data_dir(self) -> Path:
        """Where the stage writes datasets (``DIR/data/<name>``)."""
        return self.run.data_dir(self.name)
