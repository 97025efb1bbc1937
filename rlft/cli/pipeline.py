"""Pipeline subcommands: ``train``, the stages alone (``record``, ``imitate``, ``finetune``, ``eval``), ``config``,
``stages``, ``envs`` and ``check-env``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlft.cli.common import (
    DEFAULT_CONFIG,
    agent_env,
    check_count_flags,
    default_run_dir,
    fmt,
    load_pipeline_config,
    log,
    parse_kwargs,
    print_table,
    resolve_config_path,
    result_rows,
    run_flags,
    setup_logging,
    subcommand,
)
from rlft.core import plugins
from rlft.core.errors import ConfigError, DatasetError, RunDirError

Handler = Callable[[argparse.Namespace], int]


def _on_stage_end(stage: str, result: Any) -> None:
    headline = f", {result.headline.name} {fmt(result.headline.value)}" if result.headline else ""
    log.info("%s done in %.1fs%s", stage, result.seconds, headline)


def _run(cfg: Any, run_dir: Path, resume: bool, args: argparse.Namespace) -> int:
    from rlft.core.rundir import RunDir
    from rlft.pipeline.config import pipeline_yaml
    from rlft.pipeline.runner import run_pipeline

    if int(os.environ.get("RANK", "0")) > 0:  # a worker of `accelerate launch`: rank 0 owns the run folder
        import tempfile

        run_dir, resume = Path(tempfile.mkdtemp(prefix=f"rlft-rank{os.environ['RANK']}-")), False
    run = RunDir.create(run_dir, resume=resume, config=None if resume else pipeline_yaml(cfg))
    setup_logging(args.verbose, args.quiet, run_dir / "run.log")
    start = time.time()
    results = run_pipeline(cfg, run, resume=resume, progress=not args.quiet, on_stage_end=_on_stage_end)
    for name, result in results.items():
        if "table" in result.details:
            section = cfg.section(name)
            print_table(f"{cfg.name}: {name} ({section.episodes} episodes per agent)",
                        result_rows(result.details["table"]))
    print_table(f"{cfg.name}: stages", [
        {"stage": name, "kind": cfg.kinds[name], "headline": r.headline.name if r.headline else "-",
         "value": r.headline.value if r.headline else "-", "seconds": r.seconds} for name, r in results.items()])
    log.info("run finished in %.1fs -> %s (final: %s)", time.time() - start, run_dir, run_dir / "final")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from rlft.pipeline.config import pipeline_to_dict

    if args.resume:
        if args.run_dir is None:
            raise ConfigError("--resume needs --run-dir DIR: the run folder to continue.")
        run_dir = Path(args.run_dir)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise RunDirError(f"Nothing to resume in '{run_dir}': it has no config.yaml. Start a new run instead.")
        if args.set:
            raise ConfigError("--set cannot change a run while resuming it (the run continues with its saved "
                              f"config '{saved}'). Start a new run to change settings.")
        if args.config is not None:
            given = load_pipeline_config(resolve_config_path(args.config), [])
            # both read through today's config classes: a field added since the run started is no difference
            if pipeline_to_dict(given) != pipeline_to_dict(load_pipeline_config(saved, [])):
                raise ConfigError(f"The config '{args.config}' differs from the one the run in '{run_dir}' was "
                                  "started with; resume without CONFIG to continue it as it was.")
        with plugins.code_named_by(f"the saved config '{saved}'"):
            return _run(load_pipeline_config(saved, []), run_dir, True, args)
    cfg = load_pipeline_config(resolve_config_path(args.config or DEFAULT_CONFIG), args.set)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(cfg.name)
    return _run(cfg, run_dir, False, args)


_STAGE_FLAGS: dict[str, list[tuple[str, str]]] = {
    "imitate": [("imitate.dataset", "dataset"), ("imitate.start_from", "init"), ("imitate.epochs", "epochs")],
    "finetune": [("finetune.start_from", "init"), ("finetune.total_timesteps", "timesteps")],
}


def _stage_command(stage: str) -> Handler:
    """A handler running one pipeline stage alone (flags map onto config keys)."""

    def handler(args: argparse.Namespace) -> int:
        overrides = [f"stages=[{stage}]"]
        for key, attr in _STAGE_FLAGS[stage]:
            value = getattr(args, attr, None)
            if isinstance(value, int):  # the bounds of the config key, with an error naming the flag
                _check_stage_flag(key, value, f"--{attr}")
            if value is not None:
                overrides.append(f"{key}={_yaml_value(value)}")
        if stage == "finetune" and args.init is None and not args.config:
            overrides.append("finetune.start_from=scratch")  # alone, there is no earlier stage to start from
        if args.env is not None:
            overrides.append(f"env.id={_yaml_value(args.env)}")
        overrides += args.set
        if args.resume:
            if args.run_dir is None:
                raise ConfigError("--resume needs --run-dir DIR: the run folder to continue.")
            saved = Path(args.run_dir) / "config.yaml"
            with plugins.code_named_by(f"the saved config '{saved}'"):
                return _run(load_pipeline_config(saved, []), Path(args.run_dir), True, args)
        cfg = load_pipeline_config(resolve_config_path(args.config) if args.config else None, overrides)
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(f"{cfg.name}-{stage}")
        return _run(cfg, run_dir, False, args)

    return handler


def _yaml_value(value: Any) -> str:
    """A flag's value as the text of a ``--set`` override: strings quoted, so `--env on` stays the string 'on'."""
    import json

    return json.dumps(value) if isinstance(value, str) else str(value)


