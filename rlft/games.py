"""Two-player games: self-play training env, opponent pool, recording both seats, W/D/L evaluation, Elo, arena.

A PettingZoo AEC game becomes a single-agent Gymnasium env for PPO through :class:`SelfPlayEnv`: the learner sees
its own seat (observation planes, ``action_masks()`` for MaskablePPO) and the opponent's moves happen inside
``step``. Seats alternate every episode, and the reward is what PettingZoo gives the learner's seat in AEC order
(summed over the learner's move and the opponent's replies). An illegal learner action raises
:class:`~rlft.errors.IllegalActionError`: MaskablePPO never samples one, so one reaching the env is a bug to see.

Opponents come from an :class:`OpponentPool`: fixed opponents (any agent spec: ``random``, ``alphabeta:2``, a run
folder, ``module:Class``) and up to ``pool_size`` frozen snapshots of the learner, pushed by
:class:`SnapshotCallback` every ``snapshot_every`` env steps. Sampling is prioritised fictitious self-play: an
opponent is drawn with weight ``(1 - score) ** pfsp_power + pfsp_floor``, where ``score`` is the learner's recent
(win + draw / 2) rate against it, so the pool leans toward the opponents the learner loses to.

Example::

    result = evaluate_game(rlft.load_agent("runs/c4"), resolve_env("connect_four"), {}, ["alphabeta:2"], 200, seed=0)
    result["per_opponent"]["alphabeta:2"]["win"]
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from rlft.config import param
from rlft.environment import EnvPlugin, register_multi_agent_adapter
from rlft.errors import CheckpointError, IllegalActionError, PluginError
from rlft.evaluate import checked_action
from rlft.metrics import log

if TYPE_CHECKING:
    from rlft.pipeline import StageContext


@dataclass
class SelfPlayConfig:
    """Opponents of the learner during fine-tuning on a two-player game (``finetune.self_play``)."""

    opponents: list[str] = field(default_factory=lambda: ["random"])
    """Fixed opponents (agent specs: `random`, `greedy`, `alphabeta:2`, a run folder, `module:Class`)."""
    pool_size: int = param(5, ge=0)
    """Frozen snapshots of the learner kept in the pool (0: no self-play, fixed opponents only)."""
    snapshot_every: int = param(20_000, ge=1)
    """Env steps between snapshots (the starting policy is the first snapshot)."""
    self_play_fraction: float = param(0.5, ge=0, le=1)
    """Probability that an episode's opponent is a snapshot rather than a fixed opponent (when both exist)."""
    pfsp_power: float = param(1.0, ge=0)
    """Prioritised fictitious self-play: weight ``(1 - score) ** power``; 0 samples uniformly."""
    pfsp_floor: float = param(0.05, ge=0)
    """Added to every weight, so an opponent the learner always beats is still played now and then."""
    snapshot_deterministic: bool = False
    """Snapshots play greedily (False: they sample from their policy, for more varied games)."""
    eval_opponents: list[str] = field(default_factory=list)
    """Opponents of the periodic evaluation (empty: `eval.opponents`); the first one's win rate is the headline."""
    elo_games: int = param(20, ge=0)
    """Games per pair of evaluation opponents to rate them once (for the learner's Elo curve; 0: no Elo)."""

    def validate(self) -> None:
        if not self.opponents and self.pool_size == 0:
            raise ValueError("self_play needs fixed opponents or pool_size > 0: the learner has nobody to play.")


def tag(spec: str) -> str:
    """A metric-safe name for an opponent spec (``alphabeta:2`` -> ``alphabeta_2``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(spec).name if Path(spec).exists() else spec).strip("_")


def outcome(reward: float) -> float:
    """Score of a final reward: 1 win, 0.5 draw, 0 loss."""
    return 1.0 if reward > 0 else 0.0 if reward < 0 else 0.5


# --------------------------------------------------------------------------------------------------------------
# Playing one game
# --------------------------------------------------------------------------------------------------------------


@dataclass
class SeatTrace:
    """What one seat saw and did in a game (for recording)."""

    observations: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)


@dataclass
class GameResult:
    """Final returns per seat name, number of moves, and (when recorded) each seat's trace."""

    returns: dict[str, float]
    moves: int
    traces: dict[str, SeatTrace] | None = None


