"""The agent protocol, action checks, and ``load_agent``: the one way to get an agent from a folder or file.

``rlft.load_agent(path)`` accepts a run folder (loads ``DIR/final``), a checkpoint or stage folder (``agent.json``),
or a Stable-Baselines3 ``.zip`` (weights only; the full pickle-based load needs ``trust_pickle=True``). The loader
is chosen by the ``kind`` field of ``agent.json`` from a registry of loaders (built-ins ``policy`` and ``llm``, the
entry-point group ``rlft.agent_loaders``), so the core names no kind of model.

Example::

    agent = rlft.load_agent("runs/cartpole")
    action = agent.act(observation, action_mask=None, deterministic=True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rlft.core import plugins
from rlft.core.errors import CheckpointError, IllegalActionError
from rlft.core.rundir import read_json
from rlft.core.runtime import resolve_device


@runtime_checkable
class Agent(Protocol):
    """The one interface every policy, expert and opponent implements."""

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> Any:
        """Return an action for ``observation``; with a mask, only an action whose mask entry is 1."""
        ...


def check_mask(action_mask: Any) -> np.ndarray | None:
    """Validate an action mask: a state with no legal action is an error, not a silent move."""
    if action_mask is None:
        return None
    mask = np.asarray(action_mask).astype(bool)
    if not mask.any():
        raise IllegalActionError(
            "The action mask has no legal action, so no move can be chosen. The env should have ended the episode "
            "(terminated=True) in this state; check the env's termination logic."
        )
    return mask


AGENT_LOADERS: dict[str, str] = {
    "policy": "rlft.policy.loaders:load_policy_agent",
    "sb3_zip": "rlft.policy.loaders:load_sb3_agent",
    "llm": "rlft.bridges.game_text.agent:load_llm_agent",
}
"""Agent loaders by the ``kind`` field of ``agent.json`` (``sb3_zip`` for ``.zip`` files); packages add kinds through
the entry-point group ``rlft.agent_loaders``. A loader is ``load(folder, meta, device, **options) -> Agent``."""


SEARCH_SPECS: dict[str, str] = {"mcts": "rlft.policy.search:load_mcts_agent"}
"""Agents that search on top of another agent, by the name before the colon of their spec (``mcts:RUN,sims=200``)."""


def agent_loader(kind: str) -> Any:
    """The loader of an agent kind (built-in, entry point, or ``pkg.module:fn``)."""
    return plugins.resolve(kind, kind="agent loader", builtins=AGENT_LOADERS, group="rlft.agent_loaders")


def agent_folder(path: str | Path) -> Path:
    """The folder holding ``agent.json`` for a run folder (its ``final/``) or a checkpoint folder."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"No agent at '{p}': the path does not exist.")
    if (p / "agent.json").is_file():
        return p
    if (p / "run.json").is_file():
        if (p / "final" / "agent.json").is_file():
            return p / "final"
        raise CheckpointError(
            f"The run '{p}' has no final agent yet (it did not finish). Resume it with "
            f"`rlft train --run-dir {p} --resume`, or load one of its checkpoints in '{p / 'checkpoints'}'."
        )
    raise CheckpointError(
        f"'{p}' is neither a run folder (run.json) nor an agent checkpoint (agent.json) nor an SB3 .zip file."
    )


def load_agent(path: str | Path, *, device: str = "auto", trust_pickle: bool = False, trust_code: bool = False,
               env: str | None = None) -> Agent:
    """Load an agent from a run folder, a checkpoint folder or an SB3 ``.zip`` -- or a search agent over one,
    ``mcts:PATH[,sims=N,c_puct=C,temp=T]`` (see :mod:`rlft.policy.search`).

    ``trust_pickle`` allows SB3's full load, which unpickles (and so can execute) code from the file; without it a
    ``.zip`` is read weights-only. ``env`` (a spec) supplies spaces when an SB3 file's metadata lacks them.
    ``trust_code`` allows ``module:Name`` specs that ``agent.json`` names (an LLM agent's env) to be imported.
    """
    device = resolve_device(device)
    p = Path(path)
    name = str(path).partition(":")[0]
    if name in SEARCH_SPECS and not p.exists():  # `mcts:RUN,sims=200`: a search agent over the agent at RUN
        load = plugins.import_object(SEARCH_SPECS[name], "agent loader")
        return load(str(path), device=device, trust_pickle=trust_pickle, env=env)  # type: ignore[no-any-return]
    if p.suffix == ".zip" and p.is_file():
        return agent_loader("sb3_zip")(p, {}, device, trust_pickle=trust_pickle, env=env)  # type: ignore[no-any-return]
    folder = agent_folder(p)
    meta = read_json(folder / "agent.json", "agent metadata")
    kind = meta.get("kind", "policy") if isinstance(meta, dict) else None
    if not isinstance(kind, str) or kind not in AGENT_LOADERS and ":" in kind:
        # a `module:fn` kind read from a file would run code the file names: only built-ins and entry points
        raise CheckpointError(f"'{folder}' holds an agent of unknown kind {kind!r}; known: {sorted(AGENT_LOADERS)}.")
    with plugins.code_named_by(f"the agent file '{folder / 'agent.json'}'"), plugins.trusting(
            trust_code or plugins.code_trusted()):
        return agent_loader(kind)(folder, meta, device)  # type: ignore[no-any-return]


def checked_action(agent: Any, obs: Any, mask: Any, deterministic: bool, action_space: Any = None) -> Any:
    """Ask ``agent`` for an action and check it is legal."""
    action = agent.act(obs, action_mask=mask, deterministic=deterministic)
    if isinstance(action, np.ndarray) and action.shape == ():
        action = action.item()
    if mask is not None:
        m = np.asarray(mask).astype(bool)
        if not (isinstance(action, int | np.integer) and 0 <= int(action) < len(m) and m[int(action)]):
            raise IllegalActionError(
                f"Agent {type(agent).__name__} chose action {action!r}, which the action mask forbids "
                f"(legal: {np.flatnonzero(m).tolist()}). Agents must respect action_mask."
            )
    elif action_space is not None and not action_space.contains(
        np.asarray(action, dtype=action_space.dtype) if getattr(action_space, "shape", ()) else action
    ):
        raise IllegalActionError(
            f"Agent {type(agent).__name__} chose action {action!r}, which is outside the action space {action_space}."
        )
    return action