def _check_stage_flag(key: str, value: int, flag: str) -> None:
    """``--epochs`` / ``--timesteps``: the bounds of the config key they set (imitate.epochs, ...)."""
    from rlft.core.config import check_flag
    from rlft.pipeline.registry import resolve_stage

    section, name = key.split(".")
    check_flag(resolve_stage(section).config_class(), name, value, flag, key)


def cmd_record(args: argparse.Namespace) -> int:
    from rlft.pipeline.config import PipelineConfig
    from rlft.policy.config import RecordConfig
    from rlft.policy.stages.record import record

    check_count_flags(args, {"episodes": (RecordConfig, "episodes", "record.episodes"),
                             "seed": (PipelineConfig, "seed", "seed")})
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"The dataset folder '{out}' already exists and is not empty; rlft never overwrites "
                           "recorded games. Choose another --out.")
    setup_logging(args.verbose, args.quiet)
    record(args.env, args.agent, args.episodes, out, seed=args.seed, env_kwargs=parse_kwargs(args.env_kwarg),
           deterministic=not args.sample, trust_pickle=args.trust_pickle, progress=not args.quiet)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rlft.core.agent import load_agent
    from rlft.policy.config import EvalConfig
    from rlft.policy.evaluate import evaluate_agent
    from rlft.policy.games.ray_games import RayGames

    check_count_flags(args, {"episodes": (EvalConfig, "episodes", "eval.episodes"),
                             "seed": (EvalConfig, "seed", "eval.seed"),
                             "ray_actors": (EvalConfig, "ray_actors", "eval.ray_actors")})
    setup_logging(args.verbose, args.quiet)
    env_spec, env_kwargs = agent_env(args.agent, args.env)
    env_kwargs.update(parse_kwargs(args.env_kwarg))
    with plugins.user_given(args.env or ""):  # the games in Ray actors load the agent under the same rules
        agent = load_agent(args.agent, trust_pickle=args.trust_pickle, env=env_spec)
        if args.positions:
            return _eval_positions(agent, args, env_spec)
        ray = RayGames(args.ray_actors, agent=args.agent, trust_pickle=args.trust_pickle) if args.ray_actors else None
        report = evaluate_agent(agent, env_spec, env_kwargs, args.episodes, args.seed, deterministic=not args.sample,
                                opponents=args.opponent or None, progress=not args.quiet, ray=ray)
    print_table(f"{args.agent} on {env_spec}", result_rows({args.agent: report.to_json()}))
    if args.json:
        import json

        print(json.dumps(report.to_json()))
    return 0