def play_game(env: Any, seats: dict[str, Any], *, seed: int | None = None, deterministic: bool | dict[str, bool] = True,
              record: bool = False, on_position: Callable[[Any], None] | None = None) -> GameResult:
    """Play one game of an AEC env; ``seats`` maps each agent name to an :class:`~rlft.agents.Agent`.

    Every action is checked against the mask (an illegal one raises IllegalActionError). Rewards are accumulated
    per seat in AEC order (``env.last()`` gives each seat what it earned since its previous move).
    ``on_position(env)`` is called after the reset and after every move (e.g. to grab rendered frames).
    """
    env.reset(seed=seed)
    if on_position is not None:
        on_position(env)
    returns = dict.fromkeys(env.possible_agents, 0.0)
    traces = {a: SeatTrace() for a in env.possible_agents} if record else None
    moves = 0
    for name in env.agent_iter():
        obs, reward, terminated, truncated, _ = env.last()
        returns[name] += float(reward)
        if traces is not None:
            trace = traces[name]
            if trace.actions:
                trace.rewards.append(float(reward))
            trace.observations.append(np.asarray(obs["observation"]).copy())
            trace.masks.append(np.asarray(obs["action_mask"]).copy())
        if terminated or truncated:
            env.step(None)
            continue
        if name not in seats:
            raise PluginError(f"No agent for seat '{name}' (seats given: {sorted(seats)}).")
        det = deterministic[name] if isinstance(deterministic, dict) else deterministic
        action = int(checked_action(seats[name], obs["observation"], obs["action_mask"], det))
        if traces is not None:
            traces[name].actions.append(action)
        env.step(action)
        moves += 1
        if on_position is not None:
            on_position(env)
    return GameResult(returns=returns, moves=moves, traces=traces)


# --------------------------------------------------------------------------------------------------------------
# The opponent pool and the self-play env
# --------------------------------------------------------------------------------------------------------------


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
    """Rebuild a frozen :class:`~rlft.agents.PolicyAgent` from :func:`snapshot_payload` (on CPU)."""
    import torch

    from rlft.agents import PolicyAgent
    from rlft.policies.networks import PolicySpec, build_policy

    policy = build_policy(PolicySpec(**payload["spec"]), observation_space, action_space, masked=payload["masked"])
    policy.load_state_dict({k: torch.as_tensor(v) for k, v in payload["state"].items()})
    for p in policy.parameters():
        p.requires_grad_(False)
    return PolicyAgent(policy)


