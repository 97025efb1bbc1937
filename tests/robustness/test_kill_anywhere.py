"""A tiny mixed pipeline (record -> imitate -> finetune -> build -> sft) killed with SIGKILL at many moments -- its
first second, the middle of stages, the middle of a Hugging Face checkpoint write -- always finishes with ``--resume``
at the same step counts as an uninterrupted run. The default run kills at a few moments; ``-m slow`` at 20."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

CONFIG = {
    "name": "kill-test", "num_threads": 1, "device": "cpu", "env": {"id": "cartpole"}, "keep_checkpoints": 0,
    "stages": ["record", "imitate", "finetune", "build", "sft"],
    "record": {"agent": "expert", "episodes": 3},
    "imitate": {"epochs": 6, "critic_warmup_epochs": 2, "checkpoint_every": 1},
    "finetune": {"start_from": "imitate", "total_timesteps": 1024, "n_envs": 2, "n_steps": 64, "batch_size": 64,
                 "n_epochs": 2, "eval_every": 0, "checkpoint_every": 128, "policy": {"net_arch": [16]}},
    "build": {"data": {"source": "addition", "size": 200}, "hidden_size": 16, "num_layers": 1, "num_heads": 2,
              "num_kv_heads": 1, "intermediate_size": 32, "max_length": 16},
    "sft": {"data": {"source": "addition", "size": 128}, "max_steps": 8, "batch_size": 8, "save_steps": 1,
            "logging_steps": 4, "eval": {"enabled": False}},
}


def _rlft(*args: str) -> list[str]:
    return [sys.executable, "-m", "rlft.cli.main", *args]


def _steps(run: Path) -> dict[str, object]:
    """What must match an uninterrupted run: each stage's step figures and newest checkpoint."""
    results = json.loads((run / "results.json").read_text())
    out: dict[str, object] = {name: {k: v for k, v in r["metrics"].items()
                                     if k in ("total_timesteps", "train/steps", "episodes", "steps")}
                              for name, r in results.items()}
    for stage in ("imitate", "finetune", "sft"):
        out[f"{stage} checkpoint"] = sorted(p.name for p in (run / "checkpoints" / stage).iterdir()
                                            if p.name.isdigit())[-1]
    return out


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, dict[str, object]]:
    root = tmp_path_factory.mktemp("kill")
    (root / "cfg.yaml").write_text(yaml.safe_dump(CONFIG))
    start = time.time()
    subprocess.run(_rlft("train", str(root / "cfg.yaml"), "--run-dir", str(root / "straight"), "-q"), check=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return root, time.time() - start, _steps(root / "straight")


def _kill_then_resume(root: Path, name: str, when: float | str) -> Path:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = root / name
    proc = subprocess.Popen(_rlft("train", str(root / "cfg.yaml"), "--run-dir", str(run), "-q"), env=env,
                            stderr=subprocess.DEVNULL)
    if when == "hf-write":  # the moment the trainer starts writing a checkpoint-N into its staging folder
        deadline = time.time() + 120
        while time.time() < deadline and not list((run / "checkpoints" / "sft" / ".hf").glob("checkpoint-*")):
            time.sleep(0.005)
    else:
        time.sleep(float(when))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resume = ["train", "--run-dir", str(run), "--resume", "-q"]
    if not (run / "config.yaml").is_file():  # killed before anything was saved: the same command again
        resume = ["train", str(root / "cfg.yaml"), "--run-dir", str(run), "-q"]
    done = subprocess.run(_rlft(*resume), env=env, capture_output=True, text=True)
    assert done.returncode == 0, (when, done.stderr[-3000:])
    return run


def _moments(total: float, n: int) -> list[float | str]:
    return [0.3, *(total * (i + 1) / (n + 1) for i in range(n - 2)), "hf-write"]


@pytest.mark.parametrize("index", range(3))
def test_killed_at_a_moment_then_resumed_ends_like_a_straight_run(straight: tuple[Path, float, dict[str, object]],
                                                                   index: int) -> None:
    root, seconds, expected = straight
    when = _moments(seconds, 3)[index]
    assert _steps(_kill_then_resume(root, f"killed-{index}", when)) == expected, when


@pytest.mark.slow
def test_killed_at_twenty_moments(straight: tuple[Path, float, dict[str, object]]) -> None:
    root, seconds, expected = straight
    for i, when in enumerate(_moments(seconds, 20)):
        assert _steps(_kill_then_resume(root, f"slow-{i}", when)) == expected, when
