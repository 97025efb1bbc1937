"""The agent loaders of the policy kind, registered in :data:`rlft.core.agent.AGENT_LOADERS`: an rlft policy
checkpoint (``agent.json`` of kind ``policy``) and an SB3 ``.zip`` (weights only unless ``trust_pickle``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlft.core.agent import Agent
from rlft.policies.checkpoint import load_policy
from rlft.policies.sb3_zip import load_sb3_zip
from rlft.policy.agents import PolicyAgent
from rlft.policy.hooks import env_hooks


def load_policy_agent(folder: Path, meta: dict[str, Any], device: str) -> Agent:
    policy, meta = load_policy(folder, device=device)
    return PolicyAgent(policy, meta)


def load_sb3_agent(path: Path, meta: dict[str, Any], device: str, *, trust_pickle: bool = False,
                   env: str | None = None) -> Agent:
    """The ``sb3_zip`` loader: an SB3 ``.zip`` read weights-only (the full pickle load needs ``trust_pickle``)."""

    def spaces() -> tuple[Any, Any]:
        obs_space, act_space, _ = env_hooks(str(env)).learner_spaces()
        return obs_space, act_space

    policy, zip_meta = load_sb3_zip(path, trust_pickle=trust_pickle, env=env, spaces=spaces if env else None,
                                    device=device)
    return PolicyAgent(policy, zip_meta)
