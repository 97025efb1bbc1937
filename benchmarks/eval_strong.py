"""The strong Connect Four agent's acceptance figures: games on the real PettingZoo env, both seats, and the time
per move.

An agent loaded through ``rlft.load_agent`` (a run folder, or ``mcts:RUN,sims=200`` for search over it) plays
``--games`` games against each opponent -- seats alternating, opponents with random tie-breaks (``alphabeta:K``
draws among its best moves) -- and every one of its ``act`` calls is timed. Prints W / D / L per opponent, per seat,
and the mean, 99th-percentile and worst seconds per move; ``--json FILE`` writes them too.

Usage::

    rlft train configs/connect_four_strong.yaml --run-dir runs/c4s
    python benchmarks/eval_strong.py mcts:runs/c4s,sims=200 --opponent alphabeta:2 --opponent alphabeta:4
    python benchmarks/eval_strong.py runs/c4s --opponent random --opponent alphabeta:2 --opponent alphabeta:4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import rlft
from rlft.core.envs import resolve_env
from rlft.policy.agents import resolve_agent
from rlft.policy.games.play import play_games


class Timed:
    """An agent whose every ``act`` is timed (the rest passes through)."""

    def __init__(self, agent: Any) -> None:
        self.agent, self.seconds = agent, []

    def act(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = self.agent.act(*args, **kwargs)
        self.seconds.append(time.perf_counter() - start)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.agent, name)

    def __setattr__(self, name: str, value: Any) -> None:  # e.g. the per-game ``rng`` goes to the agent itself
        if name in ("agent", "seconds"):
            super().__setattr__(name, value)
        else:
            setattr(self.agent, name, value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("agent", help="run folder or mcts:RUN,sims=N")
    parser.add_argument("--opponent", action="append", default=None, help="opponent spec (repeatable)")
    parser.add_argument("--games", type=int, default=200, help="games per opponent, seats alternating")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    plugin = resolve_env("connect_four")
    env = plugin.make()
    agent = Timed(rlft.load_agent(args.agent, env="connect_four"))
    report: dict[str, Any] = {"agent": args.agent, "games": args.games, "opponents": {}}
    for spec in args.opponent or ["random", "alphabeta:2", "alphabeta:4"]:
        agent.seconds.clear()
        opponent = resolve_agent(spec, plugin, seed=args.seed + 1)
        returns = np.array(play_games(env, agent, opponent, range(args.games), seed=args.seed))
        seats = {"first": returns[0::2], "second": returns[1::2]}
        seconds = np.asarray(agent.seconds)
        row = {"win": float(np.mean(returns > 0)), "draw": float(np.mean(returns == 0)),
               "loss": float(np.mean(returns < 0)),
               **{f"win_{s}": float(np.mean(r > 0)) for s, r in seats.items()},
               "s_per_move_mean": float(seconds.mean()), "s_per_move_p99": float(np.percentile(seconds, 99)),
               "s_per_move_over_1s": float(np.mean(seconds > 1.0)), "s_per_move_max": float(seconds.max())}
        report["opponents"][spec] = row
        print(f"{args.agent} vs {spec}: W/D/L {row['win']:.3f} / {row['draw']:.3f} / {row['loss']:.3f} "
              f"(first {row['win_first']:.2f}, second {row['win_second']:.2f}), s/move mean "
              f"{row['s_per_move_mean']:.3f} p99 {row['s_per_move_p99']:.3f} max {row['s_per_move_max']:.3f} "
              f"(over 1 s: {row['s_per_move_over_1s']:.3%})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
