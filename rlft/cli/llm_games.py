"""``rlft games-to-text``: recorded games (a Minari dataset from ``rlft record``) -> prompt/completion JSONL.

Registered through ``rlft.cli.main._EXTRA_COMMANDS``. See :mod:`rlft.game_text` and docs/game_llm.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def cmd_games_to_text(args: argparse.Namespace) -> int:
    from rlft.bridges.game_text.convert import games_to_text
    from rlft.core.envs import resolve_env

    counts = games_to_text(args.dataset, resolve_env(args.env), args.out, label_agent=args.label_agent,
                           results=tuple(args.results.split(",")), dedupe=args.dedupe,
                           test_fraction=args.test_fraction, transcripts=args.transcripts, seed=args.seed)
    line = f"wrote {counts['out']}: {counts['rows']} rows ({counts['distinct_prompts']} distinct positions)"
    if "test_out" in counts:
        line += f"; held out {counts['test_rows']} rows -> {counts['test_out']}"
    if "transcripts" in counts:
        line += f"; transcripts -> {counts['transcripts']}"
    print(line)
    return 0


def register(sub: Any, make_subparser: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``games-to-text`` to the ``rlft`` command line."""
    p = make_subparser(sub, "games-to-text", "convert recorded games (both seats) to a prompt/completion text dataset",
                       "rlft games-to-text data/ttt --env tictactoe --label-agent perfect --out data/ttt.jsonl")
    p.add_argument("dataset", help="recorded game dataset (folder or Minari id) from `rlft record`")
    p.add_argument("--env", required=True, help="the env spec (its plugin supplies the text view)")
    p.add_argument("--out", required=True, help="JSONL file to write (prompt, completion, legal, result)")
    p.add_argument("--label-agent", default="", help="relabel every position with this agent's move (e.g. perfect)")
    p.add_argument("--results", default="win,draw,loss", help="keep moves of seats whose game ended so")
    p.add_argument("--dedupe", action="store_true", help="one row per distinct (prompt, completion)")
    p.add_argument("--test-fraction", type=float, default=0.0, help="share of episodes held out in OUT.test.jsonl")
    p.add_argument("--transcripts", help="also write each seat's game as one text document (JSONL, `text` column)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_games_to_text)
