"""What every ``rlft`` subcommand shares: logging, tables, config and run-folder helpers, the subparser factory.

The library never prints; the CLI renders tables (rich) and sends the ``rlft`` logger to the console and
``DIR/run.log``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from rlft.core.errors import ConfigError

log = logging.getLogger("rlft")

DEFAULT_CONFIG = "tictactoe"
"""The built-in config `rlft train` runs when given none: the headline pipeline on a board game, about a minute."""


def setup_logging(verbose: bool, quiet: bool, log_file: Path | None = None) -> None:
    """Console (and optionally file) logging of the ``rlft`` logger; ``quiet`` also silences libraries' bars."""
    logger = logging.getLogger("rlft")
    logger.handlers.clear()
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    console.setFormatter(logging.Formatter("[rlft] %(message)s"))
    logger.addHandler(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.propagate = False
    if quiet:  # the libraries' own progress bars too (model loading, dataset mapping)
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["TQDM_DISABLE"] = "1"


_TEXT_COLUMNS = ("agent", "stage", "opponent", "kind", "headline", "source", "what it does", "name", "description",
                 "run", "metric")


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    """Render rows (dicts with the same keys) as a table on stdout."""
    from rich.console import Console
    from rich.table import Table

    if not rows:
        return
    table = Table(title=title)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for col in columns:
        table.add_column(col, justify="left" if col in _TEXT_COLUMNS else "right")
    for row in rows:
        table.add_row(*[fmt(row.get(c, "")) for c in columns])
    Console(width=max(100, os.get_terminal_size().columns if sys.stdout.isatty() else 120)).print(table)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def result_rows(table: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per evaluated agent (an :class:`~rlft.policy.report.AgentReport` as JSON); W/D/L rows for games."""
    rows = []
    for agent, result in table.items():
        if "per_opponent" in result:  # two-player games: one row per opponent
            for opp, r in result["per_opponent"].items():
                rows.append({"agent": agent, "opponent": opp,
                             **{k: v for k, v in r.items() if k not in ("games_first", "wins_first")}})
            continue
        row = {"agent": agent}
        if "mean_return" in result:
            row["return"] = f"{result['mean_return']:.1f} ± {result['std_return']:.1f}"
            row["episodes"] = result.get("episodes", "")
            row["mean length"] = result.get("mean_length", "")
        else:
            row.update(result)
        rows.append(row)
    return rows


def builtin_config_path(name: str) -> Path | None:
    """The packaged config ``configs/<name>.yaml`` (``rlft train cartpole`` works from any folder)."""
    from importlib import resources

    path = Path(str(resources.files("rlft.configs") / f"{name}.yaml"))
    return path if path.is_file() else None


def resolve_config_path(spec: str | None) -> Path | None:
    """A config file path, or the packaged config of that name."""
    if spec is None:
        return None
    if Path(spec).is_file():
        return Path(spec)
    builtin = builtin_config_path(spec)
    if builtin is not None:
        return builtin
    raise ConfigError(f"Config '{spec}' is neither a YAML file nor a built-in config name. "
                      "Pass a path like configs/cartpole.yaml.")


def load_pipeline_config(path: Path | None, overrides: list[str]) -> Any:
    from rlft.pipeline.config import load_pipeline

    return load_pipeline(path, overrides)


def default_run_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def parse_kwargs(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` flags as a dict (values parsed as YAML)."""
    from rlft.core.config import parse_override

    return dict(parse_override(item) for item in items)


def agent_env(path: str, env: str | None) -> tuple[str, dict[str, Any]]:
    """The env to evaluate an agent on: --env, else the run's config, else the checkpoint's metadata.

    An env read from a file is one the file names: a ``module:Name`` spec there is refused without ``--trust-code``.
    """
    if env is not None:
        return env, {}
    from rlft.core import plugins
    from rlft.core.agent import SEARCH_SPECS
    from rlft.core.envs import resolve_env

    if path.partition(":")[0] in SEARCH_SPECS and not Path(path).exists():  # mcts:RUN,sims=N: RUN's env
        path = path.partition(":")[2].split(",")[0]
    p = Path(path)
    if (p / "config.yaml").is_file():
        source = f"the saved config '{p / 'config.yaml'}'"
        with plugins.code_named_by(source):
            cfg = load_pipeline_config(p / "config.yaml", [])
            resolve_env(cfg.env.id)
        return cfg.env.id, dict(cfg.env.kwargs)
    from rlft.core.agent import agent_folder
    from rlft.core.rundir import read_json

    if p.suffix != ".zip":
        file = agent_folder(p) / "agent.json"
        meta = read_json(file, "agent metadata")
        if meta.get("env"):
            with plugins.code_named_by(f"the agent file '{file}'"):
                resolve_env(str(meta["env"]))
            return str(meta["env"]), {}
    raise ConfigError(f"Cannot tell which env '{path}' plays; pass --env SPEC.")


def common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("-v", "--verbose", action="store_true", help="more log output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    p.add_argument("--trust-code", action="store_true",
                   help="allow `module:Name` / `file.py:Name` plugin specs named in files rlft reads (a run's saved "
                        "config, a checkpoint's agent.json): importing them runs their code")


def subcommand(subparsers: Any, name: str, help: str, example: str, aliases: tuple[str, ...] = ()
               ) -> argparse.ArgumentParser:
    """A subparser with the common flags and ``--help`` that shows an example."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=f"{help}\n\nexample:\n  {example}", aliases=list(aliases),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    common_flags(p)
    return p


def run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", help="run folder (default: runs/<name>-<time>); must be empty unless --resume")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set finetune.total_timesteps=5000 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --run-dir")


def check_count_flags(args: argparse.Namespace, flags: dict[str, tuple[type, str, str]]) -> None:
    """Check count / seed flags by the bounds of the config fields they stand for, before any work starts.

    ``flags`` maps an argument name to (config class, field, dotted config key), e.g.
    ``{"episodes": (RecordConfig, "episodes", "record.episodes")}``; ``--episodes -3`` is a ConfigError (exit 2).
    """
    from rlft.core.config import check_flag

    for attr, (cls, name, key) in flags.items():
        value = getattr(args, attr, None)
        if value is not None:
            check_flag(cls, name, value, f"--{attr.replace('_', '-')}", key)
