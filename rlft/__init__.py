"""rlft: reinforcement-learning-centric fine-tuning.

One reward-driven pipeline (record -> imitate -> fine-tune -> evaluate) for game agents, with LLM and supervised
fine-tuning as stages of the same pipeline. The public API is small:

* :func:`load_agent` -- an agent from a run folder, a checkpoint or an SB3 .zip;
* the config classes (:class:`rlft.pipeline.runner.PipelineConfig` and its sections);
* the ``rlft`` command line.

Example::

    import rlft
    agent = rlft.load_agent("runs/cartpole")
    action = agent.act(observation, action_mask=None, deterministic=True)
"""

from rlft.core.agent import Agent, load_agent

__version__ = "0.1.0"
__all__ = ["Agent", "__version__", "load_agent"]
