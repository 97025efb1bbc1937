"""Game subcommands of the ``rlft`` CLI: ``play`` (a human against an agent), ``arena`` (round robin + Elo; its games
optionally in Ray actors, ``--ray-actors K``) and ``render`` (a GIF of one game).

Registered by :mod:`rlft.cli.main` through ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from rlft.cli.common import agent_env, check_count_flags, print_table, subcommand
from rlft.core.config import param
from rlft.core.errors import ConfigError, DatasetError, PluginError


@dataclass
class GameFlags:
    """Bounds of the game commands' flags that stand for no config key (``--games``, ``--fps``)."""

    games: int = param(1, ge=1)
    """`rlft play`: games to play."""
    fps: int = param(2, ge=1)
    """`rlft render`: frames per second of the GIF."""


def _check_flags(args: argparse.Namespace, *names: str) -> None:
    """``--episodes`` / ``--seed`` by the bounds of the config keys they stand for; ``--games`` / ``--fps`` by
    :class:`GameFlags` (so ``--episodes 0`` is an error naming the flag, exit code 2)."""
    from rlft.pipeline.config import PipelineConfig
    from rlft.policy.config import EvalConfig

    known: dict[str, tuple[type, str, str]] = {
        "episodes": (EvalConfig, "episodes", "eval.episodes"), "seed": (PipelineConfig, "seed", "seed"),
        "ray_actors": (EvalConfig, "ray_actors", "eval.ray_actors"),
        "games": (GameFlags, "games", ""), "fps": (GameFlags, "fps", "")}
    check_count_flags(args, {name: known[name] for name in names})


def _game(env_spec: str) -> Any:
    """The env plugin of a two-player game; a single-agent env is a clear error (these commands play games)."""
    from rlft.core.envs import is_pettingzoo, resolve_env

    plugin = resolve_env(env_spec)
    probe = plugin.make()
    two_player = is_pettingzoo(probe)
    probe.close()
    if not two_player:
        raise ConfigError(f"'{env_spec}' is a single-agent env; play, arena and render need a two-player game "
                          "(connect_four, tictactoe, or a PettingZoo plugin). Use `rlft eval` for a single-agent env.")
    return plugin


def _env_of(agent: str, env: str | None) -> str:
    """The env a game command runs: --env, else the one of the agent's run or checkpoint."""
    if env:
        return env
    if Path(agent).exists():
        return agent_env(agent, None)[0]
    raise ConfigError("Pass --env (e.g. --env connect_four): the agent is not a run folder that names its env.")


def _text_renderer(plugin: Any) -> Callable[[np.ndarray, int], str]:
    """The plugin's text board (``extras["render_text"]``), or a plain dump of the planes."""
    from rlft.core.plugins import import_object

    spec = plugin.extras.get("render_text")
    if spec:
        return import_object(spec, "renderer")  # type: ignore[no-any-return]

    def planes(observation: np.ndarray, mover: int) -> str:
        return str(np.asarray(observation)[..., 0] - np.asarray(observation)[..., 1])

    return planes


class HumanAgent:
    """An agent that shows the board and asks a person for a move on a text stream (re-asks on bad input)."""

    def __init__(self, seat: int, render: Callable[[np.ndarray, int], str], stdin: TextIO | None = None,
                 stdout: TextIO | None = None) -> None:
        self.seat = seat
        self.render = render
        self.stdin = stdin or sys.stdin  # looked up now, not at import, so redirected streams are honoured
        self.stdout = stdout or sys.stdout

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> int:
        legal = [int(a) for a in np.flatnonzero(np.asarray(action_mask))]
        print("\n" + self.render(observation, self.seat), file=self.stdout)
        while True:
            print(f"your move {legal}: ", end="", file=self.stdout, flush=True)
            line = self.stdin.readline()
            if not line:  # end of input: stop like Ctrl-C
                raise KeyboardInterrupt
            text = line.strip()
            if text in ("q", "quit", "exit"):
                raise KeyboardInterrupt
            try:
                move = int(text)
            except ValueError:
                print(f"'{text}' is not a move; type one of {legal} (q quits).", file=self.stdout)
                continue
            if move not in legal:
                print(f"{move} is not legal here; legal moves are {legal}.", file=self.stdout)
                continue
            return move


def cmd_play(args: argparse.Namespace) -> int:
    from rlft.policy.agents import resolve_agent
    from rlft.policy.games.play import GameResult, play_game, write_games
    from rlft.policy.report import result_of

    _check_flags(args, "games", "seed")
    if args.save and Path(args.save).exists() and any(Path(args.save).iterdir()):  # before, not after, the games
        raise DatasetError(f"The folder '{args.save}' already exists and is not empty; rlft never overwrites recorded "
                           "games. Choose another --save folder.")
    env_spec = _env_of(args.agent, args.env)
    plugin = _game(env_spec)
    env = plugin.make()
    seats = list(env.possible_agents)
    render = _text_renderer(plugin)
    agent = resolve_agent(args.agent, plugin, action_space=env.action_space(seats[0]), seed=args.seed)
    played: list[GameResult] = []
    score = {"win": 0, "draw": 0, "loss": 0}
    try:
        for game in range(args.games):
            me = args.seat if args.seat in (0, 1) else game % 2
            human = HumanAgent(me, render)
            print(f"\ngame {game + 1}: you are {'X (first)' if me == 0 else 'O (second)'}")
            result = play_game(env, {seats[me]: human, seats[1 - me]: agent}, seed=args.seed + game,
                               record=bool(args.save))
            final = env.observe(seats[me])["observation"]
            print("\n" + render(final, me))
            r = result.returns[seats[me]]
            outcome = result_of(r)
            score[outcome] += 1
            print({"win": "You win!", "loss": "You lose.", "draw": "Draw."}[outcome])
            played.append(result)
    except KeyboardInterrupt:
        print("\nbye.")
    finally:
        env.close()
    print(f"score: {score['win']} won, {score['draw']} drawn, {score['loss']} lost")
    if args.save and played:
        path = write_games(args.save, played, plugin.make(),
                           {"rlft_env": env_spec, "rlft_agent": f"human vs {args.agent}",
                            "description": f"a human playing {args.agent} on {env_spec}"})
        print(f"saved {len(played)} game(s) to {path}")
    return 0


