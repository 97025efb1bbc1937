"""The ``rlft`` command line: a thin layer that parses arguments, calls the library and renders results.

Every subcommand has ``--help`` with an example. Errors a user can fix print one paragraph and exit with code 2
(``--debug`` shows the traceback); Ctrl-C exits with 130 and says how to resume.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlft.core.errors import ConfigError, RlftError

log = logging.getLogger("rlft")

Handler = Callable[[argparse.Namespace], int]
DEFAULT_CONFIG = "tictactoe"
"""The built-in config `rlft train` runs when given none: the headline pipeline on a board game, ~3-5 min on 2 cores."""
_EXTRA_COMMANDS: list[str] = ["rlft.cli.games", "rlft.cli.compare", "rlft.cli.llm", "rlft.cli.llm_games"]
"""Modules that add subcommands: each has ``register(subparsers) -> None`` (set ``func`` on its parsers)."""


# --------------------------------------------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------------------------------------------


def _setup_logging(verbose: bool, quiet: bool, log_file: Path | None = None) -> None:
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


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    """Render rows (dicts with the same keys) as a table on stdout."""
    from rich.console import Console
    from rich.table import Table

    if not rows:
        return
    table = Table(title=title)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for col in columns:
        table.add_column(col, justify="left" if col in ("agent", "stage", "opponent") else "right")
    for row in rows:
        table.add_row(*[_fmt(row.get(c, "")) for c in columns])
    Console(width=max(100, os.get_terminal_size().columns if sys.stdout.isatty() else 120)).print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def result_rows(table: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per evaluated agent; ``mean ± std`` merged for single-agent envs, W/D/L rows for games."""
    rows = []
    for agent, result in table.items():
        if "per_opponent" in result:  # two-player games: one row per opponent
            for opp, r in result["per_opponent"].items():
                rows.append({"agent": agent, "opponent": opp, **{k: v for k, v in r.items() if k != "opponent"}})
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


# --------------------------------------------------------------------------------------------------------------
# Config helpers
# --------------------------------------------------------------------------------------------------------------


def builtin_config_path(name: str) -> Path | None:
    """The packaged config ``configs/<name>.yaml`` (``rlft train cartpole`` works from any folder)."""
    from importlib import resources

    path = Path(str(resources.files("rlft.configs") / f"{name}.yaml"))
    return path if path.is_file() else None


def resolve_config_path(spec: str | None) -> Path | None:
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
    from rlft.core.config import load_config
    from rlft.pipeline.runner import PipelineConfig

    return load_config(PipelineConfig, path, overrides)


def default_run_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _on_stage_end(stage: str, result: dict[str, Any]) -> None:
    metrics = result.get("metrics", {})
    shown = ", ".join(f"{k} {_fmt(v)}" for k, v in list(metrics.items())[:6] if isinstance(v, int | float))
    log.info("%s done in %.1fs%s", stage, result.get("seconds", 0.0), f": {shown}" if shown else "")


def _run(cfg: Any, run_dir: Path, resume: bool, args: argparse.Namespace,
         initial_outputs: dict[str, Any] | None = None) -> int:
    from rlft.core.rundir import RunDir
    from rlft.pipeline.runner import run_pipeline

    if int(os.environ.get("RANK", "0")) > 0:  # a worker of `accelerate launch`: rank 0 owns the run folder
        import tempfile

        run_dir, resume = Path(tempfile.mkdtemp(prefix=f"rlft-rank{os.environ['RANK']}-")), False
    run = RunDir.create(run_dir, resume=resume)
    _setup_logging(args.verbose, args.quiet, run_dir / "run.log")
    start = time.time()
    results = run_pipeline(cfg, run, resume=resume, progress=not args.quiet, on_stage_end=_on_stage_end,
                           initial_outputs=initial_outputs)
    if "eval" in results and "table" in results["eval"]:
        print_table(f"{cfg.name}: evaluation ({cfg.eval.episodes} episodes per agent)",
                    result_rows(results["eval"]["table"]))
    log.info("run finished in %.1fs -> %s (final agent: %s)", time.time() - start, run_dir, run_dir / "final")
    return 0


# --------------------------------------------------------------------------------------------------------------
# Subcommands
# --------------------------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from rlft.core.config import read_yaml

    if args.resume:
        if args.run_dir is None:
            raise ConfigError("--resume needs --run-dir DIR: the run folder to continue.")
        run_dir = Path(args.run_dir)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            from rlft.core.errors import RunDirError

            raise RunDirError(f"Nothing to resume in '{run_dir}': it has no config.yaml. Start a new run instead.")
        if args.set:
            raise ConfigError("--set cannot change a run while resuming it (the run continues with its saved "
                              f"config '{saved}'). Start a new run to change settings.")
        if args.config is not None:
            given = load_pipeline_config(resolve_config_path(args.config), [])
            from rlft.core.config import to_dict

            if to_dict(given) != read_yaml(saved):
                raise ConfigError(f"The config '{args.config}' differs from the one the run in '{run_dir}' was "
                                  "started with; resume without CONFIG to continue it as it was.")
        cfg = load_pipeline_config(saved, [])
        return _run(cfg, run_dir, True, args)
    path = resolve_config_path(args.config or DEFAULT_CONFIG)
    cfg = load_pipeline_config(path, args.set)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(cfg.name)
    return _run(cfg, run_dir, False, args)