class SelfPlayEnv(gym.Env[np.ndarray, int]):
    """A two-player AEC game seen from the learner's seat (see the module docstring)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, plugin: EnvPlugin, env: Any, cfg: SelfPlayConfig, seed: int = 0) -> None:
        from rlft.agents import RandomAgent, resolve_agent

        self.plugin = plugin
        self.env = env
        self.cfg = cfg
        self.seats = list(env.possible_agents)
        if len(self.seats) != 2:
            raise PluginError(f"Self-play needs a two-player game; '{plugin.name}' has agents {self.seats}.")
        first = self.seats[0]
        space = env.observation_space(first)
        if not (isinstance(space, gym.spaces.Dict) and {"observation", "action_mask"} <= set(space.spaces)):
            raise PluginError(f"Self-play needs observations {{'observation', 'action_mask'}}; '{plugin.name}' gives "
                              f"{space}.")
        self.observation_space = space["observation"]
        self.action_space = env.action_space(first)
        fixed = {spec: resolve_agent(spec, plugin, action_space=self.action_space, seed=seed + i)
                 for i, spec in enumerate(cfg.opponents)}
        self.pool = OpponentPool(cfg, fixed)
        self._fallback = PoolEntry("random", RandomAgent(self.action_space, seed=seed), fixed=True)
        self._rng = np.random.default_rng(seed)
        self._payloads: dict[str, dict[str, Any]] = {}
        self.moves = 0
        """Moves played in the PettingZoo env so far, by both seats (the learner's and the opponents')."""
        self._episode = 0
        self.learner = first
        self.opponent = self._fallback
        self._mask: np.ndarray = np.ones(int(self.action_space.n), dtype=np.bool_)  # type: ignore[attr-defined]

    # -- snapshots (called through VecEnv.env_method) -------------------------------------------------------
    def add_snapshot(self, payload: dict[str, Any]) -> None:
        """Add a frozen copy of the learner (see :func:`snapshot_payload`) to the opponent pool."""
        agent = policy_from_payload(payload, self.observation_space, self.action_space)
        self.pool.add_snapshot(payload["key"], agent)
        live = {e.key for e in self.pool.snapshots}
        self._payloads = {k: v for k, v in {**self._payloads, payload["key"]: payload}.items() if k in live}

    def pool_stats(self) -> dict[str, float]:
        """The learner's recent score rate against each opponent in this env's pool."""
        return {e.key: e.win_rate for e in self.pool.entries}

    def pool_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the pool: the snapshots (payloads, oldest first) and the decayed results."""
        return {"snapshots": [self._payloads[e.key] for e in self.pool.snapshots if e.key in self._payloads],
                "results": {e.key: [e.score, e.games] for e in self.pool.entries}}

    def set_pool_results(self, results: dict[str, list[float]]) -> None:
        """Restore the decayed results of :meth:`pool_state` (after the snapshots were added back)."""
        for e in self.pool.entries:
            if e.key in results:
                e.score, e.games = (float(v) for v in results[e.key])

    # -- Gymnasium API ---------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.learner = self.seats[self._episode % 2]
        self._episode += 1
        self.opponent = self.pool.sample(self._rng) or self._fallback
        self.env.reset(seed=seed)
        reward, done = self._opponent_moves()
        if done:  # a game the opponent finishes before the learner moves is not a game; start another
            return self.reset()
        return self._observe(), {"opponent": self.opponent.key, "seat": self.learner}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not (0 <= action < len(self._mask) and self._mask[action]):
            raise IllegalActionError(
                f"The learner chose action {action}, which the action mask forbids (legal: "
                f"{np.flatnonzero(self._mask).tolist()}). Policies must sample from masked logits."
            )
        self.env.step(action)
        self.moves += 1
        reward = float(self.env.rewards.get(self.learner, 0.0))
        done = self._game_over()
        if not done:
            more, done = self._opponent_moves()
            reward += more
        info: dict[str, Any] = {"opponent": self.opponent.key, "seat": self.learner}
        if done:
            self.pool.record(self.opponent.key, outcome(reward))
            info["result"] = outcome(reward)
        return self._observe(), reward, done, False, info

    def action_masks(self) -> np.ndarray:
        """Legal actions of the learner now (sb3-contrib's MaskablePPO convention)."""
        return self._mask.copy()

    def close(self) -> None:
        self.env.close()

    # -- internals ---------------------------------------------------------------------------------------------
    def _game_over(self) -> bool:
        return bool(self.env.terminations.get(self.learner, True) or self.env.truncations.get(self.learner, True))

    def _opponent_moves(self) -> tuple[float, bool]:
        """Let the opponent move until it is the learner's turn or the game is over; the learner's reward."""
        reward = 0.0
        while not self._game_over() and self.env.agent_selection != self.learner:
            seat = self.env.agent_selection
            obs = self.env.observe(seat)
            if self.env.terminations[seat] or self.env.truncations[seat]:
                self.env.step(None)
            else:
                action = checked_action(self.opponent.agent, obs["observation"], obs["action_mask"],
                                        self.opponent.deterministic)
                self.env.step(int(action))
                self.moves += 1
            reward += float(self.env.rewards.get(self.learner, 0.0))
        return reward, self._game_over()

    def _observe(self) -> np.ndarray:
        obs = self.env.observe(self.learner)
        self._mask = np.asarray(obs["action_mask"]).astype(bool)
        return np.asarray(obs["observation"])


def make_self_play_env(plugin: EnvPlugin, env: Any, adapter_kwargs: dict[str, Any]) -> gym.Env[Any, Any]:
    """The adapter :func:`rlft.environment.make_gym_env` uses for PettingZoo envs."""
    from rlft.config import from_dict

    cfg = adapter_kwargs.get("self_play")
    if not isinstance(cfg, SelfPlayConfig):
        cfg = from_dict(SelfPlayConfig, dict(cfg or {}), source="finetune.self_play")
    return SelfPlayEnv(plugin, env, cfg, seed=int(adapter_kwargs.get("seed", 0)))


register_multi_agent_adapter(make_self_play_env)


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
    from safetensors.numpy import save_file

    states = venv.env_method("pool_state")
    folder.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"last_snapshot": int(last_snapshot), "snapshots": [],
                            "results": [s["results"] for s in states]}
    for i, payload in enumerate(states[0]["snapshots"] if states else []):  # every env holds the same snapshots
        name = f"snapshot-{i}.safetensors"
        save_file({k: np.ascontiguousarray(v) for k, v in payload["state"].items()}, str(folder / name))
        meta["snapshots"].append({"key": payload["key"], "spec": payload["spec"], "masked": payload["masked"],
                                  "file": name})
    (folder / "pool.json").write_text(json.dumps(meta, indent=1))


