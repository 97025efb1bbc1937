"""``finetune.vec_env: ray``: env copies in Ray actors give the in-process VecEnv's trajectories, and train the same.

Slow: starting a local Ray takes 20-30 s on the shared 2-core machine. Skipped without Ray (``rlft[ray]``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import tiny_overrides
from rlft.pipeline.config import load_pipeline
from rlft.pipeline.runner import run_pipeline
from rlft.policy.envs import make_vec_env

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rlft[ray]')")
pytestmark = pytest.mark.slow
CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.fixture(scope="module", autouse=True)
def _local_ray() -> Iterator[None]:
    from rlft.policy.ray_env import connect_ray

    connect_ray(min_cpus=2)
    yield
    ray.shutdown()


def _same_steps(a: Any, b: Any, steps: int, masked: bool) -> int:
    """Step both vec envs with the same random (legal) actions; returns the number of finished episodes."""
    assert np.array_equal(a.reset(), b.reset())
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(steps):
        if masked:
            masks = np.array(a.env_method("action_masks"))
            assert np.array_equal(masks, np.array(b.env_method("action_masks")))
            actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        else:
            actions = rng.integers(0, a.action_space.n, size=a.num_envs)
        (oa, ra, da, ia), (ob, rb, db, ib) = a.step(actions), b.step(actions)
        assert np.array_equal(oa, ob) and np.array_equal(ra, rb) and np.array_equal(da, db)
        for x, y in zip(ia, ib):
            assert ("terminal_observation" in x) == ("terminal_observation" in y)
            if "terminal_observation" in x:
                assert np.array_equal(x["terminal_observation"], y["terminal_observation"])
                episodes += 1
    return episodes


def test_same_seeds_same_trajectories_cartpole_and_self_play_tictactoe() -> None:
    from rlft.policy.config import FinetuneConfig
    from rlft.policy.hooks import env_hooks

    local, remote = (make_vec_env("cartpole", 5, seed=3, vec_env=kind, ray_actors=2) for kind in ("inprocess", "ray"))
    assert len(remote.actors) == 2 and remote.num_envs == 5
    assert _same_steps(local, remote, 400, masked=False) > 5
    remote.close()
    cfg = FinetuneConfig()  # self-play against the default opponents: the opponents step inside the actors too
    adapter = env_hooks("tictactoe", {}).adapter(cfg, 7)
    local, remote = (make_vec_env("tictactoe", 4, seed=7, adapter=adapter, vec_env=kind, ray_actors=2)
                     for kind in ("inprocess", "ray"))
    assert _same_steps(local, remote, 200, masked=True) > 20
    remote.close()


def _finetune(config: str, run_dir: Path, vec_env: str, extra: list[str]) -> dict[str, Any]:
    sets = [o for o in tiny_overrides() if o.startswith(("finetune.", "eval."))]
    cfg = load_pipeline(CONFIGS / config, [*sets, "stages=[finetune]", "finetune.start_from=scratch",
                                           f"finetune.vec_env={vec_env}", "finetune.ray_actors=2", *extra])
    return run_pipeline(cfg, run_dir)["finetune"].details["history"]


@pytest.mark.parametrize(("config", "extra"), [
    ("cartpole.yaml", []),
    # Snapshots play greedily here: a sampling snapshot draws from torch's global RNG, which in-process envs share
    # with the learner (so in-process and any out-of-process envs, subprocesses too, part ways at its first move).
    ("tictactoe.yaml", ["finetune.n_envs=4", "finetune.self_play.snapshot_every=128", "finetune.eval_episodes=4",
                        "finetune.self_play.snapshot_deterministic=true"]),
])
def test_finetune_on_ray_trains_exactly_like_in_process(tmp_path: Path, config: str, extra: list[str]) -> None:
    from safetensors.torch import load_file

    on_ray = _finetune(config, tmp_path / "ray", "ray", extra)
    here = _finetune(config, tmp_path / "here", "inprocess", extra)
    assert on_ray == here and len(here) >= 2  # every periodic evaluation identical
    weights = [load_file(str(next((tmp_path / k / "stages" / "finetune").glob("*.safetensors"))))
               for k in ("ray", "here")]
    assert weights[0].keys() == weights[1].keys()
    assert all(np.array_equal(weights[0][k].numpy(), weights[1][k].numpy()) for k in weights[0])