def _eval_positions(agent: Any, args: argparse.Namespace, env_spec: str) -> int:
    """``rlft eval AGENT --positions FILE``: shares of optimal and outcome-preserving moves on labelled positions."""
    from rlft.policy.games.positions import read_positions, score_positions
    from rlft.policy.search import game_state_class

    score = score_positions(agent, game_state_class(env_spec), read_positions(args.positions),
                            deterministic=not args.sample)
    scalars = score.scalars()
    rows = [{"positions": "all", "n": score.positions, "optimal": f"{scalars['optimal_share']:.3f}",
             "outcome-preserving": f"{scalars['outcome_preserving_share']:.3f}"}]
    rows += [{"positions": stage, "n": n, "optimal": f"{opt / n:.3f}", "outcome-preserving": f"{keep / n:.3f}"}
             for stage, (n, opt, keep) in sorted(score.by_stage.items())]
    print_table(f"{args.agent} on {args.positions}", rows)
    if args.json:
        import json

        print(json.dumps(scalars))
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from rlft.core.envs import builtin_envs
    from rlft.core.plugins import entry_point_names

    rows = [{"name": name, "source": "built-in", "agents": ", ".join(p.agents) or "-", "description": p.description}
            for name, p in builtin_envs().items()]
    rows += [{"name": name, "source": f"entry point ({value})", "agents": "", "description": ""}
             for name, value in entry_point_names("rlft.envs").items()]
    print_table("rlft env plugins", rows)
    if args.all:
        print("\nGymnasium ids:\n  " + "\n  ".join(sorted(gym.registry)))
    else:
        print(f"\n{len(gym.registry)} Gymnasium ids are also available by id (e.g. CartPole-v1); "
              "`rlft envs --all` lists them. Any factory works as 'path/to/file.py:make_env' or 'pkg.module:make_env'.")
    return 0


def cmd_stages(args: argparse.Namespace) -> int:
    from rlft.core.errors import RlftError
    from rlft.pipeline.registry import BUILTIN_STAGES, installed_stages, resolve_stage

    def summary(name: str) -> str:
        try:
            return resolve_stage(name).summary
        except RlftError as e:  # a broken plugin is listed, with why it cannot load
            return f"(cannot load: {e})"

    rows = [{"stage": name, "source": "built-in", "what it does": s.summary} for name, s in BUILTIN_STAGES.items()]
    rows += [{"stage": name, "source": f"entry point ({value})", "what it does": summary(name)}
             for name, value in installed_stages().items()]
    print_table("rlft stages", rows)
    return 0


def cmd_check_env(args: argparse.Namespace) -> int:
    from rlft.core.envs import check_env, resolve_env

    warnings = check_env(resolve_env(args.spec), parse_kwargs(args.env_kwarg))
    for w in warnings:
        print(f"warning: {w}")
    print(f"OK: '{args.spec}' passes the API checks ({len(warnings)} warning{'s' if len(warnings) != 1 else ''}).")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from rlft.core.config import field_docs
    from rlft.pipeline.config import pipeline_to_dict

    cfg = load_pipeline_config(resolve_config_path(args.config) if args.config else None, args.set)
    if not args.docs:
        print(yaml.safe_dump(pipeline_to_dict(cfg), sort_keys=False), end="")
        return 0

    def walk(obj: Any, prefix: str) -> None:
        docs = field_docs(type(obj))
        for f in dataclasses.fields(obj):
            if f.metadata.get("internal"):
                continue
            value = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                print(f"\n# {key}: {docs.get(f.name, '')}")
                walk(value, key + ".")
            else:
                print(f"{key} = {value!r}\n    {docs.get(f.name, '')}")

    walk(cfg, "")
    for name, section in cfg.sections.items():
        print(f"\n# {name}: stage of kind `{cfg.kinds[name]}` -- {(type(section).__doc__ or '').strip()}")
        walk(section, name + ".")
    return 0


