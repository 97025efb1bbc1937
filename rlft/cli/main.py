"""The ``rlft`` command line: a thin layer that parses arguments, calls the library and renders results.

Every subcommand has ``--help`` with an example. Errors a user can fix print one paragraph and exit with code 2
(``--debug`` shows the traceback); Ctrl-C exits with 130 and says how to resume. Heavy libraries are imported inside
the commands, so ``rlft --help`` stays fast.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

from rlft.cli import compare, games, label, llm, pipeline, tune
from rlft.cli.common import setup_logging
from rlft.core import plugins
from rlft.core.errors import RlftError

COMMANDS = (
    pipeline.register,  # train, record, imitate, finetune, eval, config, stages, envs, check-env
    games.register,     # play, arena, render
    llm.register,       # llm-build, models, generate, games-to-text
    label.register,     # label (preference pairs from people or a judge)
    compare.register,   # compare
    tune.register,      # tune
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


_Main = TypeVar("_Main", bound=Callable[..., int])


def _quiet_on_broken_pipe(fn: _Main) -> _Main:
    """A reader that stops early (``rlft config --docs | head``) ends the command quietly, without a traceback."""

    @functools.wraps(fn)
    def wrapper(argv: list[str] | None = None) -> int:
        try:
            code = fn(argv)
            sys.stdout.flush()  # short output is still in the buffer: a closed pipe shows here, not at exit
            return code
        except BrokenPipeError:
            try:  # the interpreter flushes stdout again at exit: send that to /dev/null (Python's documented recipe)
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):  # stdout without a file descriptor (captured in a test)
                pass
            return 141  # 128 + SIGPIPE, what a shell reports for a command whose reader went away
    return cast(_Main, wrapper)


@_quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rlft`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(getattr(args, "verbose", False), getattr(args, "quiet", False))
    try:
        with plugins.trusting(getattr(args, "trust_code", False)):
            return int(args.func(args) or 0)
    except RlftError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        run_dir = getattr(args, "run_dir", None)
        hint = ""
        if run_dir and (Path(run_dir) / "config.yaml").is_file():
            hint = f" Resume with: rlft train --run-dir {run_dir} --resume"
        elif run_dir:
            hint = f" Nothing was saved yet: run the same command again (it may reuse '{run_dir}')."
        print(f"\ninterrupted.{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
