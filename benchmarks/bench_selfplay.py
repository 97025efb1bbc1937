"""Connect Four self-play benchmark: rlft's self-play PPO against the PettingZoo SB3 tutorial setup, in one run.

Prints two figures (targets from the games issue):

(a) env steps/s of rlft's self-play PPO (``configs/connect_four.yaml``: opponents played inside ``step``, snapshot
    pool, KL penalty) vs sb3-contrib ``MaskablePPO`` in the PettingZoo SB3 Connect Four tutorial setup (one model
    plays both seats through ``SB3ActionMaskWrapper`` + ``ActionMasker``), with the same network, ``n_envs``,
    ``n_steps``, ``batch_size`` and ``n_epochs`` (target >= 2.0 per env step). One rlft env step is one learner
    move (plus the opponent's reply inside the env); one tutorial env step is one move of either seat. Both are
    reported. And rlft as shipped against rlft with the four self-play speed-ups of the strong-agents issue turned
    off (network opponents' replies batched across the envs; games played on the env's game-state core instead of the
    PettingZoo env; the alpha-beta opponents' speed-ups, a cache of searched positions and the bitboard test for a
    winning move (``ConnectFourRules.winning_moves``) instead of playing every move; the network's trunk in bfloat16
    in the update and the rollouts' forward passes, ``precision: auto``, where the CPU has
    AMX), for all of ``learn()`` and for the rollouts alone (the PPO update excluded); target >= 2. Each speed-up is
    also turned off alone. The alpha-beta cache is emptied before every variant, so none inherits another's
    searches.
(b) env steps of PPO needed to reach a win rate against ``alphabeta:2`` (checked every ``--eval-every`` steps over
    ``--eval-games`` games, both seats), fine-tuning from the behaviour-cloned policy of a run vs from scratch with
    the same PPO settings; scratch is stopped at ``--scratch-factor`` x the BC -> PPO figure (target: >= 5x).

Usage::

    rlft train configs/connect_four.yaml --run-dir runs/c4
    OMP_NUM_THREADS=1 python benchmarks/bench_selfplay.py --run runs/c4            # ~15-25 min on 2 CPU cores
    OMP_NUM_THREADS=1 python benchmarks/bench_selfplay.py --run runs/c4 --quick    # smoke check
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlft.core.agent import load_agent
from rlft.core.envs import resolve_env
from rlft.envs.board_agents import _CHOICES, AlphaBetaAgent
from rlft.envs.connect_four import ConnectFourRules
from rlft.pipeline.config import load_pipeline
from rlft.policies.networks import PolicySpec, policy_kwargs
from rlft.policy.config import FinetuneConfig
from rlft.policy.games.arena import evaluate_game
from rlft.policy.precision import update_dtype
from rlft.policy.stages.finetune import FinetuneRunner

CONFIG = Path(__file__).parents[1] / "configs" / "connect_four.yaml"
CACHE_SIZE = AlphaBetaAgent.cache_size
WINNING_MOVES = ConnectFourRules.winning_moves


def finetune_config(**overrides: Any) -> tuple[FinetuneConfig, PolicySpec]:
    """The finetune section of configs/connect_four.yaml (with overrides) and the config's network."""
    cfg = load_pipeline(CONFIG)
    ft = cfg.section("finetune")
    for key, value in overrides.items():
        setattr(ft, key, value)
    return ft, cfg.section("imitate").policy


# --------------------------------------------------------------------------------------------------------------
# (a) throughput against the PettingZoo SB3 tutorial
# --------------------------------------------------------------------------------------------------------------


def tutorial_env() -> gym.Env[Any, Any]:
    """The PettingZoo SB3 Connect Four tutorial env: one model plays whichever seat is to move."""
    from pettingzoo.classic import connect_four_v3
    from pettingzoo.utils import BaseWrapper
    from sb3_contrib.common.wrappers import ActionMasker

    class SB3ActionMaskWrapper(BaseWrapper, gym.Env):  # as in the tutorial (gym.Env: Gymnasium 1.x wrappers need it)
        def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
            super().reset(seed, options)
            self.observation_space = super().observation_space(self.possible_agents[0])["observation"]
            self.action_space = super().action_space(self.possible_agents[0])
            return self.observe(self.agent_selection), {}

        def step(self, action: int) -> Any:
            current_agent = self.agent_selection
            super().step(action)
            next_agent = self.agent_selection
            return (self.observe(next_agent), self._cumulative_rewards[current_agent],
                    self.terminations[current_agent], self.truncations[current_agent], self.infos[current_agent])

        def observe(self, agent: str) -> Any:
            return super().observe(agent)["observation"]

        def action_mask(self) -> Any:
            return super().observe(self.agent_selection)["action_mask"]

    env = SB3ActionMaskWrapper(connect_four_v3.env())
    env.reset(seed=0)
    return ActionMasker(env, lambda e: e.action_mask())  # type: ignore[arg-type, attr-defined]