def load_pool(folder: Path, venv: Any) -> int:
    """Put the pools :func:`save_pool` wrote back into ``venv``'s envs; returns the step of the last snapshot."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        meta = json.loads((folder / "pool.json").read_text())
        payloads = [{"key": s["key"], "spec": s["spec"], "masked": s["masked"],
                     "state": load_file(str(folder / s["file"]))} for s in meta["snapshots"]]
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
        raise CheckpointError(
            f"The self-play opponent pool in '{folder}' cannot be read ({e}). The checkpoint is incomplete or "
            "damaged: delete this checkpoint folder to resume from the one before it.") from e
    for payload in payloads:
        venv.env_method("add_snapshot", payload)
    for i, results in enumerate(meta["results"][: venv.num_envs]):
        venv.env_method("set_pool_results", results, indices=[i])
    return int(meta["last_snapshot"])


def self_play_config(ctx: StageContext) -> SelfPlayConfig:
    """``finetune.self_play`` as a :class:`SelfPlayConfig` (a plain mapping is validated here)."""
    from rlft.config import from_dict

    raw = ctx.cfg.finetune.self_play
    if isinstance(raw, SelfPlayConfig):
        return raw
    return from_dict(SelfPlayConfig, dict(raw or {}), source="finetune.self_play")


def self_play_kwargs(ctx: StageContext) -> dict[str, Any]:
    """Adapter settings for the training envs (plain data, so subprocess envs get them too)."""
    return {"self_play": dataclasses.asdict(self_play_config(ctx)), "seed": int(ctx.seed)}


# --------------------------------------------------------------------------------------------------------------
# Evaluation, Elo, arena
# --------------------------------------------------------------------------------------------------------------


def _resolve(spec_or_agent: Any, plugin: EnvPlugin, env: Any, seed: int) -> Any:
    from rlft.agents import resolve_agent

    if not isinstance(spec_or_agent, str):
        return spec_or_agent
    return resolve_agent(spec_or_agent, plugin, action_space=env.action_space(env.possible_agents[0]), seed=seed)


def match(env: Any, agent: Any, opponent: Any, games: int, *, seed: int = 0,
          deterministic: bool = True, progress: bool = False, desc: str = "games") -> dict[str, Any]:
    """``agent`` vs ``opponent`` for ``games`` games, alternating seats (game i: agent in seat i % 2)."""
    from tqdm.auto import tqdm

    first, second = env.possible_agents
    counts = {"win": 0, "draw": 0, "loss": 0}
    by_seat = [[0, 0], [0, 0]]  # [wins, games] when the agent sits first / second
    for i in tqdm(range(games), desc=desc, disable=not progress, unit="game"):
        seat = i % 2
        me, them = (first, second) if seat == 0 else (second, first)
        result = play_game(env, {me: agent, them: opponent}, seed=seed + i,
                           deterministic={me: deterministic, them: True})
        r = result.returns[me]
        key = "win" if r > 0 else "loss" if r < 0 else "draw"
        counts[key] += 1
        by_seat[seat][0] += key == "win"
        by_seat[seat][1] += 1
    n = max(games, 1)
    return {"win": counts["win"] / n, "draw": counts["draw"] / n, "loss": counts["loss"] / n, "games": games,
            "wins": counts["win"], "draws": counts["draw"], "losses": counts["loss"],
            "win_first": by_seat[0][0] / max(by_seat[0][1], 1), "win_second": by_seat[1][0] / max(by_seat[1][1], 1)}


def evaluate_game(agent: Any, plugin: EnvPlugin, env_kwargs: dict[str, Any], opponents: list[str], episodes: int, *,
                  seed: int = 0, deterministic: bool = True, progress: bool = False) -> dict[str, Any]:
    """W/D/L of ``agent`` against each opponent spec, ``episodes`` games each, half in each seat."""
    env = plugin.make(**env_kwargs)
    try:
        per = {}
        for j, spec in enumerate(opponents):
            opponent = _resolve(spec, plugin, env, seed + 7919 * (j + 1))
            per[spec] = match(env, agent, opponent, episodes, seed=seed, deterministic=deterministic,
                              progress=progress, desc=f"vs {spec}")
    finally:
        env.close()
    return {"per_opponent": per}


def fit_elo(scores: np.ndarray, games: np.ndarray, fixed: dict[int, float] | None = None, iters: int = 500
            ) -> np.ndarray:
    """Elo ratings from pairwise results (Bradley-Terry, minorise-maximise iterations).

    ``scores[i, j]`` is i's score against j (wins + draws / 2) over ``games[i, j]`` games. Each played pair also gets
    one virtual draw, so a perfect record gives a large but finite rating. ``fixed`` pins some ratings (the others
    are fitted around them); without it, the mean rating is 1000.
    """
    n = len(scores)
    played = games > 0
    s = scores + 0.5 * played
    g = games + 1.0 * played
    gamma = np.ones(n)
    fixed = fixed or {}
    for i, r in fixed.items():
        gamma[i] = 10 ** (r / 400)
    for _ in range(iters):
        for i in range(n):
            if i in fixed or not played[i].any():
                continue
            denom = sum(g[i, j] / (gamma[i] + gamma[j]) for j in range(n) if played[i, j])
            gamma[i] = s[i].sum() / denom
        if not fixed:
            gamma /= math.exp(np.mean(np.log(gamma)))
    ratings = 400 * np.log10(gamma)
    return ratings if fixed else ratings + 1000.0


def arena(plugin: EnvPlugin, env_kwargs: dict[str, Any], players: dict[str, Any], episodes: int, *, seed: int = 0,
          deterministic: bool = True, progress: bool = False) -> dict[str, Any]:
    """Round robin: every pair plays ``episodes`` games (half in each seat); win matrix and Elo.

    ``players`` maps a name to an agent spec or an agent. ``win_matrix[a][b]`` is a's win rate against b.
    """
    env = plugin.make(**env_kwargs)
    names = list(players)
    agents = {name: _resolve(p, plugin, env, seed + 101 * i) for i, (name, p) in enumerate(players.items())}
    n = len(names)
    scores, games = np.zeros((n, n)), np.zeros((n, n))
    wins = np.full((n, n), np.nan)
    try:
        for i in range(n):
            for j in range(i + 1, n):
                r = match(env, agents[names[i]], agents[names[j]], episodes, seed=seed + 1000 * (i * n + j),
                          deterministic=deterministic, progress=progress, desc=f"{names[i]} vs {names[j]}")
                wins[i, j], wins[j, i] = r["win"], r["loss"]
                scores[i, j] = r["wins"] + 0.5 * r["draws"]
                scores[j, i] = r["losses"] + 0.5 * r["draws"]
                games[i, j] = games[j, i] = episodes
    finally:
        env.close()
    elo = fit_elo(scores, games)
    return {"players": names,
            "win_matrix": {a: {b: (None if i == j else float(wins[i, j])) for j, b in enumerate(names)}
                           for i, a in enumerate(names)},
            "elo": {a: float(elo[i]) for i, a in enumerate(names)}}


def game_evaluator(ctx: StageContext) -> Callable[[Any], dict[str, float]]:
    """Periodic evaluation during fine-tuning: win / loss rate vs each evaluation opponent, and an Elo rating.

    The evaluation opponents are rated once against each other (``elo_games`` per pair; the first opponent is
    pinned at 0); the learner's Elo is then fitted against those fixed ratings, so the curve is comparable over time.
    """
    from rlft.environment import resolve_env

    sp = self_play_config(ctx)
    opponents = list(sp.eval_opponents or ctx.cfg.eval.opponents or ["random"])
    plugin = resolve_env(ctx.cfg.env.id)
    env_kwargs = dict(ctx.cfg.env.kwargs)
    episodes = ctx.cfg.finetune.eval_episodes
    seed = 10_000 + ctx.seed
    ratings: np.ndarray | None = None
    if sp.elo_games > 0 and len(opponents) > 1:
        rated = arena(plugin, env_kwargs, {o: o for o in opponents}, sp.elo_games, seed=seed)
        ratings = np.array([rated["elo"][o] for o in opponents])
        ratings -= ratings[0]
        log.info("finetune: evaluation opponents rated %s", {o: round(float(r)) for o, r in zip(opponents, ratings)})

    def evaluate(agent: Any) -> dict[str, float]:
        result = evaluate_game(agent, plugin, env_kwargs, opponents, episodes, seed=seed)["per_opponent"]
        out: dict[str, float] = {}
        for o in opponents:
            out[f"eval/win_rate_vs_{tag(o)}"] = result[o]["win"]
        for o in opponents:
            out[f"eval/loss_rate_vs_{tag(o)}"] = result[o]["loss"]
        if ratings is not None:
            k = len(opponents)
            scores, games = np.zeros((k + 1, k + 1)), np.zeros((k + 1, k + 1))
            for j, o in enumerate(opponents):
                r = result[o]
                scores[k, j] = r["wins"] + 0.5 * r["draws"]
                scores[j, k] = r["losses"] + 0.5 * r["draws"]
                games[k, j] = games[j, k] = r["games"]
            elo = fit_elo(scores, games, fixed={j: float(ratings[j]) for j in range(k)})
            out["eval/elo"] = float(elo[k])
        return out

    return evaluate


# --------------------------------------------------------------------------------------------------------------
# Recording both seats
# --------------------------------------------------------------------------------------------------------------


def game_episodes(results: list[GameResult], first_id: int = 0) -> tuple[list[Any], list[dict[str, Any]]]:
    """Minari episodes (one per seat per game, observations ``{"observation", "action_mask"}``) and metadata."""
    from minari.data_collector.episode_buffer import EpisodeBuffer

    buffers: list[Any] = []
    meta: list[dict[str, Any]] = []
    for g, result in enumerate(results):
        if result.traces is None:
            raise ValueError("game_episodes needs games played with record=True")
        for seat, trace in result.traces.items():
            n = len(trace.actions)
            if n == 0:
                continue
            rewards = list(trace.rewards) + [0.0] * (n - len(trace.rewards))
            obs = {"observation": np.stack(trace.observations[: n + 1]),
                   "action_mask": np.stack(trace.masks[: n + 1]).astype(np.int8)}
            final = result.returns[seat]
            buffers.append(EpisodeBuffer(id=first_id + len(buffers), observations=obs,
                                         actions=np.asarray(trace.actions, dtype=np.int64), rewards=rewards,
                                         terminations=[False] * (n - 1) + [True], truncations=[False] * n, infos={}))
            meta.append({"game": g, "player": seat, "result": "win" if final > 0 else "loss" if final < 0 else "draw",
                         "return": final})
    return buffers, meta


def write_games(out: str | Path, results: list[GameResult], env: Any, metadata: dict[str, Any]) -> Path:
    """Write recorded games as a Minari dataset (both seats; player and result in each episode's metadata)."""
    from rlft.datasets import write_dataset

    buffers, meta = game_episodes(results)
    if not buffers:
        raise PluginError("No moves to save: no game was played.")
    first = env.possible_agents[0]
    return write_dataset(out, buffers, env.observation_space(first), env.action_space(first), metadata,
                         episode_metadata=meta)


def record_game_episodes(plugin: EnvPlugin, env: Any, agent_spec: str, episodes: int, out: str | Path, *,
                         seed: int = 0, deterministic: bool = True, trust_pickle: bool = False,
                         progress: bool = False) -> dict[str, Any]:
    """``episodes`` games of ``agent_spec`` against itself, both seats recorded (``rlft record`` on a game)."""
    from tqdm.auto import tqdm

    from rlft.agents import resolve_agent

    space = env.action_space(env.possible_agents[0])
    players = {seat: resolve_agent(agent_spec, plugin, action_space=space, seed=seed + 7 * i,
                                   trust_pickle=trust_pickle) for i, seat in enumerate(env.possible_agents)}
    results = [play_game(env, players, seed=seed + i, deterministic=deterministic, record=True)
               for i in tqdm(range(episodes), desc="record", disable=not progress, unit="game")]
    write_games(out, results, env, {"rlft_env": plugin.name, "rlft_agent": agent_spec,
                                    "description": f"{agent_spec} playing both seats of {plugin.name}"})
    env.close()
    first = env.possible_agents[0]
    firsts = [r.returns[first] for r in results]
    steps = sum(r.moves for r in results)
    result = {"episodes": episodes, "steps": steps, "mean_return": float(np.mean(firsts)),
              "std_return": float(np.std(firsts)),
              "first_seat_win": float(np.mean([f > 0 for f in firsts])),
              "draw": float(np.mean([f == 0 for f in firsts]))}
    log.info("record: %d games, %d moves (first seat wins %.2f, draws %.2f) -> %s", episodes, steps,
             result["first_seat_win"], result["draw"], out)
    return result
