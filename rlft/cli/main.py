"""The ``rlft`` command line: a thin layer that parses arguments, calls the library and renders results.

Every subcommand has ``--help`` with an example. Errors a user can fix print one paragraph and exit with code 2
(``--debug`` shows the traceback); Ctrl-C exits with 130 and says how to resume. Heavy libraries are imported inside
the commands, so ``rlft --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from rlft.cli import compare, games, llm, pipeline
from rlft.cli.common import setup_logging
from rlft.core.errors import RlftError

COMMANDS = (
    pipeline.register,  # train, record, imitate, finetune, eval, config, stages, envs, check-env
    games.register,     # play, arena, render
    llm.register,       # llm-build, generate, games-to-text
    compare.register,   # compare
)
"""The one command list: each entry adds its subcommands (and sets ``func`` on them)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlft", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="rlft: reinforcement-learning-centric fine-tuning.\n\nexample:\n"
                    "  rlft train configs/cartpole.yaml --run-dir runs/cartpole\n"
                    "  rlft eval runs/cartpole --episodes 50")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rlft`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(getattr(args, "verbose", False), getattr(args, "quiet", False))
    try:
        return int(args.func(args) or 0)
    except RlftError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        run_dir = getattr(args, "run_dir", None)
        hint = f" Resume with: rlft train --run-dir {run_dir} --resume" if run_dir else ""
        print(f"\ninterrupted.{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