def tutorial_model(ft: FinetuneConfig, spec: PolicySpec, seed: int) -> Any:
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([tutorial_env for _ in range(ft.n_envs)])
    return MaskablePPO(MaskableActorCriticPolicy, venv, n_steps=ft.n_steps, batch_size=ft.batch_size,
                       n_epochs=ft.n_epochs, learning_rate=ft.learning_rate, gamma=ft.gamma, seed=seed,
                       policy_kwargs=policy_kwargs(spec), verbose=0, device="cpu")


def rlft_runner(ft: FinetuneConfig, spec: PolicySpec, seed: int, init: Any = None, batched: bool = True,
                core: bool = True, precision: str | None = None) -> FinetuneRunner:
    from rlft.policy.hooks import env_hooks

    ft = dataclasses.replace(ft, self_play=dataclasses.replace(ft.self_play, game_core=core),
                             precision=precision or ft.precision)
    runner = FinetuneRunner(cfg=ft, env_spec="connect_four", env_kwargs={}, seed=seed, device="cpu")
    runner.hooks = env_hooks("connect_four", {}, check=False)
    if not batched:  # the envs as they were before batching: every reply a forward pass of its own
        runner.hooks.vectorised = lambda venv, dtype=None: venv  # type: ignore[method-assign]
    runner.build(init, spec)
    return runner


VARIANTS = {  # name: (replies batched across envs, games on the game-state core, alpha-beta speed-ups, precision)
    "rlft self-play": (True, True, True, None),  # None: the config's (`auto`)
    "rlft, PettingZoo env": (True, False, True, None),
    "rlft, unbatched": (False, True, True, None),
    "rlft, alpha-beta as before": (True, True, False, None),
    "rlft, fp32 trunk": (True, True, True, "fp32"),
    "rlft before (all off)": (False, False, False, "fp32"),
}
"""rlft's self-play as shipped, without each of the four speed-ups, and as it was before any (the baseline of
the throughput target)."""


def _timed_learn(model: Any, steps: int, callback: Any) -> tuple[float, float]:
    """(seconds of learn(), seconds of it spent in the PPO update): the rest is collecting the rollouts."""
    train, spent = model.train, [0.0]

    def timed_train() -> None:
        start = time.perf_counter()
        train()
        spent[0] += time.perf_counter() - start

    model.train = timed_train
    start = time.perf_counter()
    model.learn(steps, callback=callback)
    return time.perf_counter() - start, spent[0]


def throughput(steps: int, seed: int, repeats: int) -> dict[str, list[float]]:
    """Env steps/s of learn() (no evaluation) and of its rollouts alone, interleaved repeats so machine load hits
    every variant alike."""
    ft, spec = finetune_config(eval_every=0)
    rates: dict[str, list[float]] = {"tutorial MaskablePPO": []}
    for r in range(repeats):
        model = tutorial_model(ft, spec, seed + r)
        start = time.perf_counter()
        model.learn(steps)
        rates["tutorial MaskablePPO"].append(model.num_timesteps / (time.perf_counter() - start))
        for name, (batched, core, cache, precision) in VARIANTS.items():
            runner = rlft_runner(ft, spec, seed + r, batched=batched, core=core, precision=precision)
            _CHOICES.clear()  # every variant starts with an empty alpha-beta cache
            AlphaBetaAgent.cache_size = CACHE_SIZE if cache else 0
            if not cache:  # alpha-beta plays every move to find a win, as it did before the bitboard test
                del ConnectFourRules.winning_moves
            try:
                seconds, training = _timed_learn(runner.model, steps, _snapshot_callbacks(runner))
            finally:
                AlphaBetaAgent.cache_size = CACHE_SIZE
                ConnectFourRules.winning_moves = WINNING_MOVES  # type: ignore[method-assign]
            n = runner.model.num_timesteps
            rates.setdefault(name, []).append(n / seconds)
            rates.setdefault(f"{name}, rollouts", []).append(n / (seconds - training))
            if name == "rlft self-play":
                rates.setdefault("rlft moves", []).append(sum(runner.model.get_env().get_attr("moves")) / seconds)
    return rates


def _snapshot_callbacks(runner: FinetuneRunner) -> list[Any]:
    from rlft.policy.games.pool import SnapshotCallback

    return [SnapshotCallback(runner, runner.cfg.self_play)]


# --------------------------------------------------------------------------------------------------------------
# (b) steps to a win rate against alphabeta:2
# --------------------------------------------------------------------------------------------------------------