def register(sub: Any) -> None:
    """Add the pipeline subcommands."""
    p = subcommand(sub, "train", "run a pipeline config (record -> imitate -> finetune -> eval, or LLM stages)",
                   "rlft train configs/cartpole.yaml --run-dir runs/cartpole --set finetune.total_timesteps=30000")
    p.add_argument("config", nargs="?", help=f"YAML config or built-in name (default: {DEFAULT_CONFIG})")
    run_flags(p)
    p.set_defaults(func=cmd_train)

    p = subcommand(sub, "record", "record games of an agent as a Minari dataset",
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

    p = subcommand(sub, "imitate", "behaviour-clone a recorded dataset into a policy (+ critic warm-up)",
                   "rlft imitate --env cartpole --dataset data/cartpole-expert --run-dir runs/bc")
    p.add_argument("--config", help="optional YAML config for the other settings")
    p.add_argument("--env", help="env spec the dataset was recorded on")
    p.add_argument("--dataset", help="Minari dataset folder or local dataset id")
    p.add_argument("--init", help="start from this run/checkpoint/.zip instead of a fresh network (imitate.start_from;"
                                  " default: a fresh network, or with --config the config's imitate.start_from)")
    p.add_argument("--epochs", type=int)
    run_flags(p)
    p.set_defaults(func=_stage_command("imitate"))

    p = subcommand(sub, "finetune", "PPO fine-tuning (KL penalty to the starting policy) from a policy or scratch",
                   "rlft finetune --env cartpole --init runs/bc --run-dir runs/ppo --timesteps 20000")
    p.add_argument("--config", help="optional YAML config for the other settings")
    p.add_argument("--env", help="env spec")
    p.add_argument("--init", help="`scratch`, or a run/checkpoint/.zip to start from (finetune.start_from; default: "
                                  "scratch, or with --config the config's finetune.start_from)")
    p.add_argument("--timesteps", type=int, help="total env steps")
    run_flags(p)
    p.set_defaults(func=_stage_command("finetune"))

    p = subcommand(sub, "eval", "evaluate an agent (run folder, checkpoint, SB3 .zip, or mcts:RUN,sims=N)",
                   "rlft eval runs/cartpole --episodes 50")
    p.add_argument("agent", help="run folder, checkpoint folder, SB3 .zip, or a search over one (mcts:RUN,sims=200)")
    p.add_argument("--env", help="env spec (default: the run's env)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=100_000, help="first episode seed")
    p.add_argument("--opponent", action="append", default=[], help="games: opponent spec (repeatable)")
    p.add_argument("--sample", action="store_true", help="sample actions instead of acting greedily")
    p.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--trust-pickle", action="store_true", help="allow a full SB3 .zip load (executes pickled code)")
    p.add_argument("--positions", metavar="FILE", help="games: score the agent's moves on solver-labelled positions "
                                                       "(JSONL) instead of playing: shares of optimal and "
                                                       "outcome-preserving moves")
    p.add_argument("--ray-actors", type=int, default=0, metavar="K",
                   help="games: play them in K Ray actors (RAY_ADDRESS, else a local Ray; needs rlft[ray]), with "
                        "the same results as in this process (default 0: in this process)")
    p.add_argument("--json", action="store_true", help="also print the result as JSON")
    p.set_defaults(func=cmd_eval)

    p = subcommand(sub, "config", "print a resolved config (defaults < file < --set), or every key with its doc",
                   "rlft config configs/cartpole.yaml --docs")
    p.add_argument("config", nargs="?", help="YAML config or built-in name (default: built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--docs", "--show", action="store_true", help="list every key with its default and doc")
    p.set_defaults(func=cmd_config)

    p = subcommand(sub, "stages", "list the stage kinds a pipeline can use (built-ins and installed plugins)",
                   "rlft stages")
    p.set_defaults(func=cmd_stages)

    p = subcommand(sub, "envs", "list env plugins", "rlft envs --all")
    p.add_argument("--all", action="store_true", help="also list every Gymnasium id")
    p.set_defaults(func=cmd_envs)

    p = subcommand(sub, "check-env", "check an env plugin against the Gymnasium / PettingZoo API",
                   "rlft check-env path/to/my_env.py:make_env")
    p.add_argument("spec", help="env spec")
    p.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_check_env)
