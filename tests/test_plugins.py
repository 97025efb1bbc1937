"""The plugin resolver: entry points offered by installed packages, and pretrained SB3 policies as starting points."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import PLUGINS, tiny_overrides
from rlft.cli.main import main
from rlft.core.envs import resolve_env
from rlft.core.plugins import resolve


@pytest.fixture()
def installed_plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package 'walkenvs' installed on sys.path with a dist-info offering an env through `rlft.envs`."""
    pkg = tmp_path / "site" / "walkenvs"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text((PLUGINS / "good_env.py").read_text())
    dist = tmp_path / "site" / "walkenvs-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: walkenvs\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[rlft.envs]\nlinewalk = walkenvs:make_env\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield "linewalk"
    sys.modules.pop("walkenvs", None)


def test_env_from_entry_point_group(installed_plugin_package: str, capsys: pytest.CaptureFixture) -> None:
    plugin = resolve_env(installed_plugin_package)
    assert plugin.make().observation_space.shape == (6,)
    assert main(["envs"]) == 0
    assert "linewalk" in capsys.readouterr().out
    assert main(["check-env", "linewalk"]) == 0


def test_resolve_reports_what_was_tried() -> None:
    with pytest.raises(Exception, match=r"Tried: built-in rewards \(exact\).*entry points in group 'rlft.rewards'"):
        resolve("nope", kind="reward", builtins={"exact": len}, group="rlft.rewards")


def test_finetune_directly_from_an_sb3_zip(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    zip_path = tmp_path / "pretrained.zip"
    PPO("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [32, 32]}, seed=0).save(zip_path)
    args = ["finetune", "--env", "cartpole", "--init", str(zip_path), "--run-dir", str(tmp_path / "ft"), "-q"]
    for item in tiny_overrides(**{"finetune.subprocess": "true"}):
        args += ["--set", item]
    assert main(args) == 0
    import rlft

    assert rlft.load_agent(tmp_path / "ft").meta["policy"]["net_arch"] == [32, 32]
