"""An env plugin that goes wrong in the middle of training is named in a clear error (exit 2, no traceback):
NaN observations are caught by `rlft check-env` and by the checked wrapper around user envs during training, and an
exception inside step() names the plugin and the call."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlft.cli.main import main

PLUGINS = Path(__file__).parent / "plugins" / "broken_envs.py"


def test_check_env_catches_nan_observations(capsys: pytest.CaptureFixture) -> None:
    assert main(["check-env", f"{PLUGINS}:make_nan_later"]) == 2
    err = capsys.readouterr().err
    assert "NaN or infinite" in err and "make_nan_later" in err and "Traceback" not in err


@pytest.mark.parametrize(("factory", "message"), [
    ("make_raises_later", "raised RuntimeError in step(): the simulator lost its connection"),
    ("make_nan_much_later", "returned an observation with NaN or infinite values from step()"),
])
def test_an_env_that_fails_mid_training_is_named(factory: str, message: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    spec = f"{PLUGINS}:{factory}"
    code = main(["finetune", "--env", spec, "--run-dir", str(tmp_path / "run"), "--timesteps", "2048", "-q",
                 "--set", "finetune.n_envs=1", "--set", "finetune.eval_every=0"])
    err = capsys.readouterr().err
    assert code == 2 and spec in err and message in err and "Traceback" not in err


def test_a_nan_env_is_refused_before_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["finetune", "--env", f"{PLUGINS}:make_nan_later", "--run-dir", str(tmp_path / "run"),
                 "--timesteps", "256", "-q"]) == 2
    assert "NaN or infinite" in capsys.readouterr().err


def test_an_agent_of_one_env_evaluated_on_another_is_a_clear_error(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    import gymnasium as gym
    import numpy as np

    from rlft.policies.checkpoint import save_policy
    from rlft.policies.networks import PolicySpec, build_policy

    policy = build_policy(PolicySpec(net_arch=[8]), gym.spaces.Box(-np.inf, np.inf, (4,)), gym.spaces.Discrete(2))
    save_policy(tmp_path / "cartpole-agent", policy, PolicySpec(net_arch=[8]), masked=False, env="cartpole")
    for command in (["eval", str(tmp_path / "cartpole-agent"), "--env", "tictactoe", "--episodes", "2"],
                    ["arena", str(tmp_path / "cartpole-agent"), "random", "--env", "tictactoe", "--episodes", "2"]):
        assert main([*command, "-q"]) == 2
        err = capsys.readouterr().err
        assert "does not fit the env 'tictactoe'" in err and "cartpole" in err and "Traceback" not in err


@pytest.mark.parametrize("command", [["play", "random"], ["arena", "random", "random"], ["render", "random", "random"]])
def test_game_commands_on_a_single_agent_env_say_so(command: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main([*command, "--env", "cartpole", "-q"]) == 2
    err = capsys.readouterr().err
    assert "single-agent env" in err and "Traceback" not in err
