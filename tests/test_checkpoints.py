"""Checkpoints: save -> load -> same actions; corrupt files; SB3 .zip files without executing their pickles."""

from __future__ import annotations

import base64
import json
import pickle
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlft
from rlft.cli.main import main
from rlft.core.errors import CheckpointError
from rlft.policies.checkpoint import load_policy, save_policy
from rlft.policies.networks import PolicySpec, build_policy
from rlft.policy.agents import PolicyAgent

OBS = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)


def _saved_policy(folder: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    policy = build_policy(PolicySpec(net_arch=[16, 16]), gym.spaces.Box(-np.inf, np.inf, (4,)), gym.spaces.Discrete(2))
    save_policy(folder, policy, PolicySpec(net_arch=[16, 16]), masked=False, env="cartpole", step=7)
    return policy


def test_save_load_identical_actions(tmp_path: Path) -> None:
    policy = _saved_policy(tmp_path / "ckpt")
    loaded, meta = load_policy(tmp_path / "ckpt")
    assert meta["step"] == 7 and meta["env"] == "cartpole"
    agent = rlft.load_agent(tmp_path / "ckpt")
    original = PolicyAgent(policy)
    assert [agent.act(o) for o in OBS] == [original.act(o) for o in OBS]
    for k, v in policy.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


@pytest.mark.parametrize("damage", ["truncate", "garbage_json", "missing_weights"])
def test_corrupt_checkpoint_clear_error(tmp_path: Path, damage: str, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "ckpt"
    _saved_policy(folder)
    weights = folder / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "garbage_json":
        (folder / "agent.json").write_text('{"format": "rlft-agent", "policy": ')
    else:
        weights.unlink()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(CheckpointError):
        rlft.load_agent(folder)
    assert main(["eval", str(folder), "--env", "cartpole", "--episodes", "1", "-q"]) == 2
    err = capsys.readouterr().err
    assert "corrupt" in err or "does not exist" in err
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing overwritten


class _Exploit:
    """Unpickling this writes a file (stands in for arbitrary code execution)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (Path(self.marker), "pwned"))


def _sb3_zip(tmp_path: Path, marker: Path) -> Path:
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [32, 32]}, seed=0)
    path = tmp_path / "ppo.zip"
    model.save(path)
    # Plant a malicious pickle in the metadata, as a hostile file would.
    with zipfile.ZipFile(path) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    data = json.loads(files["data"])
    data["policy_kwargs"][":serialized:"] = base64.b64encode(pickle.dumps(_Exploit(str(marker)))).decode()
    data["observation_space"][":serialized:"] = base64.b64encode(pickle.dumps(_Exploit(str(marker)))).decode()
    files["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return path


def test_sb3_zip_weights_only_executes_no_pickle(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from stable_baselines3 import PPO

    marker = tmp_path / "pwned.txt"
    path = _sb3_zip(tmp_path, marker)
    agent = rlft.load_agent(path)
    assert not marker.exists()
    # The weights are the real ones: same greedy actions as SB3's own policy.
    policy = PPO("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [32, 32]}, seed=0).policy
    assert [agent.act(o) for o in OBS] == [int(policy.predict(o, deterministic=True)[0]) for o in OBS]
    # CLI: evaluating the zip works without --trust-pickle, and still runs no pickle.
    assert main(["eval", str(path), "--env", "cartpole", "--episodes", "1", "-q"]) == 0
    assert not marker.exists()
    # The planted pickle is real: SB3's full load (the --trust-pickle path) does execute it.
    try:
        rlft.load_agent(path, trust_pickle=True)
    except CheckpointError:
        pass
    assert marker.read_text() == "pwned"


def test_sb3_zip_full_load_needs_opt_in(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    path = tmp_path / "clean.zip"
    PPO("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [8]}, seed=0).save(path)
    safe = rlft.load_agent(path)
    trusted = rlft.load_agent(path, trust_pickle=True)
    assert [safe.act(o) for o in OBS] == [trusted.act(o) for o in OBS]
    # Without the opt-in the pickle path is never taken; with it, SB3's own full load is (the CLI flag included).
    assert safe.meta["loader"] == "sb3-weights-only" and trusted.meta["loader"] == "sb3-trusted"  # type: ignore[attr-defined]
    assert main(["eval", str(path), "--env", "cartpole", "--episodes", "1", "-q", "--trust-pickle", "--json"]) == 0


def test_sb3_zip_not_a_zip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    assert main(["eval", str(bad), "--env", "cartpole", "--episodes", "1", "-q"]) == 2
    assert "not a readable Stable-Baselines3 .zip" in capsys.readouterr().err


def test_load_agent_run_without_final(tmp_path: Path) -> None:
    from rlft.core.rundir import RunDir

    RunDir.create(tmp_path / "run")
    with pytest.raises(CheckpointError, match="has no final agent yet"):
        rlft.load_agent(tmp_path / "run")
