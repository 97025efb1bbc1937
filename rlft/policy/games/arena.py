"""Evaluating game agents: W/D/L matches in both seats, Elo ratings, the round-robin arena, and the periodic
evaluator of self-play fine-tuning.

Example::

    per = evaluate_game(rlft.load_agent("runs/c4"), resolve_env("connect_four"), {}, ["alphabeta:2"], 200)
    per["alphabeta:2"].rate("win")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rlft.core.envs import EnvPlugin
from rlft.core.metrics import log
from rlft.policy.config import SelfPlayConfig
from rlft.policy.games.play import play_games, resolve_player, tag
from rlft.policy.games.ray_games import MatchJob, Player, RayGames, play_matches
from rlft.policy.report import GameRecord


def record_of(returns: list[float]) -> GameRecord:
    """The W/D/L record of a match from the agent's return in each game (game i: the agent in seat i % 2)."""
    record = GameRecord()
    for i, r in enumerate(returns):
        record.add(r, first_seat=i % 2 == 0)
    return record


def match(env: Any, agent: Any, opponent: Any, games: int, *, seed: int = 0,
          deterministic: bool = True, progress: bool = False, desc: str = "games") -> GameRecord:
    """``agent`` vs ``opponent`` for ``games`` games, alternating seats (game i: agent in seat i % 2, env seed
    ``seed + i``, the agents' randomness seeded from ``seed + i``: :func:`~rlft.policy.games.play.play_games`)."""
    indices = tqdm(range(games), desc=desc, disable=not progress, unit="game")
    return record_of(play_games(env, agent, opponent, indices, seed=seed, deterministic=deterministic))


def _actors(ray: RayGames | None, why_not: str | None) -> RayGames | None:
    """``ray`` when the games go to its actors, else None (with a warning when they were asked to but cannot)."""
    if ray is None or ray.actors <= 0:
        return None
    if why_not:
        log.warning("Playing in this process, not in %d Ray actors: %s", ray.actors, why_not)
        return None
    return ray


def evaluate_game(agent: Any, plugin: EnvPlugin, env_kwargs: dict[str, Any], opponents: list[str], episodes: int, *,
                  seed: int = 0, deterministic: bool = True, progress: bool = False, ray: RayGames | None = None
                  ) -> dict[str, GameRecord]:
    """W/D/L of ``agent`` against each opponent spec, ``episodes`` games each, half in each seat.

    With ``ray`` (``actors > 0`` and the agent's path or spec in ``ray.agent``) the games are played in Ray actors,
    with the same results (:mod:`rlft.policy.games.ray_games`).
    """
    remote = _actors(ray, None if ray is None or ray.agent else
                     "the agent is an object, not a path or spec the actors could load it from")
    if remote is not None and remote.agent is not None:
        me = Player(remote.agent, load=True, trust_pickle=remote.trust_pickle)
        jobs = [MatchJob(me, Player(spec, seed + 7919 * (j + 1)), episodes, seed, deterministic)
                for j, spec in enumerate(opponents)]
        returns = play_matches(plugin, env_kwargs, jobs, remote, progress=progress,
                               desc=f"vs {', '.join(opponents)}")
        return {spec: record_of(r) for spec, r in zip(opponents, returns)}
    env = plugin.make(**env_kwargs)
    try:
        per = {}
        for j, spec in enumerate(opponents):
            opponent = resolve_player(spec, plugin, env, seed + 7919 * (j + 1))
            per[spec] = match(env, agent, opponent, episodes, seed=seed, deterministic=deterministic,
                              progress=progress, desc=f"vs {spec}")
    finally:
        env.close()
    return per


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
          deterministic: bool = True, progress: bool = False, ray: RayGames | None = None) -> dict[str, Any]:
    """Round robin: every pair plays ``episodes`` games (half in each seat); win matrix and Elo.

    ``players`` maps a name to an agent spec or an agent. ``win_matrix[a][b]`` is a's win rate against b. With
    ``ray`` (all players specs) the matches are played in Ray actors, with the same results.
    """
    names = list(players)
    n = len(names)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    remote = _actors(ray, None if all(isinstance(p, str) for p in players.values()) else
                     "a player is an object, not a spec the actors could rebuild it from")
    if remote is not None:
        specs = [Player(p, seed + 101 * i) for i, p in enumerate(players.values())]
        jobs = [MatchJob(specs[i], specs[j], episodes, seed + 1000 * (i * n + j), deterministic) for i, j in pairs]
        records = [record_of(r) for r in play_matches(plugin, env_kwargs, jobs, remote, progress=progress,
                                                      desc="arena")]
    else:
        env = plugin.make(**env_kwargs)
        try:
            agents = [resolve_player(p, plugin, env, seed + 101 * i) for i, p in enumerate(players.values())]
            records = [match(env, agents[i], agents[j], episodes, seed=seed + 1000 * (i * n + j),
                             deterministic=deterministic, progress=progress, desc=f"{names[i]} vs {names[j]}")
                       for i, j in pairs]
        finally:
            env.close()
    scores, games = np.zeros((n, n)), np.zeros((n, n))
    wins = np.full((n, n), np.nan)
    for (i, j), r in zip(pairs, records):
        wins[i, j], wins[j, i] = r.rate("win"), r.rate("loss")
        scores[i, j] = r.wins + 0.5 * r.draws
        scores[j, i] = r.losses + 0.5 * r.draws
        games[i, j] = games[j, i] = episodes
    elo = fit_elo(scores, games)
    return {"players": names,
            "win_matrix": {a: {b: (None if i == j else float(wins[i, j])) for j, b in enumerate(names)}
                           for i, a in enumerate(names)},
            "elo": {a: float(elo[i]) for i, a in enumerate(names)}}


