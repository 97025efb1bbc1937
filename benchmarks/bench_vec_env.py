"""Vec-env benchmark: env steps/s of the in-process, subprocess and Ray vec envs on this machine.

Steps ``n_envs`` copies of an env with random (legal) actions -- no learner, so the figure is the env plumbing alone:
what each step costs in inter-process (or Ray) round trips. On a 2-core machine Ray will not be faster; the point is
that it runs, and the ratio shows its overhead per step. Tic-tac-toe runs through the self-play adapter (the random
opponent moves inside the copies).

Usage::

    python benchmarks/bench_vec_env.py                 # CartPole and tic-tac-toe, 8 envs, 2 Ray actors
    python benchmarks/bench_vec_env.py --steps 500 --envs 4
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from rlft.policy.config import FinetuneConfig
from rlft.policy.envs import make_vec_env
from rlft.policy.hooks import env_hooks


def _rate(venv: Any, steps: int, masked: bool) -> float:
    """Env steps per second (summed over the copies) of ``steps`` vectorised steps."""
    rng = np.random.default_rng(0)
    venv.reset()
    start = time.perf_counter()
    for _ in range(steps):
        if masked:
            masks = venv.env_method("action_masks")
            actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        else:
            actions = rng.integers(0, venv.action_space.n, size=venv.num_envs)
        venv.step(actions)
    rate = steps * venv.num_envs / (time.perf_counter() - start)
    venv.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="vectorised steps per measurement")
    parser.add_argument("--envs", type=int, default=8, help="env copies")
    parser.add_argument("--actors", type=int, default=2, help="Ray actors")
    args = parser.parse_args()
    try:
        from rlft.policy.ray_env import connect_ray

        start = time.perf_counter()
        connect_ray(min_cpus=args.actors)
        print(f"local Ray started in {time.perf_counter() - start:.1f}s")
        kinds = ["inprocess", "subprocess", "ray"]
    except Exception as e:  # Ray not installed: measure the other two
        print(f"Ray unavailable ({e}); measuring in-process and subprocess only")
        kinds = ["inprocess", "subprocess"]
    print(f"{'env':<12}{'vec env':<12}{'env steps/s':>12}{'vs in-process':>15}")
    for env in ("cartpole", "tictactoe"):
        adapter = env_hooks(env, {}).adapter(FinetuneConfig(), 0) if env == "tictactoe" else None
        base = None
        for kind in kinds:
            venv = make_vec_env(env, args.envs, seed=0, adapter=adapter, vec_env=kind, ray_actors=args.actors)
            rate = _rate(venv, args.steps, masked=adapter is not None)
            base = base or rate
            print(f"{env:<12}{kind:<12}{rate:>12,.0f}{rate / base:>14.2f}x")


if __name__ == "__main__":
    main()
