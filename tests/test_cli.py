"""Smoke tests of every subcommand on tiny budgets, and the CLI's promises (help, refusal to overwrite)."""

from __future__ import annotations

from pathlib import Path

import pytest

import rlft
from conftest import tiny_overrides
from rlft.cli.main import build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help_with_an_example(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "example:" in capsys.readouterr().out


def test_train_pipeline_eval_and_load_agent(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    args = ["train", "configs/cartpole.yaml", "--run-dir", str(run_dir), "-q"]
    for item in tiny_overrides():
        args += ["--set", item]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "imitate" in out and "finetune" in out and "±" in out  # the result table
    for name in ("config.yaml", "run.json", "results.json", "run.log", "final/agent.json", "final/model.safetensors"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tb" / "finetune").glob("events.out.tfevents.*"))
    agent = rlft.load_agent(run_dir)
    import gymnasium as gym

    obs, _ = gym.make("CartPole-v1").reset(seed=0)
    assert agent.act(obs, action_mask=None, deterministic=True) in (0, 1)

    assert main(["eval", str(run_dir), "--episodes", "2", "-q", "--json"]) == 0
    assert '"mean_return"' in capsys.readouterr().out
    # A second run into the same folder is refused, and the first run is untouched.
    before = (run_dir / "final" / "model.safetensors").read_bytes()
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert (run_dir / "final" / "model.safetensors").read_bytes() == before


def test_tensorboard_namespaces(tmp_path: Path) -> None:
    from rlft.core.metrics import read_scalars

    run_dir = tmp_path / "run"
    args = ["train", "cartpole", "--run-dir", str(run_dir), "-q"]
    for item in tiny_overrides(**{"finetune.kl_coef": 0.2}):
        args += ["--set", item]
    assert main(args) == 0
    imitation = read_scalars(run_dir / "tb" / "imitate")
    assert {"imitation/loss", "imitation/accuracy", "imitation/holdout_accuracy", "imitation/critic_loss"} <= set(
        imitation)
    finetune = read_scalars(run_dir / "tb" / "finetune")
    assert {"rollout/ep_rew_mean", "train/kl_ref", "train/kl_coef", "train/value_loss", "eval/mean_return"} <= set(
        finetune)


def test_record_imitate_finetune_as_separate_commands(tmp_path: Path) -> None:
    data = tmp_path / "games"
    assert main(["record", "--env", "cartpole", "--agent", "expert", "--episodes", "3", "--out", str(data), "-q"]) == 0
    sets = []
    for item in tiny_overrides():
        sets += ["--set", item]
    assert main(["imitate", "--env", "cartpole", "--dataset", str(data), "--run-dir", str(tmp_path / "bc"), "-q",
                 *sets]) == 0
    assert main(["finetune", "--env", "cartpole", "--init", str(tmp_path / "bc"), "--run-dir", str(tmp_path / "ppo"),
                 "-q", *sets]) == 0
    # The recorded games can also be made by a trained run acting as the agent.
    assert main(["record", "--env", "cartpole", "--agent", str(tmp_path / "ppo"), "--episodes", "2",
                 "--out", str(tmp_path / "games2"), "-q"]) == 0


def test_envs_check_env_config(capsys: pytest.CaptureFixture) -> None:
    assert main(["envs"]) == 0
    assert "cartpole" in capsys.readouterr().out
    assert main(["check-env", "CartPole-v1"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["config", "configs/cartpole.yaml", "--docs"]) == 0
    out = capsys.readouterr().out
    assert "finetune.kl_coef" in out and "Coefficient of KL" in out


def test_resume_requires_run_dir_and_existing_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--resume"]) == 2
    assert main(["train", "--run-dir", str(tmp_path / "none"), "--resume"]) == 2
    assert "Nothing to resume" in capsys.readouterr().err


def test_debug_shows_the_traceback_instead_of_the_one_paragraph(capsys: pytest.CaptureFixture) -> None:
    from rlft.core.errors import ConfigError

    assert main(["config", "--set", "finetune.n_envs=two"]) == 2  # without --debug: a message and exit code 2
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(ConfigError, match="finetune.n_envs"):  # with it: the exception itself, for the traceback
        main(["config", "--set", "finetune.n_envs=two", "--debug"])
