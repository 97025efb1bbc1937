"""Games in Ray actors: ``rlft eval --ray-actors K``, ``rlft arena --ray-actors K``, ``eval.ray_actors: K``.

The games of each match are split into K contiguous slices (actor k plays games ``[a_k, b_k)``, as
:class:`~rlft.policy.ray_env.RayVecEnv` splits env copies), and every game is seeded by its index alone
(:func:`~rlft.policy.games.play.seeded_game`), so the W/D/L counts are exactly those of the same match played in this
process. Agents travel as specs -- built-in names, run / checkpoint / ``.zip`` paths, ``mcts:`` specs,
``module:Class`` -- never as pickled models: each actor rebuilds them under the caller's trust rules
(:func:`rlft.core.plugins.trust_rules`: ``--trust-code``, and the files specs came from) and ``--trust-pickle``, so
nothing a file names runs in an actor that would not run here. An agent given only as an object (the policy a
``finetune`` run is training, an LLM agent whose move counts are wanted) cannot travel: its games run in this
process, with a warning.

Ray is connected by :func:`~rlft.policy.ray_env.connect_ray`: ``address``, else ``RAY_ADDRESS``, else a local Ray.

Example::

    per = evaluate_game(agent, plugin, {}, ["alphabeta:2"], 200, ray=RayGames(actors=4, agent="runs/c4"))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rlft.core.agent import SEARCH_SPECS, load_agent
from rlft.core.envs import EnvPlugin, resolve_env
from rlft.core.errors import RlftError
from rlft.core.plugins import TrustRules, trust_rules
from rlft.policy.games.play import play_games, resolve_player
from rlft.policy.ray_env import connect_ray


@dataclass(frozen=True)
class RayGames:
    """Where the games of a match run: in ``actors`` Ray actors (see the module docstring)."""

    actors: int
    """Actors the games of each match are split over (contiguous slices; one CPU each)."""
    address: str | None = None
    """The Ray cluster to join (None: Ray's RAY_ADDRESS variable, else a local Ray)."""
    agent: str | None = None
    """``evaluate_game``: the path or spec every actor loads the evaluated agent from (``rlft.load_agent``); None:
    that agent cannot travel, so its games run in this process."""
    trust_pickle: bool = False
    """Actors load the evaluated agent with ``trust_pickle`` (``--trust-pickle``)."""


@dataclass(frozen=True)
class Player:
    """An agent as an actor rebuilds it: resolved from a spec with ``seed`` like an opponent (``resolve_player``),
    or -- ``load``, the evaluated agent -- loaded from a path or ``mcts:`` spec like ``rlft.load_agent``."""

    spec: str
    seed: int = 0
    load: bool = False
    trust_pickle: bool = False


@dataclass(frozen=True)
class MatchJob:
    """One match: ``games`` games of ``agent`` against ``opponent``, played as ``play_games`` plays them."""

    agent: Player
    opponent: Player
    games: int
    seed: int
    deterministic: bool = True


class GameWorker:
    """A Ray actor: one env, the agents it was sent (each built once), and slices of matches to play."""

    def __init__(self, env_spec: str, env_kwargs: dict[str, Any], trust: TrustRules) -> None:
        self.env_spec, self.env_kwargs, self.trust = env_spec, env_kwargs, trust
        self.plugin: EnvPlugin | None = None
        self.env: Any = None
        self.agents: dict[Player, Any] = {}

    def _setup(self) -> None:
        """The env, built on the first call (an error there reaches the caller as itself; one raised in the
        constructor would only say that the actor died)."""
        if self.plugin is None:
            with self.trust.applied():
                self.plugin = resolve_env(self.env_spec)
                self.env = self.plugin.make(**self.env_kwargs)

    def _agent(self, p: Player) -> Any:
        assert self.plugin is not None
        if p not in self.agents:
            loadable = Path(p.spec).exists() or p.spec.partition(":")[0] in SEARCH_SPECS
            with self.trust.applied():
                self.agents[p] = (
                    load_agent(p.spec, device="cpu", trust_pickle=p.trust_pickle, env=self.plugin.name)
                    if p.load and loadable else
                    resolve_player(p.spec, self.plugin, self.env, p.seed, device="cpu", trust_pickle=p.trust_pickle))
        return self.agents[p]

    def play(self, job: MatchJob, start: int, stop: int) -> list[float]:
        """The agent's returns in games ``start .. stop - 1`` of ``job``."""
        self._setup()
        return play_games(self.env, self._agent(job.agent), self._agent(job.opponent), range(start, stop),
                          seed=job.seed, deterministic=job.deterministic)


def play_matches(plugin: EnvPlugin, env_kwargs: dict[str, Any], jobs: list[MatchJob], ray_games: RayGames, *,
                 progress: bool = False, desc: str = "games") -> list[list[float]]:
    """Each job's returns of the agent, in game order, its games split over ``ray_games.actors`` actors."""
    k = max(1, min(ray_games.actors, max((j.games for j in jobs), default=1)))
    ray = connect_ray(ray_games.address, min_cpus=k)
    worker = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(GameWorker)
    rules = trust_rules()  # captured here: the actors resolve specs under the caller's rules
    actors = [worker.remote(plugin.name, dict(env_kwargs), rules) for _ in range(k)]
    try:
        slices: dict[Any, tuple[int, int, int]] = {}  # future -> (job, actor, games)
        for m, job in enumerate(jobs):
            bounds = np.linspace(0, job.games, k + 1).round().astype(int)
            for a, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
                if hi > lo:
                    slices[actors[a].play.remote(job, int(lo), int(hi))] = (m, a, int(hi - lo))
        parts: dict[tuple[int, int], list[float]] = {}
        with tqdm(total=sum(j.games for j in jobs), desc=desc, disable=not progress, unit="game") as bar:
            left = list(slices)
            while left:
                done, left = ray.wait(left, num_returns=1)
                m, a, n = slices[done[0]]
                parts[m, a] = _get(ray, done[0])
                bar.update(n)
        return [[r for a in range(k) for r in parts.get((m, a), [])] for m in range(len(jobs))]
    finally:
        for actor in actors:
            ray.kill(actor)


def _get(ray: Any, future: Any) -> Any:
    """``ray.get``, with an rlft error raised inside an actor (a bad spec, a refused ``module:Name``) re-raised as
    itself, so the CLI prints its one paragraph rather than Ray's traceback."""
    try:
        return ray.get(future)
    except ray.exceptions.RayError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, RlftError):
            raise cause from None
        raise