def steps_to_target(init: str, bc_dir: str | None, target: float, budget: int, eval_every: int, games: int,
                    seed: int) -> tuple[int | None, list[tuple[int, dict[str, float]]]]:
    plugin = resolve_env("connect_four")

    def evaluator(agent: Any) -> dict[str, float]:
        r = evaluate_game(agent, plugin, {}, ["alphabeta:2"], games, seed=50_000)["alphabeta:2"]
        return {"eval/win_rate_vs_alphabeta_2": r.rate("win")}

    ft, spec = finetune_config(start_from=init, total_timesteps=budget, eval_every=eval_every, stop_at=target)
    torch.manual_seed(seed)
    start = load_agent(bc_dir, device="cpu") if bc_dir else None
    if start is not None:
        spec = PolicySpec(**start.meta["policy"])  # type: ignore[attr-defined]
    runner = FinetuneRunner(cfg=ft, env_spec="connect_four", env_kwargs={}, seed=seed, device="cpu",
                            evaluator=evaluator)
    runner.build(getattr(start, "policy", None), spec)
    runner.learn()
    hit = next((s for s, m in runner.history if m["eval/win_rate_vs_alphabeta_2"] >= target), None)
    return hit, runner.history




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a finished `rlft train configs/connect_four.yaml` run folder (for (b))")
    parser.add_argument("--target", type=float, default=0.6, help="win rate against alphabeta:2 to reach")
    parser.add_argument("--eval-every", type=int, default=8192)
    parser.add_argument("--eval-games", type=int, default=40)
    parser.add_argument("--bc-budget", type=int, default=200_000, help="max PPO steps from the BC policy")
    parser.add_argument("--scratch-factor", type=float, default=5.0)
    parser.add_argument("--throughput-steps", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke check, figures meaningless)")
    parser.add_argument("--throughput-only", action="store_true", help="only (a); --run is then not needed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides (1 is fastest here)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.throughput_steps, args.repeats, args.bc_budget, args.eval_every, args.eval_games = 2048, 1, 4096, 2048, 10

    rates = throughput(args.throughput_steps, args.seed, args.repeats)
    ft, _ = finetune_config()
    ours, theirs = float(np.median(rates["rlft self-play"])), float(np.median(rates["tutorial MaskablePPO"]))
    moves = float(np.median(rates["rlft moves"]))
    print("\n(a) throughput per second (median of interleaved repeats); a tutorial step is one PettingZoo move,")
    print("    an rlft step is one learner move plus the opponent's reply (rlft moves: PettingZoo moves of both seats)")
    for name, values in rates.items():
        print(f"    {name:22s} {np.median(values):8.1f}   ({', '.join(f'{v:.0f}' for v in values)})")
    before = float(np.median(rates["rlft before (all off)"]))
    rollouts = float(np.median(rates["rlft self-play, rollouts"])) / float(
        np.median(rates["rlft before (all off), rollouts"]))
    fp32 = float(np.median(rates["rlft, fp32 trunk"]))
    print(f"    trunk precision here: {'bf16' if update_dtype(ft.precision, torch.device('cpu')) else 'fp32'} "
          f"(config: {ft.precision})")
    print(f"    shipped / before (batched replies + game core + alpha-beta speed-ups + bf16 trunk vs none): "
          f"{ours / before:.2f} learner "
          f"steps/s of learn() (target >= 2), {rollouts:.2f} of the rollouts alone; without the bf16 trunk "
          f"{fp32 / before:.2f}")
    print(f"    ratio rlft / tutorial: {moves / theirs:.2f} per PettingZoo env step (one move; target >= 2.0); "
          f"{ours / theirs:.2f} per learner sample (the tutorial's single model learns from both seats' moves)")

    if args.throughput_only or not args.run:
        return
    bc_dir = str(Path(args.run) / "stages" / "imitate")
    bc_hit, bc_hist = steps_to_target("imitate", bc_dir, args.target, args.bc_budget, args.eval_every,
                                      args.eval_games, args.seed)
    print(f"\n(b) PPO env steps to a win rate >= {args.target} against alphabeta:2 ({args.eval_games} games per check)")
    start = bc_hist[0][1]["eval/win_rate_vs_alphabeta_2"] if bc_hist else float("nan")
    print(f"    BC -> PPO: {bc_hit} steps (BC alone: {start:.2f}; curve "
          f"{[(s, round(m['eval/win_rate_vs_alphabeta_2'], 2)) for s, m in bc_hist]})")
    if bc_hit is None:
        print("    BC -> PPO did not reach the target within its budget; no ratio.")
        return
    budget = int(max(bc_hit, args.eval_every) * args.scratch_factor)
    scratch_hit, scratch_hist = steps_to_target("scratch", None, args.target, budget, args.eval_every,
                                                args.eval_games, args.seed)
    best = max(m["eval/win_rate_vs_alphabeta_2"] for _, m in scratch_hist)
    if scratch_hit is None:
        print(f"    scratch:   not reached in {budget} steps (best {best:.2f}) -> ratio > {args.scratch_factor:.1f}x "
              f"(target >= 5x)")
    else:
        print(f"    scratch:   {scratch_hit} steps -> ratio {scratch_hit / max(bc_hit, 1):.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
