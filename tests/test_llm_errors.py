"""Bad inputs to the LLM stages: a clear message naming the culprit, exit code 2, and the run folder intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from llm_helpers import tiny_llm, tiny_rl  # noqa: F401  (tiny_llm: session fixture)

from conftest import PLUGINS
from rlft.cli.main import main


def run_cli(tmp_path: Path, config: dict, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, Path]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    code = main(["train", str(path), "--run-dir", str(run), "-q"])
    return code, capsys.readouterr().err, run


def assert_intact(run: Path) -> None:
    """The run folder still holds its config and progress file, with the failed stage not marked done."""
    assert (run / "config.yaml").is_file()
    progress = json.loads((run / "run.json").read_text())
    assert progress["stages"] == {}
    assert not (run / "final").exists()


def test_unknown_model_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, run = run_cli(tmp_path, {"stages": ["sft"], "device": "cpu", "model": {"name": "/no/such/model"}},
                             capsys)
    assert code == 2
    assert "Cannot load the causal LM '/no/such/model' (model.name)" in err and "Traceback" not in err
    assert_intact(run)


def test_dataset_without_prompt_column(tiny_llm: Path, tmp_path: Path,  # noqa: F811
                                       capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text("\n".join(json.dumps({"question": "1+1=", "answer": "2"}) for _ in range(4)))
    code, err, run = run_cli(tmp_path, {"stages": ["sft"], "device": "cpu", "model": {"name": str(tiny_llm)},
                                        "sft": {"data": {"source": str(data)}}}, capsys)
    assert code == 2
    assert f"'{data}' has no prompt column 'prompt'" in err and "sft.data.prompt_column" in err
    assert "['question', 'answer']" in err
    assert_intact(run)


@pytest.mark.parametrize(("fn", "message"), [
    ("raises", "raised ValueError: boom"),
    ("wrong_count", "returned 9 values for 8 completions"),
    ("nan_reward", "returned nan for completion 0"),
])
def test_broken_reward_function(fn: str, message: str, tiny_llm: Path, tmp_path: Path,  # noqa: F811
                                capsys: pytest.CaptureFixture[str]) -> None:
    spec = f"{PLUGINS / 'llm_rewards.py'}:{fn}"
    config = tiny_rl(tiny_llm, rewards=[{"fn": "exact_match"}, {"fn": spec}])
    config["rl"]["eval"] = {"enabled": False}  # the failure must come from inside the trainer
    code, err, run = run_cli(tmp_path, config, capsys)
    assert code == 2
    assert f"The reward function '{spec}' {message}" in err and "Traceback" not in err
    assert_intact(run)
