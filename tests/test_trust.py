"""Nothing a file names runs without an opt-in: a ``module:Name`` / ``file.py:Name`` spec read from a run folder's
saved config or a checkpoint's ``agent.json`` is refused unless ``--trust-code`` -- proven with a plugin file whose
import would create a marker file: the marker never appears without the flag, and does with it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from llm_helpers import tiny_llm  # noqa: F401  (session fixture)

import rlft
from rlft.core.errors import PluginError
from rlft.pipeline.config import pipeline_from_dict, pipeline_to_dict
from rlft.policies.checkpoint import save_policy
from rlft.policies.networks import PolicySpec, build_policy

PAYLOAD = """
import pathlib, gymnasium as gym
pathlib.Path({marker!r}).write_text("the file's code ran")
def make_env(**kwargs):
    return gym.make("CartPole-v1")
"""


def _payload(tmp_path: Path) -> tuple[str, Path]:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "payload.py"
    path.write_text(PAYLOAD.format(marker=str(marker)))
    return f"{path}:make_env", marker


def _run_folder(tmp_path: Path, env_spec: str) -> Path:
    """A finished run folder (as someone might send one) whose saved config names ``env_spec``."""
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    cfg = pipeline_from_dict({"stages": ["finetune"], "finetune": {"start_from": "scratch"}})
    data = pipeline_to_dict(cfg)
    data["env"]["id"] = env_spec
    (run / "config.yaml").write_text(yaml.safe_dump(data))
    (run / "run.json").write_text(json.dumps({"created": 0, "stages": {}}))
    policy = build_policy(PolicySpec(net_arch=[8]), gym.spaces.Box(-np.inf, np.inf, (4,)), gym.spaces.Discrete(2))
    save_policy(run / "final", policy, PolicySpec(net_arch=[8]), masked=False, env=env_spec)
    return run


def _rlft(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "rlft.cli.main", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_eval_of_a_run_folder_does_not_import_the_code_its_config_names(tmp_path: Path) -> None:
    spec, marker = _payload(tmp_path)
    run = _run_folder(tmp_path, spec)
    refused = _rlft("eval", str(run), "--episodes", "1", "-q")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert spec in refused.stderr and "config.yaml" in refused.stderr and "--trust-code" in refused.stderr
    assert not marker.exists()
    trusted = _rlft("eval", str(run), "--episodes", "1", "-q", "--trust-code")
    assert trusted.returncode == 0, trusted.stderr[-2000:]
    assert marker.exists()  # the opt-in really lets it run


@pytest.mark.parametrize("command", [["play"], ["arena", "random"], ["render", "random"]])
def test_play_arena_render_of_a_run_folder_do_not_import_its_code(tmp_path: Path, command: list[str]) -> None:
    spec, marker = _payload(tmp_path)
    run = _run_folder(tmp_path, spec)
    refused = _rlft(command[0], str(run), *command[1:], "-q")
    assert refused.returncode == 2 and spec in refused.stderr and "--trust-code" in refused.stderr
    assert not marker.exists()


def test_resume_does_not_import_the_code_the_saved_config_names(tmp_path: Path) -> None:
    spec, marker = _payload(tmp_path)
    run = _run_folder(tmp_path, spec)
    shutil.rmtree(run / "final")
    refused = _rlft("train", "--run-dir", str(run), "--resume", "-q")
    assert refused.returncode == 2 and spec in refused.stderr and "--trust-code" in refused.stderr
    assert not marker.exists()


def test_an_agent_file_naming_code_is_refused(tmp_path: Path, tiny_llm: Path) -> None:  # noqa: F811
    spec, marker = _payload(tmp_path)
    folder = tmp_path / "llm"
    shutil.copytree(tiny_llm, folder)
    meta = json.loads((folder / "agent.json").read_text())
    (folder / "agent.json").write_text(json.dumps({**meta, "env": spec}))  # an LLM "trained on" that env
    with pytest.raises(PluginError, match=r"agent\.json.*--trust-code"):
        rlft.load_agent(folder, device="cpu")
    assert not marker.exists()


def test_the_users_own_code_specs_still_work(tmp_path: Path) -> None:
    """A spec given on the command line (or in the config of a new run) is the user's: it is imported."""
    spec, marker = _payload(tmp_path)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"env": {"id": spec}, "stages": ["record"], "record": {"agent": "random",
                                                                                        "episodes": 1}}))
    done = _rlft("train", str(cfg), "--run-dir", str(tmp_path / "new"), "-q")
    assert done.returncode == 0, done.stderr[-2000:]
    assert marker.exists()
