"""``rlft label``: preference pairs from people (stdin) or from a judge (``--judge SPEC``), appended as they come.

For each prompt the model samples two completions. A person sees the prompt and both and answers ``1`` / ``2`` /
``tie`` / ``skip`` / ``quit``; with ``--judge`` a reward function or reward model folder scores both instead (ties
dropped, ``--flip`` reverses a share of the pairs; ``--samples N`` compares every two of N completions). Every
answer is appended to ``--out`` (TRL's ``prompt`` / ``chosen`` / ``rejected``) and to ``OUT.seen.jsonl`` (every
prompt answered, ties and skips too) before the next prompt is shown, so Ctrl-C or a kill loses nothing answered,
and running the same command again asks only the rest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rlft.cli.common import subcommand

ANSWERS = {"1": "1", "2": "2", "t": "tie", "tie": "tie", "s": "skip", "skip": "skip", "q": "quit", "quit": "quit"}


def _load(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(model, tokenizer, prompts) for the command; a run folder means its ``final`` model."""
    from rlft.core.runtime import resolve_device
    from rlft.llm.config import LLMDataConfig
    from rlft.llm.data import load_examples
    from rlft.llm.model import load_model, load_tokenizer

    folder = Path(args.model)
    if (folder / "final").is_dir():
        folder = folder / "final"
    tokenizer = load_tokenizer(str(folder), "MODEL_OR_RUN")
    model = load_model(str(folder), what="MODEL_OR_RUN").to(resolve_device(args.device))
    data = LLMDataConfig(source=args.prompts, prompt_column=args.prompt_column, limit=args.limit, size=args.size,
                         seed=args.seed)
    prompts = load_examples(data, need_completion=False, what="--prompts")
    return model, tokenizer, prompts


def _ask(prompt: str, first: str, second: str, position: str) -> str:
    """Show one comparison and read an answer (bad input is asked again; end of input means quit)."""
    print(f"\n{position} prompt: {prompt!r}\n  1: {first!r}\n  2: {second!r}")
    while True:
        print("which is better? 1 / 2 / tie / skip / quit: ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            return "quit"
        answer = ANSWERS.get(line.strip().lower())
        if answer is not None:
            return answer
        print(f"  '{line.strip()}' is not an answer: type 1, 2, tie, skip or quit.")


def cmd_label(args: argparse.Namespace) -> int:
    from rlft.core.errors import ConfigError
    from rlft.llm.config import RewardSpec
    from rlft.llm.preferences import Judge, Pair, answered, label_with_judge, record, sample_pairs

    if not 0 <= args.flip <= 1:
        raise ConfigError(f"--flip {args.flip} is not a share: give a number from 0 to 1 (e.g. 0.2).")
    if args.flip and not args.judge:
        raise ConfigError("--flip reverses a share of a judge's labels: it needs --judge SPEC.")
    if args.samples != 2 and not args.judge:
        raise ConfigError("--samples compares more than two completions per prompt: it needs --judge SPEC (people "
                          "compare two).")
    if args.samples < 2:
        raise ConfigError(f"--samples {args.samples}: a comparison needs at least 2 completions per prompt.")
    model, tokenizer, prompts = _load(args)
    out = Path(args.out)
    gen = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature}
    if args.judge:
        is_model = (Path(args.judge) / "config.json").is_file()
        spec = RewardSpec(model=args.judge) if is_model else RewardSpec(fn=args.judge)
        counts = label_with_judge(model, tokenizer, prompts, Judge(spec), out, flip=args.flip, seed=args.seed,
                                  samples=args.samples, **gen)
        print(f"wrote {out}: {counts['pairs']} new pairs ({counts['ties']} ties and {counts['same']} equal pairs "
              f"dropped, {counts['flipped']} flipped; {counts['skipped_answered']} prompts answered before)")
        return 0
    done = answered(out)
    todo = [(i, str(p)) for i, p in enumerate(prompts["prompt"]) if str(p) not in done]
    todo = [t for k, t in enumerate(todo) if t[1] not in {p for _, p in todo[:k]}]  # a repeated prompt once
    total, counts = len(done) + len(todo), {"1": 0, "2": 0, "tie": 0, "skip": 0, "same": 0}
    print(f"{len(done)} of {total} prompts answered before; {len(todo)} to go. Answers go to {out}.")
    for k, (index, prompt) in enumerate(todo):
        first, second = sample_pairs(model, tokenizer, [prompt], seed=args.seed + 2 * index, **gen)[0]
        if first.strip() == second.strip():
            print(f"\n[{len(done) + k + 1}/{total}] prompt: {prompt!r}: both completions are {first!r}; skipped.")
            record(out, [Pair(prompt, first, second, "same")])
            counts["same"] += 1
            continue
        answer = _ask(prompt, first, second, f"[{len(done) + k + 1}/{total}]")
        if answer == "quit":
            break
        record(out, [Pair(prompt, first, second, answer)])
        counts[answer] += 1
    print(f"\nthis session: {counts['1'] + counts['2']} preferences, {counts['tie']} ties, {counts['skip']} skipped "
          f"-> {out}. Run the same command again to continue.")
    return 0


def register(sub: Any) -> None:
    """Add ``label``."""
    p = subcommand(sub, "label", "compare two sampled completions per prompt (you, or --judge) -> preference pairs",
                   "rlft label runs/add --prompts prompts.jsonl --out prefs.jsonl\n"
                   "  rlft label runs/add --prompts addition --size 500 --judge exact_match --flip 0.2 --out p.jsonl")
    p.add_argument("model", metavar="MODEL_OR_RUN", help="an LLM run folder (uses DIR/final) or model folder")
    p.add_argument("--prompts", required=True, help="prompts: .jsonl/.csv/.parquet file, save_to_disk folder, or "
                                                    "`addition` (generated)")
    p.add_argument("--out", required=True, help="JSONL file the pairs are appended to (prompt, chosen, rejected)")
    p.add_argument("--judge", default="", help="label automatically: a reward function spec (exact_match, "
                                               "file.py:fn, pkg.mod:fn) or a reward model folder")
    p.add_argument("--flip", type=float, default=0.0, help="--judge: share of pairs whose order is reversed (noise)")
    p.add_argument("--samples", type=int, default=2, help="--judge: completions sampled per prompt; every two "
                                                          "different ones are compared (default 2: one pair)")
    p.add_argument("--prompt-column", default="prompt", help="column of --prompts holding the prompt")
    p.add_argument("--limit", type=int, default=0, help="use only the first N prompts (0: all)")
    p.add_argument("--size", type=int, default=200, help="generated --prompts (addition): how many")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_label)
