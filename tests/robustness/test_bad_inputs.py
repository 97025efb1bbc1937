"""A catalogue of bad inputs: each one, given to the real command line, exits with code 2 and a message naming the
problem -- never a traceback, never a silent success.

Each case is ``(id, argv builder, words the message must contain)``; the builders get a folder of prepared inputs
(damaged datasets, a bad config file) so a new case is one line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rlft.cli.main import main
from rlft.core.errors import ConfigError
from rlft.pipeline.config import pipeline_from_dict


def _truncate(file: Path, keep: float) -> None:
    raw = file.read_bytes()
    file.write_bytes(raw[: int(len(raw) * keep)])


def _write(out: Path, observations: np.ndarray, actions: np.ndarray, rewards: list[float]) -> None:
    """A one-episode CartPole dataset with the given arrays (for values a real env never produces)."""
    import gymnasium as gym
    from minari.data_collector.episode_buffer import EpisodeBuffer

    from rlft.policy.datasets import write_dataset

    env = gym.make("CartPole-v1")
    n = len(actions)
    episode = EpisodeBuffer(id=0, observations=observations, actions=actions, rewards=rewards,
                            terminations=[False] * (n - 1) + [True], truncations=[False] * n, infos={})
    write_dataset(out, [episode], env.observation_space, env.action_space, {"rlft_env": "cartpole"})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of bad inputs: damaged copies of a tiny recorded dataset, datasets with NaN / inf, a bad config."""
    from test_dataset_fuzz import hdf5_copy  # type: ignore[import-not-found]

    from rlft.policy.stages.record import record

    root = tmp_path_factory.mktemp("bad-inputs")
    good = root / "good"
    record("cartpole", "random", 3, good, seed=0)

    def damaged(name: str, harm: Callable[[Path], None], src: Path = good) -> None:
        shutil.copytree(src, root / name)
        harm(root / name)

    damaged("truncated-arrow", lambda d: _truncate(d / "data" / "1" / "part-0.arrow", 0.5))
    damaged("overwritten-arrow", lambda d: (d / "data" / "1" / "part-0.arrow").write_bytes(b"\x00" * 300))
    damaged("deleted-episode", lambda d: shutil.rmtree(d / "data" / "1"))
    damaged("metadata-not-json", lambda d: (d / "data" / "metadata.json").write_text("{\"total_episodes\": 3,"))
    hdf5_copy(good, root / "hdf5")
    damaged("truncated-hdf5", lambda d: _truncate(d / "data" / "main_data.hdf5", 0.5), src=root / "hdf5")

    obs = np.zeros((6, 4), dtype=np.float32)
    acts = np.zeros(5, dtype=np.int64)
    nan_obs = obs.copy()
    nan_obs[3, 1] = np.nan
    _write(root / "nan-observations", nan_obs, acts, [1.0] * 5)
    _write(root / "inf-rewards", obs, acts, [1.0, 1.0, float("inf"), 1.0, 1.0])
    _write(root / "bad-actions", obs, np.array([0, 1, 7, 0, 1]), [1.0] * 5)

    (root / "nan.yaml").write_text("stages: [finetune]\nfinetune:\n  learning_rate: .nan\n")
    return root


def _imitate(name: str) -> Callable[[Path], list[str]]:
    return lambda d: ["imitate", "--env", "cartpole", "--dataset", str(d / name), "--run-dir", str(d / f"run-{name}")]


