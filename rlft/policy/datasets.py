"""Recorded games in the Minari format: writing, finding, reading and checking them.

A dataset folder ``DIR`` holds ``DIR/data/metadata.json`` and the episodes (Arrow format), exactly what Minari
writes under ``~/.minari/datasets/<id>/``; so rlft reads datasets that other tools wrote (a folder, or a dataset id
already in the local Minari root -- never downloaded), and Minari reads rlft's.

Imitation sees a dataset as :class:`Transitions`: one typed, validated batch of (observation, action, mask,
episode index, reward, terminated, truncated), built once when the dataset is read.

Example::

    write_dataset("runs/demo/data/expert", episodes, env.observation_space, env.action_space, {"rlft_env": "cartpole"})
    data = load_transitions("runs/demo/data/expert")
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
from minari.dataset.minari_dataset import MinariDataset
from minari.dataset.minari_storage import MinariStorage
from minari.storage.datasets_root_dir import get_dataset_path

from rlft.core.errors import DatasetError


def write_dataset(
    out: str | Path,
    episodes: list[Any],
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    metadata: dict[str, Any],
    episode_metadata: list[dict[str, Any]] | None = None,
    env_spec: Any = None,
) -> Path:
    """Write Minari ``EpisodeBuffer`` objects to ``out`` (atomically: a killed write leaves no half dataset)."""

    out = Path(out).absolute()  # Minari mis-joins relative paths when sizing the dataset
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"The dataset folder '{out}' already exists and is not empty; choose another --out.")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "data").mkdir(parents=True)
    try:
        storage = MinariStorage.new(tmp / "data", observation_space=observation_space, action_space=action_space,
                                    env_spec=env_spec, data_format="arrow")
        storage.update_metadata({
            "dataset_id": metadata.pop("dataset_id", out.name),
            "minari_version": minari.__version__,
            "algorithm_name": metadata.pop("algorithm_name", "rlft record"),
            "author": {"rlft"},
            **metadata,
        })
        # Minari re-measures the whole folder after every episode (quadratic in the number of episodes, minutes for
        # thousands of short game episodes); measure once at the end instead.
        get_size = storage.get_size
        storage.get_size = lambda: 0.0  # type: ignore[method-assign]
        storage.update_episodes(episodes)
        if episode_metadata:
            storage.update_episode_metadata(episode_metadata, episode_indices=list(range(len(episode_metadata))))
        storage.get_size = get_size  # type: ignore[method-assign]
        storage.update_metadata({"dataset_size": get_size()})
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return out


def find_dataset(spec: str | Path) -> Path:
    """The Minari ``data`` folder for a dataset folder, its ``data`` folder, or a dataset id in the local root."""
    p = Path(spec)
    for candidate in (p / "data", p):
        if (candidate / "metadata.json").is_file():
            return candidate

    local = get_dataset_path(str(spec)) / "data"
    if not p.is_absolute() and (local / "metadata.json").is_file():
        return local
    if p.exists():
        raise DatasetError(
            f"'{p}' is not a Minari dataset: no metadata.json in it or in '{p / 'data'}'. "
            "Record one with `rlft record --env ENV --agent AGENT --out DIR`."
        )
    raise DatasetError(
        f"The dataset '{spec}' does not exist (no such folder, and no local Minari dataset with that id). "
        "Record one with `rlft record --env ENV --agent AGENT --out DIR`, or fix the path."
    )


def load_dataset(spec: str | Path) -> Any:
    """Open a Minari dataset (see :func:`find_dataset`); a corrupt one raises DatasetError."""

    path = find_dataset(spec)
    try:
        return MinariDataset(path)
    except Exception as e:
        raise DatasetError(f"The dataset at '{path}' cannot be read ({type(e).__name__}: {e}). It may be corrupt; "
                           "record it again.") from e


@dataclass
class Transitions:
    """Every step of a dataset as flat arrays (the typed boundary between recorded games and imitation)."""

    observations: np.ndarray
    """(N, *obs_shape) observations the agent saw (for dict observations, the ``observation`` entry)."""
    actions: np.ndarray
    """(N, *action_shape) actions taken."""
    action_masks: np.ndarray | None
    """(N, n_actions) legal-action masks, when the observations carry an ``action_mask``."""
    rewards: np.ndarray
    """(N,) rewards received after each action."""
    episode: np.ndarray
    """(N,) index of the episode each step belongs to."""
    terminated: np.ndarray
    """(N,) True on the last step of an episode that ended in a terminal state."""
    truncated: np.ndarray
    """(N,) True on the last step of an episode cut short (time limit)."""
    last_observations: np.ndarray
    """(n_episodes, *obs_shape) the observation after each episode's last step (for bootstrapping)."""
    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]

    def __len__(self) -> int:
        return len(self.actions)


