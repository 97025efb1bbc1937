"""The real-data comparisons of docs/datasets.md, over several seeds: each arm is one `rlft train` run.

    python benchmarks/real_data_transfer.py text   --seeds 3 --out runs/bench-text    # BBC: MLM -> 5% labels vs no MLM
    python benchmarks/real_data_transfer.py tweets --out runs/bench-tweets            # tweets: full / freeze / lora
    python benchmarks/real_data_transfer.py image  --seeds 3 --out runs/bench-image   # EfficientNet: ImageNet vs random

Each arm prints held-out accuracy and macro-F1 (mean +- std over seeds) and its wall time; everything is also written
to ``OUT/summary.json``. Extra ``--set`` overrides go to every run (e.g. ``--set classify.epochs=2`` for a smoke run).

* text: `configs/bbc_news.yaml` (mlm once, then classify with `seeds` seeds 1, 2, 3), and the same classify stage
  without mlm (`backbone: minilm`, run seed 1 so its classify seeds are also 1, 2, 3 -- stage i of a run gets
  seed + i): both arms draw the same 5% label subsets and head initialisations. One MLM run serves the 3 seeds
  (MLM is the costly part on a CPU).
* tweets: `configs/tweets_sentiment.yaml` once per tuning mode.
* image: `configs/image_transfer.yaml` at label budgets 2% and 20%: tuning full with the random-init baseline
  (`scratch_baseline`), then freeze and lora; `seeds` repeats inside each run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def train(config: str, run_dir: Path, sets: list[str]) -> tuple[dict[str, Any], float]:
    """Run `rlft train` (a fresh process); return its results.json and the wall time in seconds."""
    results = run_dir / "results.json"
    if results.is_file():  # finished earlier: reuse (delete the folder to rerun)
        data = json.loads(results.read_text())
        return data, float(sum(r.get("seconds", 0.0) for r in data.values()))
    cmd = [sys.executable, "-m", "rlft.cli.main", "train", str(ROOT / config), "--run-dir", str(run_dir), "-q"]
    for s in sets:
        cmd += ["--set", s]
    if run_dir.exists():
        cmd.append("--resume")
    start = time.perf_counter()
    print("$", " ".join(cmd[2:]), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"run failed (exit {proc.returncode}): {' '.join(cmd)}")
    return json.loads(results.read_text()), time.perf_counter() - start


def stat(values: list[float]) -> str:
    return f"{np.mean(values):.4f} +- {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def per_seed(result: dict[str, Any], kind: str = "pretrained") -> list[dict[str, float]]:
    return list(result.get("details", {}).get("per_seed", {}).get(kind, []))


def report(rows: list[dict[str, Any]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    print("\n| arm | seeds | accuracy (mean +- std) | macro-F1 | trainable params | wall s per run |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | {len(r['accuracy'])} | {stat(r['accuracy'])} | {stat(r['macro_f1'])} | "
              f"{r.get('trainable_params', '')} | {np.mean(r['seconds']):.0f} |")
    print(f"\nwritten: {out / 'summary.json'}")


def text(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    no_mlm = ["seed=1", "stages=[classify]", "classify.backbone=minilm"]
    for arm, folder, sets in (("MLM -> classify", "mlm", ["seed=0"]), ("classify (no MLM)", "nomlm", no_mlm)):
        res, seconds = train("configs/bbc_news.yaml", args.out / folder,
                             sets + [f"classify.seeds={args.seeds}"] + args.set)
        runs = per_seed(res["classify"])
        rows.append({"arm": arm, "accuracy": [r["accuracy"] for r in runs], "macro_f1": [r["macro_f1"] for r in runs],
                     "seconds": [seconds], "trainable_params": res["classify"]["metrics"].get("trainable_params"),
                     "mlm_loss": res["mlm"]["metrics"]["loss"] if "mlm" in res else None,
                     "stage_seconds": {k: v["seconds"] for k, v in res.items()}})
        report(rows, args.out)
    return rows


def tweets(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for mode in ("full", "freeze", "lora"):
        res, seconds = train("configs/tweets_sentiment.yaml", args.out / mode,
                             [f"classify.tuning.mode={mode}"] + args.set)
        m = res["classify"]["metrics"]
        rows.append({"arm": mode, "accuracy": [m["accuracy"]], "macro_f1": [m["macro_f1"]], "seconds": [seconds],
                     "trainable_params": m.get("trainable_params")})
        report(rows, args.out)
    return rows


def image(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    epochs_of = {0.02: args.epochs_small, 0.2: args.epochs_large}
    # ImageNet vs random init at both budgets first (the comparison that matters), then the other tuning modes.
    order = [(0.02, "full"), (0.2, "full")] + [(b, m) for m in args.modes if m != "full" for b in (0.02, 0.2)]
    for budget, mode in order:
        epochs = epochs_of[budget]
        sets = [f"classify.data.label_fraction={budget}", f"classify.tuning.mode={mode}", f"seed={0}",
                f"classify.seeds={args.seeds}", f"classify.epochs={epochs}", f"classify.eval_every={epochs}",
                f"classify.scratch_baseline={'true' if mode == 'full' else 'false'}"] + args.set
        res, seconds = train("configs/image_transfer.yaml", args.out / f"{mode}-{budget}", sets)
        result = res["classify"]
        kinds = ["pretrained", "scratch"] if mode == "full" else ["pretrained"]
        for kind in kinds:
            runs = per_seed(result, kind)
            arm = f"{budget:.0%} labels, {'ImageNet init, ' + mode if kind == 'pretrained' else 'random init, full'}"
            rows.append({"arm": arm, "accuracy": [r["accuracy"] for r in runs],
                         "macro_f1": [r["macro_f1"] for r in runs],
                         "seconds": [seconds / (len(kinds) * args.seeds)],
                         "trainable_params": result["metrics"].get("trainable_params") if kind == "pretrained"
                         else result["metrics"].get("total_params")})
        report(rows, args.out)  # the table so far (a long queue can be stopped at any point)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["text", "tweets", "image"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="folder of the runs (default runs/bench-<task>)")
    parser.add_argument("--epochs-small", type=int, default=15, help="image: epochs at the 2%% budget")
    parser.add_argument("--epochs-large", type=int, default=1, help="image: epochs at the 20%% budget")
    parser.add_argument("--modes", nargs="+", default=["full", "freeze", "lora"], help="image: tuning modes")
    parser.add_argument("--set", action="append", default=[], help="override for every run (repeatable)")
    args = parser.parse_args()
    args.out = args.out or ROOT / "runs" / f"bench-{args.task}"
    {"text": text, "tweets": tweets, "image": image}[args.task](args)


if __name__ == "__main__":
    main()
