"""CartPole benchmark: rlft's record -> BC -> PPO pipeline against plain Stable-Baselines3, in one run.

Prints three figures (targets from the foundation issue):

(a) env steps PPO needs to reach a mean return of 475 (10 deterministic episodes, checked every 1,024 steps),
    fine-tuning from the behaviour-cloned policy vs from scratch with the same PPO hyper-parameters
    (target: BC -> PPO needs <= 0.2x the steps of scratch);
(b) rlft PPO env-steps/s vs plain SB3 PPO with identical settings (target >= 0.95), with the KL penalty off and on;
(c) the lowest eval return in the first 20% of fine-tuning as a fraction of the BC policy's return (target >= 0.9).

Usage::

    python benchmarks/bench_cartpole.py            # about 3-6 minutes on 2 CPU cores
    python benchmarks/bench_cartpole.py --quick    # smaller budgets, for a smoke check
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlft.core.agent import load_agent
from rlft.pipeline.config import load_pipeline
from rlft.pipeline.runner import run_pipeline
from rlft.policies.networks import PolicySpec
from rlft.policy.config import FinetuneConfig
from rlft.policy.hooks import env_hooks
from rlft.policy.stages.finetune import FinetuneRunner

CONFIG = Path(__file__).parents[1] / "configs" / "cartpole.yaml"


def finetune_config(**overrides: Any) -> FinetuneConfig:
    """The finetune section of configs/cartpole.yaml with overrides."""
    cfg = load_pipeline(CONFIG).section("finetune")
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def steps_to_threshold(init: str, bc_dir: str | None, threshold: float, budget: int, seed: int,
                       kl_coef: float) -> tuple[int | None, list[tuple[int, dict[str, float]]]]:
    cfg = finetune_config(start_from=init, total_timesteps=budget, eval_every=1024, eval_episodes=10,
                          stop_at=threshold, kl_coef=kl_coef)
    runner = FinetuneRunner(cfg=cfg, env_spec="cartpole", env_kwargs={}, seed=seed, device="cpu",
                            evaluator=env_hooks("cartpole").evaluator(cfg, seed=50_000))
    torch.manual_seed(seed)
    start = load_agent(bc_dir, device="cpu") if bc_dir else None
    runner.build(getattr(start, "policy", None), PolicySpec(**start.meta["policy"]) if start else PolicySpec())
    runner.learn()
    hit = next((step for step, s in runner.history if s["eval/mean_return"] >= threshold), None)
    return hit, runner.history


def throughput(n_steps: int, seed: int, repeats: int) -> dict[str, list[float]]:
    """Env steps/s of model.learn() for plain SB3 PPO and rlft PPO (KL off / on), identical settings, no eval.

    The variants run interleaved, ``repeats`` times each, so background load affects them alike.
    """
    from stable_baselines3 import PPO

    from rlft.policies.networks import policy_kwargs
    from rlft.policy.envs import make_vec_env

    cfg = finetune_config(start_from="scratch", total_timesteps=n_steps, eval_every=0)
    common = dict(learning_rate=cfg.learning_rate, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
                  n_epochs=cfg.n_epochs, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range,
                  ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
                  policy_kwargs=policy_kwargs(PolicySpec()), seed=seed, device="cpu", verbose=0)
    results: dict[str, list[float]] = {"sb3": [], "rlft_kl0": [], "rlft_kl0.1": []}
    for _ in range(repeats):
        for name in results:
            if name == "sb3":
                model = PPO("MlpPolicy", make_vec_env("cartpole", cfg.n_envs, seed=seed), **common)  # type: ignore[arg-type]
            else:
                runner = FinetuneRunner(cfg=finetune_config(start_from="scratch", total_timesteps=n_steps, eval_every=0,
                                                            kl_coef=float(name.split("kl")[1]), kl_decay="constant"),
                                        env_spec="cartpole", env_kwargs={}, seed=seed, device="cpu")
                runner.build(None, PolicySpec())
                model = runner.model
            start = time.perf_counter()
            model.learn(n_steps)
            results[name].append(model.num_timesteps / (time.perf_counter() - start))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    budget = 30_000 if args.quick else 200_000
    tp_steps = 8_192 if args.quick else 40_960

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_pipeline(CONFIG, [f"seed={args.seed}", "stages=[record,imitate]"])
        start = time.perf_counter()
        results = run_pipeline(cfg, Path(tmp) / "bc")
        bc_seconds = time.perf_counter() - start
        demo_steps = int(results["record"].metrics["steps"])
        bc_dir = results["imitate"].outputs.agent

        print(f"record + behaviour cloning: {bc_seconds:.1f}s, {demo_steps} demonstration steps")
        bc_hit, bc_hist = steps_to_threshold("imitate", bc_dir, 475, budget, args.seed, kl_coef=0.1)
        scratch_hit, _ = steps_to_threshold("scratch", None, 475, budget, args.seed, kl_coef=0.0)

    def show(hit: int | None) -> str:
        return f"{hit:,}" if hit is not None else f">{budget:,} (not reached)"

    print("\n(a) env steps of PPO to reach mean return 475 (10 episodes, checked every 1,024 steps)")
    print(f"    BC -> PPO   : {show(bc_hit)} RL steps (+{demo_steps:,} recorded expert steps)")
    print(f"    scratch PPO : {show(scratch_hit)}  (same hyper-parameters; KL penalty off, as its reference would be "
          "the random init)")
    if bc_hit is not None:
        denom = scratch_hit if scratch_hit is not None else budget
        print(f"    ratio BC/scratch = {bc_hit / denom:.3f} (target <= 0.2); counting demonstration steps too: "
              f"{(bc_hit + demo_steps) / denom:.3f}")

    # (c) uses a fixed-length fine-tuning run from the same BC policy, evaluated often.
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_pipeline(CONFIG, [f"seed={args.seed}", "stages=[record,imitate,finetune]",
                                     "finetune.eval_every=1024", "finetune.eval_episodes=10"])
        results = run_pipeline(cfg, Path(tmp) / "ft")
        history = results["finetune"].details["history"]
    total = cfg.section("finetune").total_timesteps
    early = [s["eval/mean_return"] for step, s in history if step <= 0.2 * total]
    bc_return = history[0][1]["eval/mean_return"]
    print(f"\n(c) fine-tuning {total:,} steps from BC: BC return {bc_return:.1f}; lowest eval return in the first 20% "
          f"= {min(early):.1f} -> fraction {min(early) / bc_return:.3f} (target >= 0.9); final "
          f"{history[-1][1]['eval/mean_return']:.1f}")
    _ = bc_hist

    repeats = 3
    tp = {k: float(np.median(v)) for k, v in throughput(tp_steps, args.seed, repeats).items()}
    print(f"\n(b) env steps/s over {tp_steps:,} steps (PPO.learn only, 1 torch thread, median of {repeats} interleaved "
          "runs):")
    print(f"    plain SB3 PPO         : {tp['sb3']:,.0f}")
    print(f"    rlft PPO, KL off      : {tp['rlft_kl0']:,.0f} -> ratio {tp['rlft_kl0'] / tp['sb3']:.3f} (target 0.95)")
    print(f"    rlft PPO, KL 0.1 on   : {tp['rlft_kl0.1']:,.0f} -> ratio {tp['rlft_kl0.1'] / tp['sb3']:.3f}")


if __name__ == "__main__":
    main()
