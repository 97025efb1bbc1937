"""rlft: reinforcement-learning-centric fine-tuning.

One reward-driven pipeline (record -> imitate -> fine-tune -> evaluate) for game agents, with LLM and encoder
fine-tuning as stages of the same pipeline. The public API is small:

* :func:`load_agent` -- an agent from a run folder, a checkpoint or an SB3 .zip;
* :func:`load_pipeline` / :func:`run_pipeline` -- a pipeline config and its run;
* :class:`Stage`, :class:`StageContext`, :class:`StageResult`, :class:`Headline`, :class:`Outputs` -- to write a stage;
* the ``rlft`` command line.

Example::

    import rlft
    agent = rlft.load_agent("runs/cartpole")
    action = agent.act(observation, action_mask=None, deterministic=True)
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "Agent": "rlft.core.agent", "load_agent": "rlft.core.agent", "load_pipeline": "rlft.pipeline.config",
    "run_pipeline": "rlft.pipeline.runner", "Stage": "rlft.pipeline.registry", "StageContext": "rlft.pipeline.context",
    "StageResult": "rlft.pipeline.results", "Headline": "rlft.pipeline.results", "Outputs": "rlft.pipeline.artifacts",
}
__all__ = ["Agent", "Headline", "Outputs", "Stage", "StageContext", "StageResult", "__version__", "load_agent",
           "load_pipeline", "run_pipeline"]


def __getattr__(name: str) -> Any:
    """The public API, imported on first use (so ``rlft --help`` does not pay for torch)."""
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'rlft' has no attribute {name!r}")


if TYPE_CHECKING:
    from rlft.core.agent import Agent, load_agent
    from rlft.pipeline.artifacts import Outputs
    from rlft.pipeline.config import load_pipeline
    from rlft.pipeline.context import StageContext
    from rlft.pipeline.registry import Stage
    from rlft.pipeline.results import Headline, StageResult
    from rlft.pipeline.runner import run_pipeline
