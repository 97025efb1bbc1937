"""RLHF on a tiny model: preference data and its errors, the reward model learns a preference, an rl stage names it
by stage and logs the over-optimisation figures, DPO moves the policy toward the chosen answers, and the bad inputs
of the issue are one-paragraph errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llm_helpers import prefs, tiny_llm, tiny_prefs_stage, tiny_rl  # noqa: F401  (session fixtures)
from test_llm_stages import scalars

from rlft.cli.main import main
from rlft.core.errors import ConfigError, DatasetError
from rlft.llm.config import PreferenceDataConfig
from rlft.llm.preferences import load_preferences
from rlft.pipeline.config import pipeline_from_dict
from rlft.pipeline.runner import run_pipeline


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- preference data --------------------------------------------------------------------------------------------


def test_preferences_load_with_column_mapping_and_drop_identical_pairs(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"q": "1+1=", "good": "2", "bad": "3"},
                                              {"q": "2+2=", "good": "4", "bad": "4"},
                                              {"q": "3+3=", "good": "6", "bad": ""}])  # an empty answer is an answer
    ds = load_preferences(PreferenceDataConfig(source=str(path), prompt_column="q", chosen_column="good",
                                               rejected_column="bad"))
    assert ds["prompt"] == ["1+1=", "3+3="] and ds["chosen"] == ["2", "6"] and ds["rejected"] == ["3", ""]
    assert json.loads(ds.info.description) == {"pairs": 2, "dropped_identical": 1}


def test_conversational_preferences_load(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{
        "prompt": [{"role": "user", "content": "1+1?"}],
        "chosen": [{"role": "assistant", "content": "2"}], "rejected": [{"role": "assistant", "content": "3"}]}])
    ds = load_preferences(PreferenceDataConfig(source=str(path)))
    assert ds["chosen"] == [[{"role": "assistant", "content": "2"}]]


@pytest.mark.parametrize("rows, match", [
    ([{"prompt": "1+1=", "answer": "2", "rejected": "3"}], "no chosen column 'chosen'.*chosen_column"),
    ([{"prompt": "1+1=", "chosen": None, "rejected": "3"}], "empty chosen text in row 0"),
    ([{"prompt": "1+1=", "chosen": "2", "rejected": "2"}], "no usable pair: all 1 have chosen == rejected"),
])
def test_bad_preference_files_are_clear_errors(tmp_path: Path, rows: list[dict[str, object]], match: str) -> None:
    with pytest.raises(DatasetError, match=match):
        load_preferences(PreferenceDataConfig(source=str(write_jsonl(tmp_path / "bad.jsonl", rows))))


def test_preference_file_without_chosen_exits_2(tiny_llm: Path, tmp_path: Path,  # noqa: F811
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "1+1=", "answer": "2", "rejected": "3"}])
    code = main(["train", "--run-dir", str(tmp_path / "run"), "--set", "stages=[reward_model]",
                 "--set", f"model.name={tiny_llm}", "--set", f"reward_model.data.source={bad}",
                 "--set", "reward_model.eval.enabled=false"])
    err = capsys.readouterr().err
    assert code == 2 and "no chosen column 'chosen'" in err and "Traceback" not in err


# -- the cross-stage and LoRA errors ------------------------------------------------------------------------------


def test_reward_model_named_by_a_stage_not_in_the_pipeline_is_an_error_before_anything_runs(
        tiny_llm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    data = tiny_rl(tiny_llm, rewards=[{"model": "reward_model"}])
    data["stages"] = ["sft", "rl"]
    with pytest.raises(ConfigError, match="names the reward model 'reward_model', which is no `reward_model` stage"):
        pipeline_from_dict(data)
    data["stages"] = ["rl", "reward_model"]  # in the pipeline, but after the stage that needs it
    with pytest.raises(ConfigError, match="reward-model stages before it: none"):
        pipeline_from_dict(data)
    code = main(["train", "--run-dir", str(tmp_path / "run"), "--set", "stages=[sft,rl]",
                 "--set", "rl.rewards=[{model: reward_model}]", "--set", f"model.name={tiny_llm}"])
    assert code == 2 and "Add 'reward_model' (kind reward_model) to `stages`" in capsys.readouterr().err
    assert not (tmp_path / "run" / "stages").exists(), "nothing may run before the error"


def test_dpo_with_lora_on_modules_the_model_lacks_exits_2(tiny_llm: Path, prefs: tuple[Path, Path],  # noqa: F811
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "dpo.yaml"
    import yaml

    config.write_text(yaml.safe_dump(tiny_prefs_stage(
        "dpo", tiny_llm, prefs, tuning={"mode": "lora", "lora_targets": ["c_attn"]})))
    code = main(["train", str(config), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "dpo.tuning.mode=lora: the model has no module named ['c_attn']" in err
    assert "q_proj" in err and "Traceback" not in err  # names the modules it does have


# -- the stages learn ---------------------------------------------------------------------------------------------


def test_reward_model_learns_the_preference_and_saves_an_hf_folder(tiny_llm: Path, prefs: tuple[Path, Path],  # noqa: F811
                                                                   tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlft.llm.preferences import pairwise_accuracy

    data = tiny_prefs_stage("reward_model", tiny_llm, prefs, max_steps=-1, epochs=3, lr=3e-3, batch_size=16)
    results = run_pipeline(pipeline_from_dict(data), tmp_path / "run")
    m = results["reward_model"].metrics
    assert m["eval/accuracy"] >= 0.9, m  # even vs odd last digit, 64 held-out pairs
    assert m["eval/accuracy"] >= m["eval_before/accuracy"] + 0.2, m
    folder = tmp_path / "run" / "stages" / "reward_model"
    model = AutoModelForSequenceClassification.from_pretrained(folder)  # transformers alone
    again = pairwise_accuracy(model, AutoTokenizer.from_pretrained(folder),
                              load_preferences(PreferenceDataConfig(source=str(prefs[1]))))
    assert again["accuracy"] == pytest.approx(m["eval/accuracy"])
    assert "train/accuracy" in scalars(tmp_path / "run" / "tb" / "reward_model")


@pytest.mark.parametrize("mode", ["freeze", "lora"])
def test_reward_model_tuning_modes_train_fewer_parameters(mode: str, tiny_llm: Path, prefs: tuple[Path, Path],  # noqa: F811
                                                          tmp_path: Path) -> None:
    data = tiny_prefs_stage("reward_model", tiny_llm, prefs, max_steps=2, tuning={"mode": mode, "lora_r": 2})
    m = run_pipeline(pipeline_from_dict(data), tmp_path / "run")["reward_model"].metrics
    assert 0 < m["model/trainable_params"] < m["model/total_params"]
    folder = tmp_path / "run" / "stages" / "reward_model"
    assert (folder / "config.json").is_file() and (folder / "adapter").is_dir() == (mode == "lora")


def test_rl_against_a_reward_model_stage_logs_learned_reward_kl_and_true_score(
        tiny_llm: Path, prefs: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: F811
    data = tiny_rl(tiny_llm, max_steps=3, beta=0.05, rewards=[{"model": "reward_model"}],
                   true_score={"rewards": [{"fn": "exact_match"}], "every": 2})
    data["stages"] = ["reward_model", "rl"]
    data["reward_model"] = tiny_prefs_stage("reward_model", tiny_llm, prefs, max_steps=2)["reward_model"]
    results = run_pipeline(pipeline_from_dict(data), tmp_path / "run")
    tags = scalars(tmp_path / "run" / "tb" / "rl")
    for tag in ("train/rewards/reward_model/mean", "train/kl", "true/reward", "true/sampled_em", "true/greedy_em"):
        assert tag in tags, f"{tag} missing (has {sorted(tags)})"
    assert len(tags["true/reward"]) == 3  # steps 0, 2 and 3 (the end)
    assert "train/rewards/exact_match/mean" not in tags  # the true reward is watched, never optimised

    from rlft.pipeline.compare import compare_runs

    rows = compare_runs([tmp_path / "run"], stages=["reward_model", "rl"], metric="eval/sampled_em")
    assert [r["run"] for r in rows] == ["run:reward_model", "run:rl"]
    assert rows[0]["value"] is None and rows[1]["value"] == results["rl"].metrics["eval/sampled_em"]
    assert compare_runs([tmp_path / "run"], stages=["reward_model"])[0]["value"] == \
        results["reward_model"].metrics["eval/accuracy"]  # the headline: held-out pairwise accuracy


def test_dpo_raises_the_chosen_answers_likelihood(tiny_llm: Path, prefs: tuple[Path, Path],  # noqa: F811
                                                  tmp_path: Path) -> None:
    data = tiny_prefs_stage("dpo", tiny_llm, prefs, max_steps=-1, epochs=2, lr=3e-3, batch_size=16, beta=0.5)
    data["dpo"]["eval"] = {"enabled": False}
    results = run_pipeline(pipeline_from_dict(data), tmp_path / "run")
    tags = scalars(tmp_path / "run" / "tb" / "dpo")
    assert tags["train/rewards/accuracies"][-1] >= 0.9 and tags["train/rewards/margins"][-1] > 0, tags
    assert results["dpo"].metrics["train/steps"] == 16 and (tmp_path / "run" / "final" / "agent.json").is_file()
