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
from rlft.policy.dataset_checks import check_episode_files, damaged, read_metadata


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
    try:
        for candidate in (p / "data", p):
            if (candidate / "metadata.json").is_file():
                return candidate

        local = get_dataset_path(str(spec)) / "data"
        if not p.is_absolute() and (local / "metadata.json").is_file():
            return local
        exists = p.exists()
    except (OSError, ValueError) as e:  # a name too long for the file system, a NUL byte, no permission
        raise DatasetError(f"The dataset '{spec}' cannot be opened ({type(e).__name__}: {e}). Pass the path of a "
                           "dataset folder, e.g. one `rlft record --out DIR` wrote.") from e
    if exists:
        raise DatasetError(
            f"'{p}' is not a Minari dataset: no metadata.json in it or in '{p / 'data'}'. "
            "Record one with `rlft record --env ENV --agent AGENT --out DIR`."
        )
    raise DatasetError(
        f"The dataset '{spec}' does not exist (no such folder, and no local Minari dataset with that id). "
        "Record one with `rlft record --env ENV --agent AGENT --out DIR`, or fix the path."
    )


def _open(spec: str | Path) -> tuple[Path, dict[str, Any], Any]:
    """(data folder, metadata, MinariDataset) of a dataset whose metadata and episode files are all present."""
    path = find_dataset(spec)
    meta = read_metadata(path)
    check_episode_files(path, meta)
    try:
        return path, meta, MinariDataset(path)
    except Exception as e:
        raise damaged(path, f"Minari cannot open it: {type(e).__name__}: {e}") from e


def load_dataset(spec: str | Path) -> Any:
    """Open a Minari dataset (see :func:`find_dataset`); a damaged one (unreadable metadata, a missing episode)
    raises DatasetError naming the dataset and the fix."""
    return _open(spec)[2]


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
    action_targets: np.ndarray | None = None
    """(N, n_actions) a search agent's visit distributions (``infos["search_policy"]``) if every episode has them."""
    value_targets: np.ndarray | None = None
    """(N,) a search agent's root values for the player to move (``infos["search_value"]``), NaN in episodes that
    have none; None when no episode has them."""

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
    """Read every episode of a dataset into :class:`Transitions`, checking shapes, lengths and values.

    Damaged files (a truncated or overwritten episode, a missing episode, counts that disagree with metadata.json)
    and non-finite values (NaN / inf observations, actions or rewards) raise DatasetError naming the dataset.
    """
    path, meta, ds = _open(spec)
    try:
        data, episodes, steps = _read_transitions(ds, spec)
    except DatasetError:
        raise
    except Exception as e:  # whatever the decoders raise for damaged bytes (ArrowInvalid, OSError, ValueError, ...)
        raise damaged(path, f"an episode cannot be decoded: {type(e).__name__}: {e}") from e
    if episodes != meta["total_episodes"] or steps != meta["total_steps"]:
        raise damaged(path, f"metadata.json lists {meta['total_episodes']} episodes of {meta['total_steps']} steps "
                             f"in all, but the episode files hold {episodes} episodes of {steps} steps")
    _check_values(data, path)
    return data


