"""The config system: precedence, validation errors naming key and source, and the CLI's exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlft.cli.main import main
from rlft.core.config import from_dict, load_config
from rlft.core.errors import ConfigError
from rlft.pipeline.runner import PipelineConfig


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_precedence_defaults_file_command_line(tmp_path: Path) -> None:
    path = write(tmp_path, {"finetune": {"total_timesteps": 1234, "learning_rate": 1e-3}})
    cfg = load_config(PipelineConfig, path, ["finetune.total_timesteps=99"])
    assert cfg.finetune.total_timesteps == 99  # command line beats file
    assert cfg.finetune.learning_rate == pytest.approx(1e-3)  # file beats default
    assert cfg.finetune.n_epochs == PipelineConfig().finetune.n_epochs  # default kept


def test_yaml_exponent_without_dot_is_a_float(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("finetune:\n  learning_rate: 3e-4\n")  # YAML 1.1 reads this as a string
    assert load_config(PipelineConfig, path).finetune.learning_rate == pytest.approx(3e-4)


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"finetune": {"learning_rat": 0.1}})
    with pytest.raises(ConfigError) as e:
        load_config(PipelineConfig, path)
    assert "finetune.learning_rat" in str(e.value) and str(path) in str(e.value)
    assert "learning_rate" in str(e.value)  # lists the valid keys


def test_wrong_type_names_key_and_source(tmp_path: Path) -> None:
    path = write(tmp_path, {"imitate": {"epochs": "many"}})
    with pytest.raises(ConfigError, match=r"imitate\.epochs.*wrong type.*integer"):
        load_config(PipelineConfig, path)
    with pytest.raises(ConfigError, match=r"--set finetune\.n_envs=two"):
        load_config(PipelineConfig, None, ["finetune.n_envs=two"])


def test_out_of_range_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"finetune\.gamma.*out of range.*<= 1"):
        from_dict(PipelineConfig, {"finetune": {"gamma": 1.5}})


def test_unknown_stage_and_literal_choices() -> None:
    with pytest.raises(ConfigError, match="unknown stage"):
        from_dict(PipelineConfig, {"stages": ["record", "dance"]})
    with pytest.raises(ConfigError, match=r"must be one of \['full', 'freeze', 'lora'\]"):
        from_dict(PipelineConfig, {"finetune": {"tuning": {"mode": "half"}}})


@pytest.mark.parametrize("bad", [{"finetune": {"nope": 1}}, {"record": {"episodes": "x"}},
                                 {"record": {"episodes": 0}}])
def test_cli_bad_config_exits_2_without_traceback(tmp_path: Path, bad: dict, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, bad)
    run_dir = tmp_path / "run"
    assert main(["train", str(path), "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not run_dir.exists()  # nothing written for an invalid config


def test_every_shipped_config_loads() -> None:
    for path in sorted(Path(__file__).parents[1].joinpath("configs").glob("*.yaml")):
        load_config(PipelineConfig, path)


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    from rlft.core.config import dump_yaml

    cfg = load_config(PipelineConfig, None, ["finetune.kl_coef=0.3", "env.id=CartPole-v1"])
    dump_yaml(cfg, tmp_path / "c.yaml")
    assert load_config(PipelineConfig, tmp_path / "c.yaml") == cfg
