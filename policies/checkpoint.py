"""rlft policy checkpoints: ``model.safetensors`` + ``agent.json`` (architecture, spaces, step, config).

A checkpoint folder rebuilds its policy with no code from the user and no pickle: the network comes from the saved
:class:`~rlft.policies.networks.PolicySpec`, the spaces from Minari's JSON space serialisation.

Example::

    save_policy(folder, policy, spec, masked=False, env="CartPole-v1", step=20000)
    policy, meta = load_policy(folder)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from minari.serialization import deserialize_space, serialize_space
from safetensors.torch import save_file
from stable_baselines3.common.policies import ActorCriticPolicy

from rlft.core.config import from_dict
from rlft.core.errors import CheckpointError, ConfigError
from rlft.core.rundir import load_safetensors, read_json, write_json
from rlft.core.tuning import inject_lora, lora_info
from rlft.policies.networks import PolicySpec, build_policy

AGENT_FILE = "agent.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "rlft-agent"
FORMAT_VERSION = 1


def save_policy(
    folder: str | Path,
    policy: ActorCriticPolicy,
    spec: PolicySpec,
    *,
    masked: bool,
    env: str | None = None,
    step: int = 0,
    config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write the policy's weights (safetensors) and metadata (JSON) into ``folder`` (created if needed).

    LoRA layers, if present, are saved unmerged together with their config so training can resume; use
    :func:`rlft.core.tuning.merge_lora` first to export plain weights.
    """

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # clone(): SB3 shares one features extractor under three names (features_/pi_features_/vf_features_extractor)
    # and safetensors refuses tensors that share memory; a copy each keeps every key loadable with load_state_dict.
    state = {k: v.detach().cpu().clone().contiguous() for k, v in policy.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "policy",
        "policy": dataclasses.asdict(spec),
        "masked": masked,
        "observation_space": serialize_space(policy.observation_space),
        "action_space": serialize_space(policy.action_space),
        "env": env,
        "step": step,
        "lora": lora_info(policy),
        "config": config or {},
        **(extra or {}),
    }
    write_json(folder / AGENT_FILE, meta)


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The ``agent.json`` of a checkpoint folder, checked for format."""
    folder = Path(folder)
    meta = read_json(folder / AGENT_FILE, "agent metadata")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"'{folder / AGENT_FILE}' is not an rlft agent file (format field missing or wrong).")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"'{folder}' was written by a newer rlft (format {meta['format_version']}); upgrade rlft to load it."
        )
    return meta


def load_policy(folder: str | Path, device: str | torch.device = "cpu") -> tuple[ActorCriticPolicy, dict[str, Any]]:
    """Rebuild a policy from a checkpoint folder. Corrupt or mismatched files raise CheckpointError."""

    folder = Path(folder)
    meta = read_meta(folder)
    try:
        spec = from_dict(PolicySpec, meta["policy"], source=str(folder / AGENT_FILE))
        obs_space = deserialize_space(meta["observation_space"])
        act_space = deserialize_space(meta["action_space"])
    except (KeyError, ValueError, TypeError, ConfigError) as e:
        raise CheckpointError(f"The agent metadata '{folder / AGENT_FILE}' is incomplete or corrupt: {e}") from e
    policy = build_policy(spec, obs_space, act_space, masked=bool(meta.get("masked")))
    if meta.get("lora"):
        inject_lora(policy, **meta["lora"])
    state = load_safetensors(folder / WEIGHTS_FILE)
    try:
        policy.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(
            f"The weights in '{folder / WEIGHTS_FILE}' do not match the architecture in '{AGENT_FILE}': {e}"
        ) from e
    return policy.to(device), meta
