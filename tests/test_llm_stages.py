"""LLM stages end to end on a tiny model: GRPO changes the weights and logs train/reward; an interrupted stage
resumes; build -> pretrain -> sft (LoRA) exports a plain Hugging Face folder; llm-init and generate work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from llm_helpers import HELD_OUT, TINY, tiny_llm, tiny_rl  # noqa: F401  (tiny_llm: session fixture)

from conftest import PLUGINS
from rlft.pipeline.config import pipeline_from_dict
from rlft.pipeline.runner import run_pipeline


def scalars(tb_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[float]] = {}
    for events in tb_dir.glob("**/events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return out


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_grpo_changes_parameters_and_logs_reward(tiny_llm: Path, tmp_path: Path) -> None:  # noqa: F811
    cfg = pipeline_from_dict(tiny_rl(tiny_llm, beta=0.05, rewards=[
        {"fn": "exact_match"}, {"fn": f"{PLUGINS / 'llm_rewards.py'}:starts_with_digit", "weight": 0.5}]))
    results = run_pipeline(cfg, tmp_path / "run")
    before, after = weights(tiny_llm), weights(tmp_path / "run" / "final")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) >= len(before) // 2, f"GRPO changed only {changed}"
    tags = scalars(tmp_path / "run" / "tb" / "rl")
    for tag in ("train/reward", "train/rewards/exact_match/mean", "train/rewards/starts_with_digit/mean",
                "train/kl", "train/completions/mean_length", "eval/greedy_em", "eval/sampled_em", "eval/reward"):
        assert tag in tags, f"{tag} missing from TensorBoard (has {sorted(tags)})"
    assert len(tags["train/reward"]) == 3
    assert results["rl"].metrics["train/steps"] == 3
    assert (tmp_path / "run" / "final" / "agent.json").is_file()


def test_interrupted_rl_stage_resumes_from_its_checkpoint(tiny_llm: Path, tmp_path: Path,  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "calls"
    monkeypatch.setenv("RLFT_TEST_CALLS", str(calls))
    monkeypatch.setenv("RLFT_TEST_INTERRUPT_AFTER", "3")  # Ctrl-C during step 3; checkpoint-2 exists
    data = tiny_rl(tiny_llm, max_steps=4, rewards=[{"fn": f"{PLUGINS / 'llm_rewards.py'}:counting"}])
    data["rl"]["eval"] = {"enabled": False}  # so the reward is called by training steps only
    cfg = pipeline_from_dict(data)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, run)
    assert (run / "checkpoints" / "rl" / "000000002").is_dir()
    assert not (run / "final").exists()
    monkeypatch.delenv("RLFT_TEST_INTERRUPT_AFTER")
    calls.unlink()
    results = run_pipeline(cfg, run, resume=True)
    assert int(calls.read_text()) == 2, "the resumed stage should only run steps 3 and 4"
    assert results["rl"].metrics["train/steps"] == 4
    assert (run / "checkpoints" / "rl" / "000000004").is_dir()
    assert (run / "final" / "model.safetensors").is_file()


def test_build_pretrain_sft_lora_exports_plain_hf_folder(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = pipeline_from_dict({
        "device": "cpu", "stages": ["build", "pretrain", "sft"], "model": {"num_threads": 1},
        "build": {**TINY, "data": {"source": "addition", "size": 200}},
        "pretrain": {"data": {"source": "addition", "size": 400}, "max_steps": 3, "batch_size": 8, "logging_steps": 1,
                     "eval": HELD_OUT},
        "sft": {"data": {"source": "addition", "size": 64, "wrong_fraction": 0.3}, "max_steps": 3, "batch_size": 8,
                "tuning": {"mode": "lora", "lora_r": 4}, "eval": HELD_OUT}})
    results = run_pipeline(cfg, tmp_path / "run")
    final = tmp_path / "run" / "final"
    assert (final / "adapter" / "adapter_config.json").is_file()
    assert results["sft"].metrics["model/trainable_params"] < results["sft"].metrics["model/total_params"]
    model = AutoModelForCausalLM.from_pretrained(final)  # transformers alone, no peft
    tok = AutoTokenizer.from_pretrained(final)
    assert not any("lora" in name for name, _ in model.named_parameters())
    ids = model.generate(**tok(["12+34="], return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert ids.shape[1] >= 6
    for stage in ("pretrain", "sft"):
        assert "eval/greedy_em" in results[stage].metrics and "eval_before/sampled_em" in results[stage].metrics
    assert "train/loss" in scalars(tmp_path / "run" / "tb" / "pretrain")


def test_llm_build_and_generate_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rlft.cli.main import main

    out = tmp_path / "tiny"
    assert main(["llm-build", "--out", str(out), *sum((["--set", f"build.{k}={v}"] for k, v in TINY.items()), [])]) == 0
    assert (out / "config.json").is_file() and (out / "agent.json").is_file()
    assert main(["generate", str(out), "12+34=", "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("12+34=")
    import rlft.core.agent

    agent: Any = rlft.core.agent.load_agent(out, device="cpu")
    assert isinstance(agent.act("1+1=", deterministic=True), str)


def test_freeze_mode_trains_only_the_last_blocks_and_head(tiny_llm: Path) -> None:  # noqa: F811
    from transformers import AutoModelForCausalLM

    from rlft.core.tuning import TuningConfig
    from rlft.llm.model import freeze_early_layers

    model = AutoModelForCausalLM.from_pretrained(tiny_llm)
    counts = freeze_early_layers(model, TuningConfig(mode="freeze", trainable_layers=0))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith("model.layers.0.") for n in trainable)  # the only block is frozen
    assert "model.norm.weight" in trainable and "model.embed_tokens.weight" in trainable  # tied to the LM head
    assert 0 < counts["trainable_params"] < counts["total_params"]


def test_reward_model_by_path_scores_completions(tiny_llm: Path, tmp_path: Path) -> None:  # noqa: F811
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_llm, num_labels=1)
    torch.manual_seed(0)
    reward_model = AutoModelForSequenceClassification.from_config(config)
    reward_model.save_pretrained(tmp_path / "rm")
    AutoTokenizer.from_pretrained(tiny_llm).save_pretrained(tmp_path / "rm")
    cfg = pipeline_from_dict(tiny_rl(tiny_llm, max_steps=2, rewards=[
        {"fn": "exact_match"}, {"model": str(tmp_path / "rm"), "weight": 0.5}]))
    run_pipeline(cfg, tmp_path / "run")
    tags = scalars(tmp_path / "run" / "tb" / "rl")
    assert any(t.startswith("train/rewards/") and "exact_match" not in t for t in tags), sorted(tags)


def test_unknown_reward_model_is_a_clear_error(tiny_llm: Path, tmp_path: Path) -> None:  # noqa: F811
    from rlft.core.errors import PluginError

    cfg = pipeline_from_dict(tiny_rl(tiny_llm, rewards=[{"model": str(tmp_path / "nope")}]))
    with pytest.raises(PluginError, match="Cannot load the reward model"):
        run_pipeline(cfg, tmp_path / "run")


def test_rloo_algorithm_runs_and_logs_reward(tiny_llm: Path, tmp_path: Path) -> None:  # noqa: F811
    cfg = pipeline_from_dict(tiny_rl(tiny_llm, algorithm="rloo", max_steps=2))
    run_pipeline(cfg, tmp_path / "run")
    tags = scalars(tmp_path / "run" / "tb" / "rl")
    assert len(tags["train/reward"]) == 2 and "train/rewards/exact_match/mean" in tags


def test_killed_after_the_last_checkpoint_resumes_without_an_extra_step(tiny_llm: Path, tmp_path: Path,  # noqa: F811
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after the trainer's final checkpoint but before the stage finished: resuming must not take a step past
    max_steps (the Hugging Face trainer would, from a checkpoint at max_steps)."""
    from rlft.core.checkpoint import Checkpointer

    cfg = pipeline_from_dict({"device": "cpu", "stages": ["sft"], "model": {"name": str(tiny_llm), "num_threads": 1},
                              "sft": {"data": {"source": "addition", "size": 64}, "max_steps": 4, "batch_size": 8,
                                      "save_steps": 1, "eval": {"enabled": False}}})
    real_prune = Checkpointer.prune

    def die_after_the_last(self: Checkpointer) -> None:
        real_prune(self)
        latest = self.latest()
        if latest is not None and self.step_of(latest) == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "prune", die_after_the_last)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, tmp_path / "run")
    monkeypatch.setattr(Checkpointer, "prune", real_prune)
    results = run_pipeline(cfg, tmp_path / "run", resume=True)
    assert results["sft"].metrics["train/steps"] == 4
    assert [p.name for p in Checkpointer(tmp_path / "run" / "checkpoints" / "sft").all()][-1] == "000000004"
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
