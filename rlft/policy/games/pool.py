"""The opponent pool of self-play: fixed opponents plus frozen snapshots of the learner, sampled by PFSP, and its
persistence in checkpoints.

Sampling is prioritised fictitious self-play: an opponent is drawn with weight ``(1 - score) ** pfsp_power +
pfsp_floor``, where ``score`` is the learner's recent (win + draw / 2) rate against it, so the pool leans toward the
opponents the learner loses to. :class:`SnapshotCallback` pushes a snapshot every ``snapshot_every`` env steps.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from stable_baselines3.common.callbacks import BaseCallback

from rlft.core.errors import CheckpointError
from rlft.policies.networks import PolicySpec, build_policy
from rlft.policy.agents import PolicyAgent
from rlft.policy.config import SelfPlayConfig

if TYPE_CHECKING:
    pass


@dataclass
class PoolEntry:
    """One opponent of the pool with the learner's recent results against it."""

    key: str
    agent: Any
    fixed: bool
    deterministic: bool = True
    score: float = 0.0
    """Decayed sum of the learner's scores (1 win, 0.5 draw, 0 loss) against this opponent."""
    games: float = 0.0
    """Decayed number of games against this opponent."""

    @property
    def win_rate(self) -> float:
        """The learner's recent score rate, with a uniform prior (0.5 before any game)."""
        return (self.score + 1.0) / (self.games + 2.0)


