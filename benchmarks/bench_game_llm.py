"""Acceptance figures of an LLM game run (configs/tictactoe_llm.yaml), measured on the real PettingZoo env.

For the run's final agent (``rlft.load_agent(RUN)``), in both seats:

* illegal moves in 400 games (200 vs perfect + 200 vs random; the agent must never play one -- an illegal move would
  raise), and how often the free model (greedy generation, without the constraint) would have been wrong;
* loss rate in 200 games vs perfect minimax (target <= 0.05); win rate in 200 games vs random (target >= 0.75);
* the RL stage against the SFT stage on the opponent mix (W/D/L and mean score vs each opponent, printed side by side);
* optionally an arena with an NN agent (``--nn runs/ttt``): win matrix and Elo.

Usage::

    python benchmarks/bench_game_llm.py runs/ttt-llm [--nn runs/ttt] [--episodes 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

import rlft
from rlft.core.envs import resolve_env
from rlft.policy.games.arena import arena, evaluate_game

MIX = ["perfect", "random", "alphabeta:1", "alphabeta:2"]


def score(r: dict[str, Any]) -> float:
    return float(r["win"] + 0.5 * r["draw"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("--nn", help="an NN agent run for the arena (e.g. runs/ttt)")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    plugin = resolve_env("tictactoe")
    run = Path(args.run)

    final = rlft.load_agent(run, device="cpu")
    result = evaluate_game(final, plugin, {}, ["perfect", "random"], args.episodes, seed=args.seed)
    result = {o: r.to_json() for o, r in result.items()}
    stats = final.move_stats()  # type: ignore[attr-defined]
    games = 2 * args.episodes
    print(f"final agent ({run / 'final'}), {games} games on the real env, both seats:")
    print(f"  illegal moves played: 0 of {int(stats['moves'])} (all {games} games completed; an illegal move raises)")
    print(f"  free model (greedy generation, no constraint) would have been wrong on {stats['illegal_rate']:.4f} "
          f"of moves (unparsable {int(stats['unparsable'])}, illegal {int(stats['illegal'])})")
    p, r = result["perfect"], result["random"]
    print(f"  vs perfect: win {p['win']:.3f} draw {p['draw']:.3f} loss {p['loss']:.3f}   (target: loss <= 0.05)")
    print(f"  vs random:  win {r['win']:.3f} draw {r['draw']:.3f} loss {r['loss']:.3f}   (target: win >= 0.75)")

    print(f"\nRL vs SFT against the opponent mix ({args.episodes} games each, both seats), W/D/L and score:")
    rows: dict[str, dict[str, Any]] = {}
    for stage in ("sft", "rl"):
        folder = run / "stages" / stage
        if folder.is_dir():
            per = evaluate_game(rlft.load_agent(folder, device="cpu"), plugin, {}, MIX, args.episodes,
                                seed=args.seed + 1)
            rows[stage] = {o: r.to_json() for o, r in per.items()}
    for stage, per in rows.items():
        cells = "  ".join(f"{o}: {v['win']:.2f}/{v['draw']:.2f}/{v['loss']:.2f}" for o, v in per.items())
        mean = sum(score(v) for v in per.values()) / len(per)
        lost = sum(v["losses"] for v in per.values())
        print(f"  {stage:4s} mean score {mean:.4f}, games lost {lost} of {args.episodes * len(per)}   {cells}")

    if args.nn:
        res = arena(plugin, {}, {"llm": str(run), "nn": args.nn, "alphabeta:2": "alphabeta:2", "random": "random"},
                    args.episodes // 2, seed=args.seed + 2)
        print("\narena (win rate of row vs column) and Elo:")
        for a in res["players"]:
            cells = "  ".join("  -  " if v is None else f"{v:.2f}" for v in res["win_matrix"][a].values())
            print(f"  {a:12s} {cells}   Elo {res['elo'][a]:.0f}")


if __name__ == "__main__":
    main()
