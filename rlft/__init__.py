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

from rlft.core.agent import Agent, load_agent
from rlft.pipeline.artifacts import Outputs
from rlft.pipeline.config import load_pipeline
from rlft.pipeline.context import StageContext
from rlft.pipeline.registry import Stage
from rlft.pipeline.results import Headline, StageResult
from rlft.pipeline.runner import run_pipeline

__version__ = "0.1.0"
__all__ = ["Agent", "Headline", "Outputs", "Stage", "StageContext", "StageResult", "__version__", "load_agent",
           "load_pipeline", "run_pipeline"]