def _stage_command(stage: str) -> Handler:
    """A handler running one pipeline stage alone (flags map onto config keys)."""

    def handler(args: argparse.Namespace) -> int:
        overrides = [f"stages=[{stage}]"]
        for key, attr in _STAGE_FLAGS[stage]:
            value = getattr(args, attr, None)
            if value is not None:
                overrides.append(f"{key}={value}")
        if args.env is not None:
            overrides.append(f"env.id={args.env}")
        overrides += args.set
        path = resolve_config_path(args.config) if args.config else None
        if args.resume:
            cfg = load_pipeline_config(Path(args.run_dir) / "config.yaml", [])
        else:
            cfg = load_pipeline_config(path, overrides)
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(f"{cfg.name}-{stage}")
        return _run(cfg, run_dir, args.resume, args)

    return handler


_STAGE_FLAGS: dict[str, list[tuple[str, str]]] = {
    "imitate": [("imitate.dataset", "dataset"), ("imitate.init", "init"), ("imitate.epochs", "epochs")],
    "finetune": [("finetune.init", "init"), ("finetune.total_timesteps", "timesteps")],
}


def cmd_record(args: argparse.Namespace) -> int:
    from rlft.policy.stages.record import record

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        from rlft.core.errors import DatasetError

        raise DatasetError(f"The dataset folder '{out}' already exists and is not empty; rlft never overwrites "
                           "recorded games. Choose another --out.")
    _setup_logging(args.verbose, args.quiet)
    kwargs = _parse_kwargs(args.env_kwarg)
    record(args.env, args.agent, args.episodes, out, seed=args.seed, env_kwargs=kwargs,
           deterministic=not args.sample, trust_pickle=args.trust_pickle, progress=not args.quiet)
    return 0


def _parse_kwargs(items: list[str]) -> dict[str, Any]:
    from rlft.core.config import parse_override

    return dict(parse_override(item) for item in items)


def _agent_env(path: str, env: str | None) -> tuple[str, dict[str, Any]]:
    """The env to evaluate an agent on: --env, else the run's config, else the checkpoint's metadata."""
    if env is not None:
        return env, {}
    p = Path(path)
    if (p / "config.yaml").is_file():
        cfg = load_pipeline_config(p / "config.yaml", [])
        return cfg.env.id, dict(cfg.env.kwargs)
    from rlft.core.agent import agent_folder
    from rlft.core.rundir import read_json

    if p.suffix != ".zip":
        meta = read_json(agent_folder(p) / "agent.json", "agent metadata")
        if meta.get("env"):
            return str(meta["env"]), {}
    raise ConfigError(f"Cannot tell which env '{path}' plays; pass --env SPEC.")


def cmd_eval(args: argparse.Namespace) -> int:
    from rlft.core.agent import load_agent
    from rlft.policy.stages.eval import evaluate_agent

    _setup_logging(args.verbose, args.quiet)
    env_spec, env_kwargs = _agent_env(args.agent, args.env)
    env_kwargs.update(_parse_kwargs(args.env_kwarg))
    agent = load_agent(args.agent, trust_pickle=args.trust_pickle, env=env_spec)
    result = evaluate_agent(agent, env_spec, env_kwargs, args.episodes, args.seed, deterministic=not args.sample,
                            opponents=args.opponent or None, progress=not args.quiet)
    print_table(f"{args.agent} on {env_spec}", result_rows({args.agent: result}))
    if args.json:
        import json

        print(json.dumps(result))
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from rlft.core.plugins import entry_point_names
    from rlft.envs import BUILTIN_ENVS

    rows = [{"name": name, "source": "built-in", "agents": ", ".join(p.agents) or "-", "description": p.description}
            for name, p in BUILTIN_ENVS.items()]
    rows += [{"name": name, "source": f"entry point ({value})", "agents": "", "description": ""}
             for name, value in entry_point_names("rlft.envs").items()]
    print_table("rlft env plugins", rows)
    if args.all:
        print("\nGymnasium ids:\n  " + "\n  ".join(sorted(gym.registry)))
    else:
        print(f"\n{len(gym.registry)} Gymnasium ids are also available by id (e.g. CartPole-v1); "
              "`rlft envs --all` lists them. Any factory works as 'path/to/file.py:make_env' or 'pkg.module:make_env'.")
    return 0


def cmd_check_env(args: argparse.Namespace) -> int:
    from rlft.core.envs import check_env, resolve_env

    plugin = resolve_env(args.spec)
    warnings = check_env(plugin, _parse_kwargs(args.env_kwarg))
    for w in warnings:
        print(f"warning: {w}")
    print(f"OK: '{args.spec}' passes the {'API checks' if warnings is not None else 'checks'} "
          f"({len(warnings)} warning{'s' if len(warnings) != 1 else ''}).")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    import dataclasses

    import yaml

    from rlft.core.config import field_docs, to_dict

    cfg = load_pipeline_config(resolve_config_path(args.config) if args.config else None, args.set)
    if not args.docs:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0

    def walk(obj: Any, prefix: str) -> None:
        docs = field_docs(type(obj))
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                print(f"\n# {key}: {docs.get(f.name, '')}")
                walk(value, key + ".")
            else:
                print(f"{key} = {value!r}\n    {docs.get(f.name, '')}")

    walk(cfg, "")
    return 0