def game_evaluator(plugin: EnvPlugin, env_kwargs: dict[str, Any], cfg: SelfPlayConfig, episodes: int, seed: int,
                   name: str = "finetune") -> Callable[[Any], dict[str, float]]:
    """Periodic evaluation during fine-tuning: win / loss rate vs each evaluation opponent, and an Elo rating.

    The evaluation opponents are rated once against each other (``elo_games`` per pair; the first opponent is
    pinned at 0); the learner's Elo is then fitted against those fixed ratings, so the curve is comparable over time.
    """
    sp = cfg
    opponents = list(sp.eval_opponents or ["random"])  # the first one's win rate is the headline
    ratings: np.ndarray | None = None
    if sp.elo_games > 0 and len(opponents) > 1:
        rated = arena(plugin, env_kwargs, {o: o for o in opponents}, sp.elo_games, seed=seed)
        ratings = np.array([rated["elo"][o] for o in opponents])
        ratings -= ratings[0]
        log.info("%s: evaluation opponents rated %s", name, {o: round(float(r)) for o, r in zip(opponents, ratings)})

    def evaluate(agent: Any) -> dict[str, float]:
        result = evaluate_game(agent, plugin, env_kwargs, opponents, episodes, seed=seed)
        out: dict[str, float] = {}
        for o in opponents:
            out[f"eval/win_rate_vs_{tag(o)}"] = result[o].rate("win")
        for o in opponents:
            out[f"eval/loss_rate_vs_{tag(o)}"] = result[o].rate("loss")
        if ratings is not None:
            k = len(opponents)
            scores, games = np.zeros((k + 1, k + 1)), np.zeros((k + 1, k + 1))
            for j, o in enumerate(opponents):
                r = result[o]
                scores[k, j] = r.wins + 0.5 * r.draws
                scores[j, k] = r.losses + 0.5 * r.draws
                games[k, j] = games[j, k] = r.games
            elo = fit_elo(scores, games, fixed={j: float(ratings[j]) for j in range(k)})
            out["eval/elo"] = float(elo[k])
        return out

    return evaluate
