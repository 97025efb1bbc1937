"""``rlft compare``: one table and plot of runs: headline, parameters, time, memory (:mod:`rlft.pipeline.compare`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlft.cli.common import print_table, subcommand


def cmd_compare(args: argparse.Namespace) -> int:
    from rlft.pipeline.compare import COLUMNS, _cell, compare_runs, write_report

    stages = [s for s in args.stages.split(",") if s] if args.stages else None
    rows = compare_runs(args.runs, stages, args.metric or None)
    md, png = write_report(rows, args.out)
    print_table("rlft compare", [{c: _cell(r.get(c), c) for c in COLUMNS} for r in rows])
    print(f"wrote {md} and {png}")
    return 0


def register(sub: Any) -> None:
    """Add ``compare`` to the ``rlft`` command line."""
    p = subcommand(sub, "compare", "compare runs: headline metric, trainable/total parameters, wall time, peak "
                       "memory (table + Markdown + PNG)",
                       "rlft compare runs/txt-full runs/txt-freeze runs/txt-lora --out reports/txt\n"
                       "  rlft compare runs/rlhf runs/dpo --stages sft,dpo,rl --metric eval/sampled_em --out r/")
    p.add_argument("runs", nargs="+", help="run folders (classifier, game-agent or LLM runs)")
    p.add_argument("--out", required=True, help="folder for compare.md and compare.png (created if needed)")
    p.add_argument("--stages", default="", help="one row per listed stage instead of per run, e.g. sft,dpo,rl "
                                                "(a stage two runs share comes from the first)")
    p.add_argument("--metric", default="", help="show this result metric instead of the headline, e.g. "
                                                "eval/sampled_em")
    p.set_defaults(func=cmd_compare)
