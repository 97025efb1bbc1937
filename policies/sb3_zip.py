"""Stable-Baselines3 ``.zip`` files: the policy weights without unpickling anything.

An SB3 ``.zip`` holds ``data`` (JSON, in which spaces, schedules and classes are *cloudpickled* strings),
``policy.pth`` (a plain state dict) and optimizer state. ``PPO.load`` unpickles ``data``, so loading a file from
someone else can execute their code (SB3 issues #1831, #2281). rlft's default path reads only:

* ``policy.pth`` with ``torch.load(weights_only=True)`` (tensors only, no code);
* the *plain* JSON fields of ``data`` (shapes, dtypes, ``n``, ``net_arch``) -- the pickled blobs are never decoded
  as pickles (the activation's class name is looked up as bytes);

and rebuilds the network from the state dict's shapes. The full SB3 load is available behind ``trust_pickle=True``
(``--trust-pickle`` on the CLI), with a warning.

Example::

    policy, meta = load_sb3_zip("ppo_cartpole.zip")                    # safe
    policy, meta = load_sb3_zip("ppo_cartpole.zip", trust_pickle=True)  # runs the file's pickles
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO

from rlft.core.errors import CheckpointError
from rlft.core.metrics import log
from rlft.policies.networks import ACTIVATIONS, PolicySpec, build_policy


def _parse_array(text: Any, shape: tuple[int, ...], default: float) -> np.ndarray:
    try:
        values = np.array([float(v) for v in str(text).strip("[]").replace("\n", " ").split()], dtype=np.float64)
        if values.size == int(np.prod(shape)):
            return values.reshape(shape)
    except ValueError:
        pass
    return np.full(shape, default)


def _space_from_json(entry: dict[str, Any]) -> gym.Space[Any] | None:
    """Rebuild Box / Discrete from the plain (non-pickled) attributes SB3 writes beside the pickle."""
    kind = str(entry.get(":type:", ""))
    try:
        if "Discrete" in kind and "MultiDiscrete" not in kind:
            return gym.spaces.Discrete(int(entry["n"]), start=int(entry.get("start", 0)))
        if "Box" in kind:
            shape = tuple(int(s) for s in entry["_shape"])
            dtype = np.dtype(entry.get("dtype", "float32"))
            low = _parse_array(entry.get("low"), shape, -np.inf)
            high = _parse_array(entry.get("high"), shape, np.inf)
            return gym.spaces.Box(low=low.astype(dtype), high=high.astype(dtype), shape=shape, dtype=dtype)
    except (KeyError, TypeError, ValueError):
        return None
    return None


def _activation_name(policy_kwargs: Any) -> str:
    """The activation class name, found as bytes inside the pickled blob (never unpickled)."""
    entry = policy_kwargs.get("activation_fn") if isinstance(policy_kwargs, dict) else None
    blob = b""
    if isinstance(entry, dict) and isinstance(entry.get(":serialized:"), str):
        blob = base64.b64decode(entry[":serialized:"])
    elif isinstance(policy_kwargs, dict) and isinstance(policy_kwargs.get(":serialized:"), str):
        blob = base64.b64decode(policy_kwargs[":serialized:"])
    for name, key in ((b"ReLU", "relu"), (b"GELU", "gelu"), (b"ELU", "elu"), (b"Tanh", "tanh")):
        if name in blob:
            return key
    return "tanh"  # SB3's default for PPO/A2C MlpPolicy


def _spec_from_state(state: dict[str, torch.Tensor], activation: str) -> PolicySpec:
    def layers(prefix: str) -> list[int]:
        idx = sorted(int(m.group(1)) for k in state if (m := re.match(rf"{prefix}\.(\d+)\.weight$", k)))
        return [int(state[f"{prefix}.{i}.weight"].shape[0]) for i in idx]

    pi, vf = layers("mlp_extractor.policy_net"), layers("mlp_extractor.value_net")
    if pi != vf:
        raise CheckpointError(
            f"This SB3 policy has different actor {pi} and critic {vf} layers, which the weights-only loader does not "
            "rebuild. Load it with --trust-pickle if you trust the file."
        )
    conv = layers("features_extractor.cnn")
    extra = [k for k in state if k.startswith(("features_extractor.", "pi_features_extractor.",
                                               "vf_features_extractor.")) and ".cnn." not in k]
    if extra:
        raise CheckpointError(
            f"This SB3 policy uses a custom features extractor ({extra[0]}, ...) that the weights-only loader cannot "
            "rebuild. Load it with --trust-pickle if you trust the file."
        )
    return PolicySpec(arch="cnn" if conv else "mlp", net_arch=pi, activation=activation,  # type: ignore[arg-type]
                      cnn_channels=conv or [64, 64])


def read_sb3_zip(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(plain JSON of ``data``, policy state dict) from an SB3 zip, loading tensors only."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            data = json.loads(zf.read("data")) if "data" in zf.namelist() else {}
            raw = zf.read("policy.pth")
    except (zipfile.BadZipFile, KeyError, OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"'{path}' is not a readable Stable-Baselines3 .zip ({e}).") from e
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"The policy weights in '{path}' cannot be read safely ({type(e).__name__}: {e}). If the file is from a "
            "source you trust, load it with --trust-pickle."
        ) from e
    return data, state


def load_sb3_zip(path: str | Path, *, trust_pickle: bool = False, env: str | None = None,
                 spaces: Callable[[], tuple[gym.Space[Any], gym.Space[Any]]] | None = None,
                 device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """A policy from an SB3 zip: weights-only by default; the full (pickle) load only with ``trust_pickle``.

    ``spaces()`` gives (observation space, action space) of the env ``env`` when the file stores them only as
    pickles.
    """
    if trust_pickle:
        return _load_trusted(path, device)
    data, state = read_sb3_zip(path)
    obs_space = _space_from_json(data.get("observation_space", {}))
    act_space = _space_from_json(data.get("action_space", {}))
    if spaces is not None and (obs_space is None or act_space is None):
        env_obs, env_act = spaces()
        obs_space, act_space = obs_space or env_obs, act_space or env_act
    if obs_space is None or act_space is None:
        raise CheckpointError(
            f"The spaces in '{path}' are only stored as pickles. Pass --env SPEC so rlft can take them from the env, "
            "or load the file with --trust-pickle if you trust it."
        )
    masked = "maskable" in json.dumps(data.get("policy_class", {})).lower()
    spec = _spec_from_state(state, _activation_name(data.get("policy_kwargs", {})))
    policy = build_policy(spec, obs_space, act_space, masked=masked)
    try:
        policy.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"The weights in '{path}' do not fit the rebuilt network: {e}") from e
    meta = {"policy": spec.__dict__, "masked": masked, "env": env, "source": str(path), "loader": "sb3-weights-only"}
    return policy.to(device), meta


def _load_trusted(path: str | Path, device: str) -> tuple[Any, dict[str, Any]]:
    log.warning("Loading '%s' with --trust-pickle: this unpickles the file and can execute code from it.", path)
    data, _ = read_sb3_zip(path)
    cls = MaskablePPO if "maskable" in json.dumps(data.get("policy_class", {})).lower() else PPO
    try:
        model = cls.load(str(path), device=device)
    except Exception as e:
        raise CheckpointError(f"Stable-Baselines3 could not load '{path}': {type(e).__name__}: {e}") from e
    spec = PolicySpec()
    net_arch = model.policy.net_arch
    if isinstance(net_arch, dict):
        net_arch = net_arch.get("pi", spec.net_arch)
    spec.net_arch = list(net_arch)
    names = {cls_: name for name, cls_ in ACTIVATIONS.items()}
    spec.activation = names.get(model.policy.activation_fn, "tanh")  # type: ignore[assignment]
    return model.policy, {"policy": spec.__dict__, "masked": cls is MaskablePPO, "source": str(path),
                          "loader": "sb3-trusted"}
