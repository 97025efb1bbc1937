"""``rlft compare``: one table and plot of runs: headline, parameters, time, memory (:mod:`rlft.pipeline.compare`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlft.cli.common import print_table, subcommand


def cmd_compare(args: argparse.Namespace) -> int:
    from rlft.pipeline.compare import COLUMNS, _cell, compare_runs, write_report

    rows = compare_runs(args.runs)
    md, png = write_report(rows, args.out)
    print_table("rlft compare", [{c: _cell(r.get(c), c) for c in COLUMNS} for r in rows])
    print(f"wrote {md} and {png}")
    return 0


def register(sub: Any) -> None:
    """Add ``compare`` to the ``rlft`` command line."""
    p = subcommand(sub, "compare", "compare runs: headline metric, trainable/total parameters, wall time, peak "
                       "memory (table + Markdown + PNG)",
                       "rlft compare runs/txt-full runs/txt-freeze runs/txt-lora --out reports/txt")
    p.add_argument("runs", nargs="+", help="run folders (classifier, game-agent or LLM runs)")
    p.add_argument("--out", required=True, help="folder for compare.md and compare.png (created if needed)")
    p.set_defaults(func=cmd_compare)
