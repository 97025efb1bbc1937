"""Resume: a run killed with SIGKILL continues from its last checkpoint and ends where an uninterrupted run ends;
right after resuming, weights, optimizer state, RNG states and counters equal what was saved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from rlft.core.rundir import load_safetensors, read_json

CONFIG = {
    "name": "resume-test",
    "num_threads": 1,
    "stages": ["finetune"],
    "env": {"id": "cartpole"},
    "finetune": {"start_from": "scratch", "total_timesteps": 6144, "n_envs": 2, "n_steps": 128, "batch_size": 128,
                 "n_epochs": 4, "checkpoint_every": 256, "eval_every": 0, "policy": {"net_arch": [32]}},
}


def _rlft(*args: str) -> list[str]:
    return [sys.executable, "-m", "rlft.cli.main", *args]


def test_sigkill_then_resume_reaches_same_total_steps(tmp_path: Path) -> None:
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(CONFIG))
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_rlft("train", str(cfg_path), "--run-dir", str(straight), "-q"), check=True)

    proc = subprocess.Popen(_rlft("train", str(cfg_path), "--run-dir", str(killed), "-q"))
    deadline = time.time() + 120
    while time.time() < deadline and not list((killed / "checkpoints" / "finetune").glob("0*")):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "final").exists()  # it really was interrupted mid-run

    # A new run into the same folder is refused; --resume continues it.
    refused = subprocess.run(_rlft("train", str(cfg_path), "--run-dir", str(killed), "-q"), capture_output=True,
                             text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    subprocess.run(_rlft("train", "--run-dir", str(killed), "--resume", "-q"), check=True)

    steps = [read_json(d / "run.json")["stages"]["finetune"]["metrics"]["total_timesteps"] for d in (straight, killed)]
    rollout = 2 * 128
    assert steps[0] == steps[1] == -(-6144 // rollout) * rollout
    assert (killed / "final" / "agent.json").is_file()


def test_state_right_after_resume_equals_saved(tmp_path: Path) -> None:
    from rlft.core.checkpoint import Checkpointer, load_trainer_state
    from rlft.pipeline.config import pipeline_from_dict
    from rlft.policy.stages.finetune import FinetuneRunner

    cfg = pipeline_from_dict(CONFIG).section("finetune")
    cfg.total_timesteps = 1024
    checkpoints = Checkpointer(tmp_path / "run" / "checkpoints" / "finetune")
    first = FinetuneRunner(cfg=cfg, checkpoints=checkpoints, env_spec="cartpole", env_kwargs={}, seed=0, device="cpu")
    first.build(None, cfg.policy)
    first.learn()
    first.maybe_checkpoint(force=True)
    ckpt = checkpoints.latest()
    assert ckpt is not None and ckpt.name == "000001024"

    torch.manual_seed(12345)  # scramble the RNGs; resuming must restore the saved ones
    np.random.seed(54321)
    second = FinetuneRunner(cfg=cfg, checkpoints=checkpoints, env_spec="cartpole", env_kwargs={}, seed=0,
                            device="cpu")
    second.build(None, cfg.policy)
    second.restore_checkpoint(ckpt)

    saved_weights = load_safetensors(ckpt / "model.safetensors")
    for k, v in second.model.policy.state_dict().items():
        assert torch.equal(v, saved_weights[k]), k
    saved_opt = first.model.policy.optimizer.state_dict()
    new_opt = second.model.policy.optimizer.state_dict()
    for idx, state in saved_opt["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(new_opt["state"][idx][key]), torch.as_tensor(value)), (idx, key)
    state = load_trainer_state(ckpt)
    assert torch.equal(torch.get_rng_state(), state.tensors["rng.torch"])
    assert np.array_equal(np.random.get_state()[1], state.tensors["rng.numpy_keys"].numpy().astype(np.uint32))
    assert second.model.num_timesteps == first.model.num_timesteps == 1024
    assert second.model._n_updates == first.model._n_updates
    ref = load_safetensors(ckpt / "reference" / "model.safetensors")
    for k, v in second.model.ref_policy.state_dict().items():
        assert torch.equal(v, ref[k]), k
