"""``rlft llm-init`` and ``rlft generate``: the LLM subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cmd_llm_init(args: argparse.Namespace) -> int:
    from rlft.cli.main import load_pipeline_config, resolve_config_path
    from rlft.core.errors import RunDirError
    from rlft.llm.stages.build import init_model

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise RunDirError(f"The folder '{out}' already exists and is not empty; choose another --out.")
    cfg = load_pipeline_config(resolve_config_path(args.config) if args.config else None, args.set)
    counts = init_model(cfg.init, out, cfg.seed)
    print(f"wrote {out}: vocabulary {counts['vocab_size']}, {counts['total_params']:,} parameters")
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


def register(sub: Any, make_subparser: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``llm-init`` and ``generate`` to the ``rlft`` command line."""
    p = make_subparser(sub, "llm-init", "train a small tokenizer on a corpus and build a tiny causal LM (offline)",
                       "rlft llm-init --out models/tiny --set init.hidden_size=128")
    p.add_argument("--out", required=True, help="folder to write (a standard Hugging Face model folder)")
    p.add_argument("--config", help="YAML config whose `init` section to use (default: built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. init.level=word")
    p.set_defaults(func=cmd_llm_init)

    p = make_subparser(sub, "generate", "complete prompts with an LLM run (or any LLM folder with agent.json)",
                       'rlft generate runs/add "12+34="')
    p.add_argument("run", help="LLM run folder (uses DIR/final) or stage folder")
    p.add_argument("prompt", nargs="+", help="prompt text(s)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--num", type=int, default=1, help="completions per prompt")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_generate)