# --------------------------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("-v", "--verbose", action="store_true", help="more log output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")


def _sub(subparsers: Any, name: str, help: str, example: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=f"{help}\n\nexample:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    return p


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", help="run folder (default: runs/<name>-<time>); must be empty unless --resume")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set finetune.total_timesteps=5000 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --run-dir")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlft", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="rlft: reinforcement-learning-centric fine-tuning.\n\nexample:\n"
                    "  rlft train configs/cartpole.yaml --run-dir runs/cartpole\n"
                    "  rlft eval runs/cartpole --episodes 50")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _sub(sub, "train", "run a pipeline config (record -> imitate -> finetune -> eval, or LLM stages)",
             "rlft train configs/cartpole.yaml --run-dir runs/cartpole --set finetune.total_timesteps=30000")
    p.add_argument("config", nargs="?", help=f"YAML config or built-in name (default: {DEFAULT_CONFIG})")
    _run_flags(p)
    p.set_defaults(func=cmd_train)

    p = _sub(sub, "record", "record games of an agent as a Minari dataset",
             "rlft record --env cartpole --agent expert --episodes 50 --out data/cartpole-expert")
    p.add_argument("--env", required=True, help="env spec (name, Gymnasium id, module:factory, file.py:factory)")
    p.add_argument("--agent", default="expert", help="built-in agent, run/checkpoint/.zip, or module:Class")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--out", required=True, help="dataset folder to create")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample", action="store_true", help="sample actions instead of acting greedily")
    p.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE", help="env factory argument")
    p.add_argument("--trust-pickle", action="store_true", help="allow a full SB3 .zip load (executes pickled code)")
    p.set_defaults(func=cmd_record)

    p = _sub(sub, "imitate", "behaviour-clone a recorded dataset into a policy (+ critic warm-up)",
             "rlft imitate --env cartpole --dataset data/cartpole-expert --run-dir runs/bc")
    p.add_argument("--config", help="optional YAML config for the other settings")
    p.add_argument("--env", help="env spec the dataset was recorded on")
    p.add_argument("--dataset", help="Minari dataset folder or local dataset id")
    p.add_argument("--init", help="start from this run/checkpoint/.zip instead of a fresh network")
    p.add_argument("--epochs", type=int)
    _run_flags(p)
    p.set_defaults(func=_stage_command("imitate"))

    p = _sub(sub, "finetune", "PPO fine-tuning (KL penalty to the starting policy) from a policy or from scratch",
             "rlft finetune --env cartpole --init runs/bc --run-dir runs/ppo --timesteps 20000")
    p.add_argument("--config", help="optional YAML config for the other settings")
    p.add_argument("--env", help="env spec")
    p.add_argument("--init", help="`scratch`, or a run/checkpoint/.zip to start from (default: scratch)")
    p.add_argument("--timesteps", type=int, help="total env steps")
    _run_flags(p)
    p.set_defaults(func=_stage_command("finetune"))

    p = _sub(sub, "eval", "evaluate an agent (run folder, checkpoint or SB3 .zip)",
             "rlft eval runs/cartpole --episodes 50")
    p.add_argument("agent", help="run folder, checkpoint folder, or SB3 .zip")
    p.add_argument("--env", help="env spec (default: the run's env)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=100_000, help="first episode seed")
    p.add_argument("--opponent", action="append", default=[], help="games: opponent spec (repeatable)")
    p.add_argument("--sample", action="store_true", help="sample actions instead of acting greedily")
    p.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--trust-pickle", action="store_true", help="allow a full SB3 .zip load (executes pickled code)")
    p.add_argument("--json", action="store_true", help="also print the result as JSON")
    p.set_defaults(func=cmd_eval)

    p = _sub(sub, "envs", "list env plugins", "rlft envs --all")
    p.add_argument("--all", action="store_true", help="also list every Gymnasium id")
    p.set_defaults(func=cmd_envs)

    p = _sub(sub, "check-env", "check an env plugin against the Gymnasium / PettingZoo API",
             "rlft check-env path/to/my_env.py:make_env")
    p.add_argument("spec", help="env spec")
    p.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_check_env)

    p = _sub(sub, "config", "print a resolved config (defaults < file < --set), or every key with its doc",
             "rlft config configs/cartpole.yaml --docs")
    p.add_argument("config", nargs="?", help="YAML config or built-in name (default: built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--docs", "--show", action="store_true", help="list every key with its default and doc")
    p.set_defaults(func=cmd_config)

    import importlib

    for module in _EXTRA_COMMANDS:
        try:
            importlib.import_module(module).register(sub, _sub)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rlft`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _setup_logging(getattr(args, "verbose", False), getattr(args, "quiet", False))
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
