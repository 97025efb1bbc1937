"""Playing two-player games: one game between agents (with each seat's trace), and recording games as Minari datasets.

Example::

    result = play_game(env, {"player_0": agent, "player_1": opponent}, seed=0)
    result.returns["player_0"]  # +1 win, 0 draw, -1 loss
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from minari.data_collector.episode_buffer import EpisodeBuffer
from tqdm.auto import tqdm

from rlft.core.agent import checked_action
from rlft.core.envs import EnvPlugin
from rlft.core.errors import PluginError
from rlft.core.metrics import log
from rlft.policy.agents import check_agent_fits, resolve_agent
from rlft.policy.datasets import write_dataset
from rlft.policy.report import result_of

if TYPE_CHECKING:
    pass


def tag(spec: str) -> str:
    """A metric-safe name for an opponent spec (``alphabeta:2`` -> ``alphabeta_2``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(spec).name if Path(spec).exists() else spec).strip("_")


def outcome(reward: float) -> float:
    """Score of a final reward: 1 win, 0.5 draw, 0 loss."""
    return 1.0 if reward > 0 else 0.0 if reward < 0 else 0.5


@dataclass
class SeatTrace:
    """What one seat saw and did in a game (for recording)."""

    observations: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    search_policies: list[np.ndarray | None] = field(default_factory=list)
    """Per move, the visit distribution of a search agent (``last_search_policy``; None for other agents)."""
    search_values: list[float | None] = field(default_factory=list)
    """Per move, the search's root value for the mover (``last_search_value``; None for agents without one)."""


@dataclass
class GameResult:
    """Final returns per seat name, number of moves, and (when recorded) each seat's trace."""

    returns: dict[str, float]
    moves: int
    traces: dict[str, SeatTrace] | None = None


def play_game(env: Any, seats: dict[str, Any], *, seed: int | None = None, deterministic: bool | dict[str, bool] = True,
              record: bool = False, on_position: Callable[[Any], None] | None = None) -> GameResult:
    """Play one game of an AEC env; ``seats`` maps each agent name to an :class:`~rlft.core.agent.Agent`.

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
            searched = getattr(seats[name], "last_search_policy", None)
            traces[name].search_policies.append(None if searched is None else np.array(searched, dtype=np.float32))
            value = getattr(seats[name], "last_search_value", None)
            traces[name].search_values.append(None if value is None else float(value))
        env.step(action)
        moves += 1
        if on_position is not None:
            on_position(env)
    return GameResult(returns=returns, moves=moves, traces=traces)


def resolve_player(spec_or_agent: Any, plugin: EnvPlugin, env: Any, seed: int, device: str = "auto",
                   trust_pickle: bool = False) -> Any:
    """An agent spec resolved for ``env`` (checked to fit its spaces); an agent object is returned as it is."""
    if not isinstance(spec_or_agent, str):
        return spec_or_agent
    first = env.possible_agents[0]
    agent = resolve_agent(spec_or_agent, plugin, action_space=env.action_space(first), seed=seed, device=device,
                          trust_pickle=trust_pickle)
    check_agent_fits(agent, env.observation_space(first)["observation"], env.action_space(first), plugin.name,
                     f"The agent '{spec_or_agent}'")
    return agent


@contextmanager
def seeded_game(agents: list[Any], game_seed: int) -> Iterator[None]:
    """One game's randomness, from ``game_seed`` alone: each agent that keeps a NumPy generator in ``rng`` (random,
    the scripted players, mcts, LLM agents) gets a fresh one seeded by (game_seed, its place in ``agents``), and torch
    (policies that sample) is seeded with ``game_seed`` inside a fork of its RNG, so the caller's stream is untouched.
    A game then depends on its seed, not on the games played before it (which is what lets Ray actors play any
    slice of a match, :mod:`rlft.policy.games.ray_games`)."""
    for k, agent in enumerate({id(a): a for a in agents}.values()):  # one object in both seats is seeded once
        if isinstance(getattr(agent, "rng", None), np.random.Generator):
            agent.rng = np.random.default_rng([game_seed, k])
    cuda = torch.cuda.is_initialized()  # never start CUDA just to save its RNG
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
        torch.random.default_generator.manual_seed(game_seed)
        if cuda:
            torch.cuda.manual_seed_all(game_seed)
        yield


def play_games(env: Any, agent: Any, opponent: Any, games: Iterable[int], *, seed: int = 0,
               deterministic: bool = True) -> list[float]:
    """The agent's final return in each game ``i`` of ``games`` of a match: env seed ``seed + i``, the agent in the
    first seat when ``i`` is even, the agents' randomness seeded from ``seed + i`` (:func:`seeded_game`). So the
    games ``range(a, b)`` give the same results whether a match plays them among all its games or alone."""
    first, second = env.possible_agents
    out = []
    for i in games:
        me, them = (first, second) if i % 2 == 0 else (second, first)
        with seeded_game([agent, opponent], seed + i):
            result = play_game(env, {me: agent, them: opponent}, seed=seed + i,
                               deterministic={me: deterministic, them: True})
        out.append(result.returns[me])
    return out


def game_episodes(results: list[GameResult], first_id: int = 0) -> tuple[list[Any], list[dict[str, Any]]]:
    """Minari episodes (one per seat per game, observations ``{"observation", "action_mask"}``) and metadata."""

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
                                         terminations=[False] * (n - 1) + [True], truncations=[False] * n,
                                         infos=search_infos(trace, obs["action_mask"].shape[1])))
            meta.append({"game": g, "player": seat, "result": result_of(final),
                         "return": final})
    return buffers, meta


def search_infos(trace: SeatTrace, n_actions: int) -> dict[str, np.ndarray]:
    """Minari ``infos`` of a seat's episode: ``search_policy`` (one row per observation, the last one zeros: no move
    was searched there) when a search agent chose every move, and ``search_value`` (its root value per move, the
    last entry 0; shape (n + 1, 1)) when it also valued every move; else nothing."""
    n = len(trace.actions)
    policies = trace.search_policies[:n]
    if not policies or any(p is None for p in policies):
        return {}
    infos = {"search_policy": np.concatenate([np.stack(policies), np.zeros((1, n_actions), np.float32)])}  # type: ignore[arg-type]
    values = trace.search_values[:n]
    if len(values) == n and all(v is not None for v in values):
        # a column, (n + 1, 1): Minari's Arrow storage cannot read back a 1-D info array (its shape metadata is empty)
        infos["search_value"] = np.array([*values, 0.0], dtype=np.float32).reshape(-1, 1)
    return infos


def write_games(out: str | Path, results: list[GameResult], env: Any, metadata: dict[str, Any]) -> Path:
    """Write recorded games as a Minari dataset (both seats; player and result in each episode's metadata)."""

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