CASES: list[tuple[str, Callable[[Path], list[str]], list[str]]] = [
    # NaN / inf never pass the config loader (from --set, from a file; YAML's .nan and the string "nan").
    ("set-lr-yaml-nan", lambda d: ["config", "--set", "finetune.learning_rate=.nan"],
     ["finetune.learning_rate", "--set", "finite"]),
    ("set-lr-string-nan", lambda d: ["config", "--set", "finetune.learning_rate=nan"],
     ["finetune.learning_rate", "finite"]),
    ("set-lr-inf", lambda d: ["config", "--set", "finetune.learning_rate=inf"], ["finetune.learning_rate", "finite"]),
    ("set-gamma-minus-inf", lambda d: ["config", "--set", "imitate.gamma=-.inf"], ["imitate.gamma", "finite"]),
    ("set-stop-at-nan", lambda d: ["config", "--set", "finetune.stop_at=.nan"], ["finetune.stop_at", "finite"]),
    ("set-lr-too-big", lambda d: ["config", "--set", "finetune.learning_rate=1e400"],
     ["finetune.learning_rate", "finite"]),
    ("file-lr-nan", lambda d: ["config", str(d / "nan.yaml")], ["finetune.learning_rate", "nan.yaml", "finite"]),
    # Count and seed flags have the bounds of the config keys they stand for.
    ("record-episodes-negative", lambda d: ["record", "--env", "cartpole", "--episodes", "-3", "--out",
                                            str(d / "out-neg")], ["--episodes", "-3", ">= 1"]),
    ("record-episodes-zero", lambda d: ["record", "--env", "cartpole", "--episodes", "0", "--out", str(d / "out-0")],
     ["--episodes", ">= 1", "record.episodes"]),
    ("record-seed-negative", lambda d: ["record", "--env", "cartpole", "--seed", "-1", "--out", str(d / "out-s")],
     ["--seed", ">= 0"]),
    ("eval-episodes-negative", lambda d: ["eval", str(d / "no-run"), "--env", "cartpole", "--episodes", "-5"],
     ["--episodes", "-5", ">= 1"]),
    ("eval-seed-negative", lambda d: ["eval", str(d / "no-run"), "--env", "cartpole", "--seed", "-1"],
     ["--seed", ">= 0", "eval.seed"]),
    ("arena-episodes-zero", lambda d: ["arena", "random", "random", "--env", "tictactoe", "--episodes", "0"],
     ["--episodes", ">= 1"]),
    ("arena-seed-negative", lambda d: ["arena", "random", "random", "--env", "tictactoe", "--seed", "-2"],
     ["--seed", ">= 0"]),
    ("play-games-zero", lambda d: ["play", "random", "--env", "tictactoe", "--games", "0"], ["--games", ">= 1"]),
    ("play-seed-negative", lambda d: ["play", "random", "--env", "tictactoe", "--seed", "-1"], ["--seed", ">= 0"]),
    ("render-fps-zero", lambda d: ["render", "random", "random", "--env", "tictactoe", "--fps", "0", "--out",
                                   str(d / "g.gif")], ["--fps", ">= 1"]),
    ("render-seed-negative", lambda d: ["render", "random", "random", "--env", "tictactoe", "--seed", "-1", "--out",
                                        str(d / "g.gif")], ["--seed", ">= 0"]),
    ("imitate-epochs-negative", lambda d: ["imitate", "--env", "cartpole", "--epochs", "-1"],
     ["--epochs", "imitate.epochs", ">= 0"]),
    ("finetune-timesteps-zero", lambda d: ["finetune", "--env", "cartpole", "--timesteps", "0"],
     ["--timesteps", "finetune.total_timesteps"]),
    # Damaged datasets name the dataset and the fix.
    ("dataset-truncated-arrow", _imitate("truncated-arrow"), ["truncated-arrow", "damaged", "part-0.arrow", "record"]),
    ("dataset-overwritten-arrow", _imitate("overwritten-arrow"), ["overwritten-arrow", "damaged", "Restore"]),
    ("dataset-deleted-episode", _imitate("deleted-episode"), ["deleted-episode", "data/1' is missing", "record"]),
    ("dataset-metadata-not-json", _imitate("metadata-not-json"), ["metadata-not-json", "not valid JSON"]),
    ("dataset-truncated-hdf5", _imitate("truncated-hdf5"), ["truncated-hdf5", "main_data.hdf5", "damaged"]),
    ("dataset-nan-observations", _imitate("nan-observations"), ["nan-observations", "non-finite observations"]),
    ("dataset-inf-rewards", _imitate("inf-rewards"), ["inf-rewards", "non-finite rewards"]),
    ("dataset-bad-actions", _imitate("bad-actions"), ["bad-actions", "action 7", "outside the action space"]),
    ("dataset-path-too-long", lambda d: ["imitate", "--env", "cartpole", "--dataset", "x" * 5000, "--run-dir",
                                         str(d / "run-long")], ["cannot be opened", "File name too long"]),
]


@pytest.mark.parametrize("build_argv, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_a_message(inputs: Path, build_argv: Callable[[Path], list[str]], words: list[str],
                                          capsys: pytest.CaptureFixture) -> None:
    argv = [*build_argv(inputs), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for word in words:
        assert word in err, f"{word!r} not in: {err}"


def test_record_with_bad_episodes_writes_nothing(inputs: Path) -> None:
    for count in ("-3", "0"):
        out = inputs / f"nothing-{count}"
        assert main(["record", "--env", "cartpole", "--episodes", count, "--out", str(out), "-q"]) == 2
        assert not out.exists()


def test_config_docs_into_a_closed_pipe_is_quiet() -> None:
    """`rlft config --docs | head`: no BrokenPipeError traceback when the reader has gone away."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that stopped before the first write: the write fails with EPIPE, every time
    try:
        code = "import sys; from rlft.cli.main import main; sys.exit(main(['config', '--docs']))"
        writer = subprocess.run([sys.executable, "-c", code], stdout=write_end, stderr=subprocess.PIPE, timeout=120,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"})
    finally:
        os.close(write_end)
    assert writer.stderr.decode() == ""
    assert writer.returncode == 141


def test_finetune_help_states_the_init_default(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: scratch, or with --config the config's finetune.start_from" in text


def test_moved_key_with_stages_not_a_list() -> None:
    with pytest.raises(ConfigError):
        pipeline_from_dict({"tuning": {}, "stages": 5})
