"""``rlft tune``: hyper-parameter search over a pipeline config with Optuna (see :mod:`rlft.tune.study`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from rlft.cli.common import log, print_table, resolve_config_path, setup_logging, subcommand
from rlft.core.errors import ConfigError, RlftError


def _worker_command(args: argparse.Namespace, config: Path, storage: str, study: str) -> list[str]:
    """The command line of one worker process: the same study, no report, no further workers."""
    cmd = [sys.executable, "-m", "rlft.cli.main", "tune", str(config), "--space", args.space, "--trials",
           str(args.trials), "--run-dir", args.run_dir, "--storage", storage, "--study", study, "--pruner",
           args.pruner, "--heartbeat", str(args.heartbeat), "--worker"]
    for item in args.set:
        cmd += ["--set", item]
    return cmd + [flag for flag, on in (("--quiet", args.quiet), ("--verbose", args.verbose),
                                        ("--trust-code", args.trust_code)) if on]


def _die_with_parent() -> None:
    """Linux: a worker gets SIGKILL when `rlft tune` dies, so a killed study leaves no orphan workers."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_workers(tuner: Any, args: argparse.Namespace, config: Path) -> None:
    """``--workers K``: K worker processes started together (so they share the budget from the first trial)."""
    procs = [subprocess.Popen(_worker_command(args, config, tuner.storage_url, tuner.study_name),
                              preexec_fn=_die_with_parent) for _ in range(args.workers)]
    codes = [p.wait() for p in procs]
    failed = [c for c in codes if c != 0]
    if failed:
        raise RlftError(f"{len(failed)} of {args.workers} tune workers exited with an error (exit codes "
                        f"{sorted(set(failed))}); their messages are above and in {Path(args.run_dir) / 'tune.log'}. "
                        "Fix the cause and run the same command again: the study continues.")


def cmd_tune(args: argparse.Namespace) -> int:
    from rlft.core.config import read_yaml
    from rlft.tune.space import load_space
    from rlft.tune.study import Tuner

    for flag, value, low in (("--trials", args.trials, 1), ("--workers", args.workers, 1),
                             ("--heartbeat", args.heartbeat, 1)):
        if value < low:
            raise ConfigError(f"{flag} {value} is out of range: it must be >= {low}.")
    config = resolve_config_path(args.config)
    assert config is not None
    space = load_space(args.space)
    run_dir = Path(args.run_dir)
    setup_logging(args.verbose, args.quiet, run_dir / "tune.log")
    tuner = Tuner.create(read_yaml(config), args.set, space, run_dir, args.trials, storage=args.storage,
                         study_name=args.study, pruner=args.pruner, heartbeat=args.heartbeat)
    if args.worker or args.workers == 1:
        ran = tuner.work()
        log.info("worker done: %d trials run here; study %s", ran, tuner.counts())
    else:
        log.info("study '%s' in %s: %d trials, %d workers", tuner.study_name, tuner.safe_url, args.trials,
                 args.workers)
        _run_workers(tuner, args, config)
    if not args.worker:
        _report(tuner, run_dir)
    return 0


def _report(tuner: Any, run_dir: Path) -> None:
    from rlft.tune.report import write_report

    summary = write_report(tuner)
    metric = next((r["metric"] for r in summary["top"] if r["metric"] != "-"), "headline")
    rows = [{k: f"{v:.4g}" if isinstance(v, float) else v for k, v in r.items() if k != "metric"}
            for r in summary["top"]]
    print_table(f"study '{tuner.study_name}': top trials by {metric}", rows)
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary["counts"].items()))
    print(f"\n{counts}. Files in {run_dir}: {', '.join(summary['files'])}")
    if summary["best"] is not None:
        print(f"best: trial {summary['best']['trial']} -> rlft train {run_dir / 'best.yaml'}")


def register(sub: Any) -> None:
    """Add ``tune``."""
    p = subcommand(sub, "tune", "hyper-parameter search over a config with Optuna (TPE, median pruner, a database)",
                   "rlft tune configs/cartpole.yaml --space configs/spaces/cartpole.yaml --trials 12 --workers 2 "
                   "--run-dir runs/tune-cartpole")
    p.add_argument("config", help="YAML config or built-in name: the base every trial changes")
    p.add_argument("--space", required=True, help="YAML file mapping config keys to distributions "
                                                  "(e.g. finetune.learning_rate: {log_uniform: [1.0e-5, 1.0e-3]})")
    p.add_argument("--trials", type=int, required=True, help="finished trials (complete + pruned) the study holds")
    p.add_argument("--run-dir", required=True, help="the study folder: trials/<n>/ run folders, study.db, best.yaml")
    p.add_argument("--storage", help="SQLAlchemy URL of the study database (default: sqlite:///DIR/study.db); "
                                     "e.g. postgresql://user:pw@host/db to share one study between machines")
    p.add_argument("--study", help="study name in the database (default: the --run-dir folder's name)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"],
                   help="stops bad trials at a periodic evaluation (default: median)")
    p.add_argument("--heartbeat", type=int, default=10, help="seconds between a trial's heartbeats; a trial silent "
                                                            "for 3x this (its worker was killed) is re-queued")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a config key for every trial, e.g. --set finetune.total_timesteps=8000")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_tune)