def cmd_arena(args: argparse.Namespace) -> int:
    import json

    from rlft.policy.games.arena import arena
    from rlft.policy.games.ray_games import RayGames

    _check_flags(args, "episodes", "seed", "ray_actors")
    if len(args.agents) < 2:
        raise ConfigError("The arena needs at least two agents.")
    env_spec = _env_of(args.agents[0], args.env)
    plugin = _game(env_spec)
    names = {a: a for a in dict.fromkeys(args.agents)}
    result = arena(plugin, {}, names, args.episodes, seed=args.seed, deterministic=not args.sample,
                   progress=not args.quiet, ray=RayGames(args.ray_actors) if args.ray_actors else None)
    rows = [{"agent": a, "elo": result["elo"][a],
             **{f"vs {b}": ("-" if v is None else v) for b, v in result["win_matrix"][a].items()}}
            for a in sorted(result["players"], key=lambda a: -result["elo"][a])]
    print_table(f"arena on {env_spec}: win rate of row vs column ({args.episodes} games per pair)", rows)
    if args.json:
        print(json.dumps(result))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    import imageio.v2 as imageio

    from rlft.policy.agents import resolve_agent
    from rlft.policy.games.play import play_game

    _check_flags(args, "seed", "fps")
    env_spec = _env_of(args.first, args.env)
    plugin = _game(env_spec)
    env = plugin.make(render_mode="rgb_array")
    seats = list(env.possible_agents)
    space = env.action_space(seats[0])
    players = {seats[0]: resolve_agent(args.first, plugin, action_space=space, seed=args.seed),
               seats[1]: resolve_agent(args.second, plugin, action_space=space, seed=args.seed + 1)}
    frames: list[Any] = []

    def grab(e: Any) -> None:
        frame = e.render()
        if frame is None:
            raise PluginError(f"'{env_spec}' returned no frame in rgb_array render mode.")
        frames.append(np.asarray(frame))

    result = play_game(env, players, seed=args.seed, on_position=grab)
    frames += [frames[-1]] * 3  # hold the final position
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(args.out, frames, duration=1000 // args.fps, loop=0)
    env.close()
    print(f"wrote {args.out}: {result.moves} moves, result {result.returns}")
    return 0


def register(sub: Any) -> None:
    """Add ``play``, ``arena`` and ``render`` to the ``rlft`` command line."""
    p = subcommand(sub, "play", "play a two-player game against an agent in the terminal",
                       "rlft play runs/c4 --env connect_four --seat 0 --save data/my-games")
    p.add_argument("agent", help="the opponent: a run/checkpoint, or a built-in agent (alphabeta:2, perfect, random)")
    p.add_argument("--env", help="env spec (default: the run's env)")
    p.add_argument("--seat", type=int, choices=[0, 1], help="0 = move first, 1 = second (default: alternate)")
    p.add_argument("--games", type=int, default=1, help="number of games")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", metavar="DIR", help="save your games (both seats) as a Minari dataset in DIR")
    p.set_defaults(func=cmd_play)

    p = subcommand(sub, "arena", "round robin between agents: win matrix and Elo ratings",
                       "rlft arena runs/c4 alphabeta:2 random --env connect_four --episodes 100")
    p.add_argument("agents", nargs="+", help="agent specs: runs, checkpoints, built-in agents, module:Class")
    p.add_argument("--env", help="env spec (default: the first agent's run env)")
    p.add_argument("--episodes", type=int, default=100, help="games per pair (half in each seat)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample", action="store_true", help="policies sample moves instead of playing greedily")
    p.add_argument("--ray-actors", type=int, default=0, metavar="K",
                   help="play the games in K Ray actors (RAY_ADDRESS, else a local Ray; needs rlft[ray]), with the "
                        "same results as in this process (default 0: in this process)")
    p.add_argument("--json", action="store_true", help="also print the result as JSON")
    p.set_defaults(func=cmd_arena)

    p = subcommand(sub, "render", "write a GIF of one game between two agents",
                       "rlft render runs/c4 alphabeta:2 --env connect_four --out game.gif")
    p.add_argument("first", help="agent in the first seat")
    p.add_argument("second", help="agent in the second seat")
    p.add_argument("--env", help="env spec (default: the first agent's run env)")
    p.add_argument("--out", default="game.gif", help="GIF file to write")
    p.add_argument("--fps", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_render)