class OpponentPool:
    """Fixed opponents plus the newest ``pool_size`` snapshots, sampled with PFSP weights."""

    decay = 0.98
    """Old results fade (the learner changes): each new game multiplies the counts by this."""

    def __init__(self, cfg: SelfPlayConfig, fixed: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.entries: list[PoolEntry] = [PoolEntry(k, a, fixed=True) for k, a in (fixed or {}).items()]

    @property
    def snapshots(self) -> list[PoolEntry]:
        return [e for e in self.entries if not e.fixed]

    def add_snapshot(self, key: str, agent: Any) -> None:
        """Add a frozen snapshot; the oldest one leaves when the pool is full."""
        if self.cfg.pool_size == 0:
            return
        self.entries = [e for e in self.entries if e.key != key]
        self.entries.append(PoolEntry(key, agent, fixed=False, deterministic=self.cfg.snapshot_deterministic))
        snaps = self.snapshots
        if len(snaps) > self.cfg.pool_size:
            drop = {e.key for e in snaps[: len(snaps) - self.cfg.pool_size]}
            self.entries = [e for e in self.entries if e.key not in drop]

    def weights(self, group: list[PoolEntry]) -> np.ndarray:
        """PFSP weights of a group, normalised."""
        w = np.array([(1.0 - e.win_rate) ** self.cfg.pfsp_power + self.cfg.pfsp_floor for e in group])
        return w / w.sum()

    def sample(self, rng: np.random.Generator) -> PoolEntry | None:
        """Draw an opponent: the snapshot group with probability ``self_play_fraction``, then PFSP inside it."""
        fixed = [e for e in self.entries if e.fixed]
        snaps = self.snapshots
        if not fixed and not snaps:
            return None
        group = snaps if snaps and (not fixed or rng.random() < self.cfg.self_play_fraction) else fixed
        return group[int(rng.choice(len(group), p=self.weights(group)))]

    def record(self, key: str, score: float) -> None:
        """Record the learner's score (1 / 0.5 / 0) in a finished game against ``key``."""
        for e in self.entries:
            if e.key == key:
                e.score = e.score * self.decay + score
                e.games = e.games * self.decay + 1.0


def snapshot_payload(policy: Any, spec: Any, masked: bool, key: str) -> dict[str, Any]:
    """A picklable description of a frozen policy (numpy weights + network spec), sent to the envs."""
    state = {k: v.detach().cpu().numpy().copy() for k, v in policy.state_dict().items()}
    return {"key": key, "spec": dataclasses.asdict(spec), "masked": masked, "state": state}


def policy_from_payload(payload: dict[str, Any], observation_space: gym.Space[Any], action_space: gym.Space[Any]
                        ) -> Any:
    """Rebuild a frozen :class:`~rlft.policy.agents.PolicyAgent` from :func:`snapshot_payload` (on CPU)."""


    # The fresh network's random init is overwritten at once; building it under fork_rng leaves the caller's torch RNG
    # untouched, so in-process envs (which share it with the learner) train exactly as subprocess / Ray envs do.
    with torch.random.fork_rng(devices=[]):
        policy = build_policy(PolicySpec(**payload["spec"]), observation_space, action_space,
                              masked=payload["masked"])
    policy.load_state_dict({k: torch.as_tensor(v) for k, v in payload["state"].items()})
    for p in policy.parameters():
        p.requires_grad_(False)
    return PolicyAgent(policy)


class SnapshotCallback(BaseCallback):
    """Pushes a frozen copy of the learner into every env's pool: at the start, then every ``snapshot_every`` steps."""

    def __init__(self, runner: Any, cfg: SelfPlayConfig) -> None:
        super().__init__()
        self.runner = runner
        self.cfg = cfg
        self._last = -1

    def _push(self) -> None:
        step = int(self.model.num_timesteps)
        payload = snapshot_payload(self.model.policy, self.runner.spec, self.runner.masked, f"snapshot@{step}")
        venv = self.model.get_env()
        assert venv is not None, "the model has no env"
        venv.env_method("add_snapshot", payload)
        self._last = self.runner.last_snapshot = step

    def _on_training_start(self) -> None:
        if self.runner.last_snapshot >= 0:  # resumed with the pool of a checkpoint: keep the snapshot schedule
            self._last = self.runner.last_snapshot
        elif self.cfg.pool_size > 0:
            self._push()

    def _on_rollout_start(self) -> None:
        if self.cfg.pool_size > 0 and self.model.num_timesteps - self._last >= self.cfg.snapshot_every:
            self._push()

    def _on_step(self) -> bool:
        return True


def save_pool(folder: Path, venv: Any, last_snapshot: int) -> None:
    """Write the opponent pools of ``venv``'s self-play envs: snapshot weights (safetensors) + ``pool.json``."""

    states = venv.env_method("pool_state")
    folder.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"last_snapshot": int(last_snapshot), "snapshots": [],
                            "results": [s["results"] for s in states]}
    for i, payload in enumerate(states[0]["snapshots"]):  # every env holds the same snapshots
        name = f"snapshot-{i}.safetensors"
        save_file({k: np.ascontiguousarray(v) for k, v in payload["state"].items()}, str(folder / name))
        meta["snapshots"].append({"key": payload["key"], "spec": payload["spec"], "masked": payload["masked"],
                                  "file": name})
    (folder / "pool.json").write_text(json.dumps(meta, indent=1))


def read_pool(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What :func:`save_pool` wrote: (``pool.json``, the snapshot payloads); a CheckpointError when damaged."""
    try:
        meta = json.loads((folder / "pool.json").read_text())
        payloads = [{"key": s["key"], "spec": s["spec"], "masked": s["masked"],
                     "state": load_file(str(folder / s["file"]))} for s in meta["snapshots"]]
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
        raise CheckpointError(
            f"The self-play opponent pool in '{folder}' cannot be read ({e}). The checkpoint is incomplete or "
            "damaged; --resume sets a damaged newest checkpoint aside and uses the one before it.") from e
    return meta, payloads


def load_pool(folder: Path, venv: Any) -> int:
    """Put the pools :func:`save_pool` wrote back into ``venv``'s envs; returns the step of the last snapshot."""
    meta, payloads = read_pool(folder)
    for payload in payloads:
        venv.env_method("add_snapshot", payload)
    for i, results in enumerate(meta["results"][: venv.num_envs]):
        venv.env_method("set_pool_results", results, indices=[i])
    return int(meta["last_snapshot"])
