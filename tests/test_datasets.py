"""Recorded games: Minari format both ways, and clear errors for missing or mismatched datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import PLUGINS, tiny_overrides
from rlft.cli.main import main
from rlft.core.errors import DatasetError
from rlft.policy.datasets import load_transitions


def test_recorded_dataset_is_plain_minari(expert_dataset: Path) -> None:
    from minari.dataset.minari_dataset import MinariDataset

    ds = MinariDataset(expert_dataset / "data")  # Minari itself reads what rlft wrote
    assert ds.total_episodes == 30
    ep = next(iter(ds.iterate_episodes()))
    assert len(ep.observations) == len(ep.actions) + 1 == 501
    data = load_transitions(expert_dataset)
    assert len(data) == 15_000 and data.truncated.sum() == 30 and not data.terminated.any()


def test_reads_a_dataset_minari_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gymnasium as gym
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari-root"))
    from minari.data_collector.episode_buffer import EpisodeBuffer

    env = gym.make("CartPole-v1")
    buffers = []
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        steps: dict[str, list] = {"obs": [obs], "act": [], "rew": [], "term": [], "trunc": []}
        done = False
        while not done:
            action = env.action_space.sample()
            obs, rew, term, trunc, _ = env.step(action)
            for key, value in zip(["obs", "act", "rew", "term", "trunc"], [obs, action, rew, term, trunc]):
                steps[key].append(value)
            done = term or trunc
        buffers.append(EpisodeBuffer(id=seed, observations=np.array(steps["obs"]), actions=np.array(steps["act"]),
                                     rewards=steps["rew"], terminations=steps["term"], truncations=steps["trunc"],
                                     infos={}))
    # Minari's own writer, in its default (HDF5) format.
    minari.create_dataset_from_buffers("cartpole/random-v0", buffers, env=env, algorithm_name="random")
    data = load_transitions("cartpole/random-v0")  # by local id
    assert data.episode.max() == 2
    data2 = load_transitions(tmp_path / "minari-root" / "cartpole" / "random-v0")  # by folder
    np.testing.assert_array_equal(data.actions, data2.actions)


def test_record_cli_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "games"
    assert main(["record", "--env", "cartpole", "--agent", "expert", "--episodes", "2", "--out", str(out), "-q"]) == 0
    before = sorted(p.name for p in out.rglob("*"))
    assert main(["record", "--env", "cartpole", "--agent", "expert", "--episodes", "3", "--out", str(out), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.rglob("*")) == before


def test_record_with_a_class_agent_from_a_file(tmp_path: Path) -> None:
    env = f"{PLUGINS / 'good_env.py'}:make_env"
    out = tmp_path / "walk"
    assert main(["record", "--env", env, "--agent", f"{PLUGINS / 'good_env.py'}:RightExpert", "--episodes", "2",
                 "--out", str(out), "-q"]) == 0
    data = load_transitions(out)
    assert (data.actions == 1).all() and data.terminated.sum() == 2


def test_missing_dataset_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_transitions(tmp_path / "nope")
    run_dir = tmp_path / "run"
    assert main(["imitate", "--env", "cartpole", "--dataset", str(tmp_path / "nope"), "--run-dir", str(run_dir),
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "rlft record" in err and "Traceback" not in err


def test_dataset_spaces_must_match_env(expert_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    env = f"{PLUGINS / 'good_env.py'}:make_env"
    args = ["imitate", "--env", env, "--dataset", str(expert_dataset), "--run-dir", str(tmp_path / "r"), "-q"]
    for item in tiny_overrides():
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "does not match the env" in err and "(4,)" in err and "(6,)" in err


def test_corrupt_dataset(tmp_path: Path, expert_dataset: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(expert_dataset, bad)
    (bad / "data" / "metadata.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cannot be read"):
        load_transitions(bad)
