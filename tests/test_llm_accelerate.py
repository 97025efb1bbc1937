"""Scale-out smoke test: an LLM stage under `accelerate launch` with 2 CPU processes (DDP over gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from llm_helpers import tiny_llm  # noqa: F401  (session fixture)

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_sft_stage_under_accelerate_launch_with_two_cpu_processes(tiny_llm: Path, tmp_path: Path) -> None:  # noqa: F811
    config = {"device": "cpu", "stages": ["sft"], "model": {"name": str(tiny_llm), "num_threads": 1},
              "sft": {"data": {"source": "addition", "size": 64}, "max_steps": 3, "batch_size": 4,
                      "logging_steps": 1, "eval": {"enabled": False}}}
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    bindir = Path(sys.executable).parent
    cmd = [str(bindir / "accelerate"), "launch", "--config_file", str(ROOT / "configs/accelerate/ddp.yaml"), "--cpu",
           "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(free_port()),
           str(bindir / "rlft"), "train", str(cfg), "--run-dir", str(run), "-q"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    progress = json.loads((run / "run.json").read_text())
    assert progress["stages"]["sft"]["metrics"]["train/steps"] == 3
    state = json.loads((run / "checkpoints" / "sft" / "000000003" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert (run / "final" / "model.safetensors").is_file()
