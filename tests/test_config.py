"""The config system: precedence, validation errors naming key and source, and the CLI's exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlft.cli.main import main
from rlft.core.errors import ConfigError
from rlft.pipeline.config import dump_pipeline, load_pipeline, pipeline_from_dict
from rlft.policy.config import FinetuneConfig


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_precedence_defaults_file_command_line(tmp_path: Path) -> None:
    path = write(tmp_path, {"finetune": {"total_timesteps": 1234, "learning_rate": 1e-3}})
    finetune = load_pipeline(path, ["finetune.total_timesteps=99"]).section("finetune")
    assert finetune.total_timesteps == 99  # command line beats file
    assert finetune.learning_rate == pytest.approx(1e-3)  # file beats default
    assert finetune.n_epochs == FinetuneConfig().n_epochs  # default kept


def test_yaml_exponent_without_dot_is_a_float(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("finetune:\n  learning_rate: 3e-4\n")  # YAML 1.1 reads this as a string
    assert load_pipeline(path).section("finetune").learning_rate == pytest.approx(3e-4)


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"finetune": {"learning_rat": 0.1}})
    with pytest.raises(ConfigError) as e:
        load_pipeline(path)
    assert "finetune.learning_rat" in str(e.value) and str(path) in str(e.value)
    assert "learning_rate" in str(e.value)  # lists the valid keys


def test_wrong_type_names_key_and_source(tmp_path: Path) -> None:
    path = write(tmp_path, {"imitate": {"epochs": "many"}})
    with pytest.raises(ConfigError, match=r"imitate\.epochs.*wrong type.*integer"):
        load_pipeline(path)
    with pytest.raises(ConfigError, match=r"--set finetune\.n_envs=two"):
        load_pipeline(None, ["finetune.n_envs=two"])


def test_out_of_range_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"finetune\.gamma.*out of range.*<= 1"):
        pipeline_from_dict({"finetune": {"gamma": 1.5}})


def test_unknown_stage_and_literal_choices() -> None:
    with pytest.raises(ConfigError, match="(?i)unknown stage 'dance'"):
        pipeline_from_dict({"stages": ["record", "dance"]})
    with pytest.raises(ConfigError, match=r"must be one of \['full', 'freeze', 'lora'\]"):
        pipeline_from_dict({"finetune": {"tuning": {"mode": "half"}}})


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
        load_pipeline(path)


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_pipeline(None, ["finetune.kl_coef=0.3", "env.id=CartPole-v1", "stages=[record,finetune,again]",
                               "again.kind=finetune", "again.kl_coef=0.0"])
    dump_pipeline(cfg, tmp_path / "c.yaml")
    back = load_pipeline(tmp_path / "c.yaml")
    assert back == cfg and back.kinds["again"] == "finetune" and back.section("again").kl_coef == 0.0


def test_a_stage_reads_its_own_section_and_a_kind_can_run_twice() -> None:
    cfg = pipeline_from_dict({"stages": ["finetune", "finetune_b"], "finetune": {"total_timesteps": 10},
                              "finetune_b": {"kind": "finetune", "start_from": "finetune", "total_timesteps": 20}})
    assert [type(cfg.section(s)) for s in cfg.stages] == [FinetuneConfig, FinetuneConfig]
    assert cfg.section("finetune_b").total_timesteps == 20 and cfg.section("finetune").total_timesteps == 10
    with pytest.raises(ConfigError, match="twice"):
        pipeline_from_dict({"stages": ["finetune", "finetune"]})


@pytest.mark.parametrize(("data", "message"), [
    ({"stages": ["init", "sft"]}, r"stage 'init' was renamed: it is now 'build'"),
    ({"stages": ["build"], "init": {"level": "char"}}, r"renamed to 'build'"),
    ({"finetune": {"init": "imitate"}}, r"'finetune\.init'.*renamed: it is now 'finetune\.start_from'"),
    ({"stages": ["sft"], "tuning": {"mode": "lora"}}, r"'tuning'.*moved.*sft\.tuning"),
    ({"stages": ["record"], "finetun": {}}, r"Unknown config key 'finetun'"),
])
def test_old_and_unknown_names_get_errors_that_name_the_fix(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        pipeline_from_dict(data)