def _split_obs(obs: Any, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(obs, dict):
        if "observation" not in obs:
            raise DatasetError("Dict observations must have an 'observation' entry (and optionally 'action_mask').")
        mask = obs.get("action_mask")
        return np.asarray(obs["observation"][:n + 1]), None if mask is None else np.asarray(mask[:n + 1])
    return np.asarray(obs), None


def load_transitions(spec: str | Path) -> Transitions:
    """Read every episode of a dataset into :class:`Transitions`, checking shapes and lengths."""
    ds = load_dataset(spec)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "mask", "rew", "ep", "term", "trunc", "last")}
    for i, ep in enumerate(ds.iterate_episodes()):
        n = len(ep.actions)
        if n == 0:
            continue
        obs, mask = _split_obs(ep.observations, n)
        if len(obs) != n + 1:
            raise DatasetError(f"Episode {ep.id} of '{spec}' has {len(obs)} observations for {n} actions "
                               "(expected one more observation than actions).")
        term = np.zeros(n, dtype=bool)
        trunc = np.zeros(n, dtype=bool)
        term[-1] = bool(ep.terminations[-1])
        trunc[-1] = bool(ep.truncations[-1]) and not term[-1]
        parts["obs"].append(obs[:n])
        parts["last"].append(obs[n])
        parts["act"].append(np.asarray(ep.actions))
        if mask is not None:
            parts["mask"].append(mask[:n])
        parts["rew"].append(np.asarray(ep.rewards, dtype=np.float32))
        parts["ep"].append(np.full(n, i))
        parts["term"].append(term)
        parts["trunc"].append(trunc)
    if not parts["act"]:
        raise DatasetError(f"The dataset '{spec}' holds no steps.")
    obs_space = ds.observation_space
    if isinstance(obs_space, gym.spaces.Dict) and "observation" in obs_space.spaces:
        obs_space = obs_space["observation"]
    return Transitions(
        observations=np.concatenate(parts["obs"]),
        actions=np.concatenate(parts["act"]),
        action_masks=np.concatenate(parts["mask"]).astype(bool) if parts["mask"] else None,
        rewards=np.concatenate(parts["rew"]),
        episode=np.concatenate(parts["ep"]),
        terminated=np.concatenate(parts["term"]),
        truncated=np.concatenate(parts["trunc"]),
        last_observations=np.stack(parts["last"]),
        observation_space=obs_space,
        action_space=ds.action_space,
    )


def check_spaces(data: Transitions, observation_space: gym.Space[Any], action_space: gym.Space[Any],
                 dataset: str, env: str) -> None:
    """A dataset must match the env it is used with: same observation shape/dtype kind and action space."""
    def describe(space: gym.Space[Any]) -> str:
        return f"{type(space).__name__}{getattr(space, 'shape', '')}" + (
            f" n={space.n}" if isinstance(space, gym.spaces.Discrete) else "")

    problems = []
    if getattr(data.observation_space, "shape", None) != getattr(observation_space, "shape", None):
        problems.append(f"observations are {describe(data.observation_space)} in the dataset but "
                        f"{describe(observation_space)} in the env")
    if type(data.action_space) is not type(action_space) or (
        isinstance(action_space, gym.spaces.Discrete) and data.action_space.n != action_space.n  # type: ignore[attr-defined]
    ) or getattr(data.action_space, "shape", None) != getattr(action_space, "shape", None):
        problems.append(f"actions are {describe(data.action_space)} in the dataset but {describe(action_space)} "
                        "in the env")
    if problems:
        raise DatasetError(
            f"The dataset '{dataset}' does not match the env '{env}': " + "; ".join(problems) +
            ". Record the dataset on this env (`rlft record --env ...`), or set the env the dataset was recorded on."
        )