def _read_transitions(ds: Any, spec: str | Path) -> tuple[Transitions, int, int]:
    """The steps of every episode as :class:`Transitions`, with the number of episodes and steps read."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "mask", "rew", "ep", "term", "trunc", "last",
                                                          "target", "value")}
    episodes = steps = 0
    for i, ep in enumerate(ds.iterate_episodes()):
        n = len(ep.actions)
        episodes += 1
        steps += n
        if n == 0:
            continue
        obs, mask = _split_obs(ep.observations, n)
        if len(obs) != n + 1:
            raise DatasetError(f"Episode {ep.id} of '{spec}' has {len(obs)} observations for {n} actions "
                               "(expected one more observation than actions).")
        if len(ep.rewards) != n or len(ep.terminations) != n or len(ep.truncations) != n:
            raise DatasetError(f"Episode {ep.id} of '{spec}' has {n} actions but {len(ep.rewards)} rewards, "
                               f"{len(ep.terminations)} terminations and {len(ep.truncations)} truncations.")
        term = np.zeros(n, dtype=bool)
        trunc = np.zeros(n, dtype=bool)
        term[-1] = bool(ep.terminations[-1])
        trunc[-1] = bool(ep.truncations[-1]) and not term[-1]
        parts["obs"].append(obs[:n])
        parts["last"].append(obs[n])
        parts["act"].append(np.asarray(ep.actions))
        if mask is not None:
            parts["mask"].append(mask[:n])
        with np.errstate(over="ignore", invalid="ignore"):  # a reward too large for float32 is inf: checked later
            parts["rew"].append(np.asarray(ep.rewards).astype(np.float32))
        parts["ep"].append(np.full(n, i))
        searched = (ep.infos or {}).get("search_policy")
        if searched is not None:
            parts["target"].append(np.asarray(searched, dtype=np.float32)[:n])
        valued = (ep.infos or {}).get("search_value")
        parts["value"].append(np.full(n, np.nan, np.float32) if valued is None
                              else np.asarray(valued, dtype=np.float32).reshape(-1)[:n])
        parts["term"].append(term)
        parts["trunc"].append(trunc)
    if not parts["act"]:
        raise DatasetError(f"The dataset '{spec}' holds no steps.")
    obs_space = ds.observation_space
    if isinstance(obs_space, gym.spaces.Dict) and "observation" in obs_space.spaces:
        obs_space = obs_space["observation"]
    data = Transitions(
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
        action_targets=np.concatenate(parts["target"]) if len(parts["target"]) == len(parts["act"]) else None,
        value_targets=_value_targets(parts["value"]),
    )
    return data, episodes, steps


def _value_targets(parts: list[np.ndarray]) -> np.ndarray | None:
    """The joined per-step search values, or None when no step has one."""
    values = np.concatenate(parts)
    return None if np.isnan(values).all() else values


def concat_transitions(parts: list[Transitions], names: list[str]) -> Transitions:
    """Several datasets' steps as one :class:`Transitions` (episodes renumbered to stay distinct, in order).

    They must agree on the spaces, on carrying action masks, and on carrying search targets; ``names`` name them in
    the error when they do not."""
    first = parts[0]
    for data, name in zip(parts[1:], names[1:]):
        same = (data.observations.shape[1:] == first.observations.shape[1:] and data.action_space == first.action_space
                and (data.action_masks is None) == (first.action_masks is None))
        if not same:
            raise DatasetError(f"The datasets '{names[0]}' and '{name}' cannot be learnt from together: their "
                               "observations, actions or action masks differ. Replay only datasets of the same env.")
        if (data.action_targets is None) != (first.action_targets is None):
            raise DatasetError(f"Of the datasets '{names[0]}' and '{name}', only one carries search targets "
                               "(search_policy). Set imitate.targets: actions to learn the moves played from both, "
                               "or replay only datasets recorded by search agents.")
    if len(parts) == 1:
        return first
    offsets = np.cumsum([0] + [int(d.episode.max()) + 1 for d in parts[:-1]])
    join = np.concatenate
    return Transitions(
        observations=join([d.observations for d in parts]),
        actions=join([d.actions for d in parts]),
        action_masks=None if first.action_masks is None else join([d.action_masks for d in parts]),
        rewards=join([d.rewards for d in parts]),
        episode=join([d.episode + o for d, o in zip(parts, offsets)]),
        terminated=join([d.terminated for d in parts]),
        truncated=join([d.truncated for d in parts]),
        last_observations=join([d.last_observations for d in parts]),
        observation_space=first.observation_space,
        action_space=first.action_space,
        action_targets=None if first.action_targets is None else join([d.action_targets for d in parts]),
        value_targets=_value_targets([d.value_targets if d.value_targets is not None
                                      else np.full(len(d), np.nan, np.float32) for d in parts]),
    )


def _check_values(data: Transitions, path: Path) -> None:
    """Finite numbers, shapes of the spaces, discrete actions in range: what imitation relies on."""
    root = path.parent if path.name == "data" else path
    fields = {"observations": data.observations, "actions": data.actions, "rewards": data.rewards,
              "observations (the last one of an episode)": data.last_observations}
    for name, values in fields.items():
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            first = int(np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))[0])
            where = (f"the end of episode {int(np.unique(data.episode)[first])}" if values is data.last_observations
                     else f"step {first}, in episode {int(data.episode[first])}")
            raise DatasetError(
                f"The dataset '{root}' holds non-finite {name} (NaN or inf, first at {where}). Training on them "
                "would turn the network into NaN: record the dataset again, and if the env itself produces NaN / inf, "
                "fix the env (or wrap it to clip its values)."
            )
    for name, values, space in (("observations", data.observations, data.observation_space),
                                ("actions", data.actions, data.action_space)):
        if isinstance(space, gym.spaces.Box) and values.shape[1:] != space.shape:
            raise damaged(path, f"its {name} have shape {values.shape[1:]} but its {name} space is {space}")
    space = data.action_space
    if isinstance(space, gym.spaces.Discrete) and data.actions.dtype.kind in "iu":
        low, high = int(space.start), int(space.start) + int(space.n)
        bad = np.flatnonzero((data.actions < low) | (data.actions >= high))
        if len(bad):
            raise damaged(path, f"action {int(data.actions[bad[0]])} at step {int(bad[0])} is outside the action "
                                 f"space {space}")
    targets = data.action_targets
    if targets is not None:
        n_actions = int(getattr(data.action_space, "n", -1))
        if targets.shape != (len(data), n_actions) or not np.isfinite(targets).all() or (targets < 0).any() or \
                not np.allclose(targets.sum(axis=1), 1.0, atol=1e-3):
            raise damaged(path, f"its search_policy infos are not one probability distribution over the {n_actions} "
                                 f"actions per step (shape {targets.shape})")
    if data.action_masks is not None and data.action_masks.shape[0] != len(data):
        raise damaged(path, f"it has {data.action_masks.shape[0]} action masks for {len(data)} steps")
    searched = data.value_targets
    if searched is not None:
        known = searched[~np.isnan(searched)]
        if searched.shape != (len(data),) or not np.isfinite(known).all() or (np.abs(known) > 1.0 + 1e-6).any():
            raise damaged(path, f"its search_value infos are not one value in [-1, 1] per step (shape "
                                f"{searched.shape})")


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
