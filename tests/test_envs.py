"""Env plugins: resolution by spec, the env checker, and rejecting broken envs before training."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import PLUGINS, tiny_overrides
from rlft.cli.main import main
from rlft.core.envs import check_env, resolve_env
from rlft.core.errors import EnvCheckError, PluginError


@pytest.fixture()
def custom_env_file(tmp_path: Path) -> Path:
    """A copy of the custom env in a folder no rlft file knows about."""
    path = tmp_path / "somewhere" / "my_env.py"
    path.parent.mkdir()
    shutil.copy(PLUGINS / "good_env.py", path)
    return path


def test_resolve_every_kind_of_spec(custom_env_file: Path) -> None:
    assert resolve_env("cartpole").builtin
    assert resolve_env("CartPole-v1").gym_id == "CartPole-v1"
    env = resolve_env(f"{custom_env_file}:make_env").make(size=4)
    assert env.observation_space.shape == (4,)
    assert resolve_env("rlft.envs.cartpole:make_env").make().spec.id == "CartPole-v1"


def test_unknown_spec_says_what_was_tried() -> None:
    with pytest.raises(PluginError, match="not a built-in env.*entry-point group 'rlft.envs'.*Gymnasium id"):
        resolve_env("NoSuchEnv")
    with pytest.raises(PluginError, match="does not exist"):
        resolve_env("missing/file.py:make_env")
    with pytest.raises(PluginError, match="has no attribute 'nope'"):
        resolve_env("rlft.envs.cartpole:nope")


def test_custom_env_passes_check_and_trains_with_finetune(custom_env_file: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    spec = f"{custom_env_file}:make_env"
    assert main(["check-env", spec]) == 0
    assert "OK" in capsys.readouterr().out
    run_dir = tmp_path / "run"
    args = ["finetune", "--env", spec, "--init", "scratch", "--run-dir", str(run_dir), "-q"]
    for item in tiny_overrides():
        args += ["--set", item]
    assert main(args) == 0
    assert (run_dir / "final" / "agent.json").is_file()


@pytest.mark.parametrize(("factory", "rule"), [
    ("make_bare_reset", "reset"),
    ("make_out_of_space", "observation space"),
])
def test_broken_env_rejected_naming_the_rule(factory: str, rule: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    spec = f"{PLUGINS / 'broken_envs.py'}:{factory}"
    with pytest.raises(EnvCheckError) as e:
        check_env(resolve_env(spec))
    assert spec in str(e.value) and rule in str(e.value)
    assert main(["check-env", spec]) == 2
    # ... and rejected before any training starts.
    run_dir = tmp_path / "run"
    assert main(["finetune", "--env", spec, "--init", "scratch", "--run-dir", str(run_dir), "-q"]) == 2
    err = capsys.readouterr().err
    assert rule in err and "Traceback" not in err
    assert not (run_dir / "checkpoints").exists()


def test_cartpole_builtin_passes_the_checker() -> None:
    assert isinstance(check_env(resolve_env("cartpole")), list)
