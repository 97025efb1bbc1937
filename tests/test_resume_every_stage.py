"""Every checkpointing stage kind resumes the same way: a run stopped right after its first checkpoint (Ctrl-C at the
instant the checkpoint is complete and in place) continues from that checkpoint with ``resume=True`` and ends at the
same step as an uninterrupted run; every stage writes its checkpoints, and nothing else, under
``checkpoints/<stage>/<9-digit step>/``.

The interruption is a ``KeyboardInterrupt`` raised from :meth:`rlft.core.checkpoint.Checkpointer.prune`, which both
``write()`` and ``adopt()`` call only once a checkpoint is complete and renamed into place -- the real trainers run
(SB3 PPO, the behaviour-cloning loop, Hugging Face / TRL trainers, the encoder loops); nothing is mocked.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from llm_helpers import HELD_OUT, prefs, tiny_llm, tiny_prefs_stage, tiny_rl  # noqa: F401  (session fixtures)

from rlft.core.checkpoint import Checkpointer
from rlft.pipeline.config import pipeline_from_dict
from rlft.pipeline.runner import run_pipeline

WORDS = ["good", "great", "fine", "nice", "happy", "love", "bad", "awful", "sad", "hate", "poor", "ugly"]
LLM_STAGES = {"pretrain", "sft", "rl", "reward_model", "dpo"}
STEP_METRIC = {"finetune": "total_timesteps", "pretrain": "train/steps", "sft": "train/steps", "rl": "train/steps",
               "reward_model": "train/steps", "dpo": "train/steps", "mlm": "steps", "ssl_image": "steps"}
"""The stage's own step count in its result metrics (stages without one are compared by checkpoint name only)."""
SAME_FIGURES = {"reward_model", "dpo"}
"""Stages whose held-out figures after a resume must equal an uninterrupted run's (CPU, fixed seeds)."""


# -- tiny inputs ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_mlm_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer BertForMaskedLM with a word-level vocabulary, saved as a Hugging Face folder (no download)."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-mlm-bert")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    BertForMaskedLM(config).save_pretrained(str(folder))
    BertTokenizerFast(vocab=vocab).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def word_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 three-word texts with a label column (the mlm stage reads the texts only)."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("words") / "words.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for _ in range(60):
            positive = rng.random() < 0.5
            writer.writerow([" ".join(rng.choice(WORDS[:6] if positive else WORDS[6:], size=3)),
                             "pos" if positive else "neg"])
    return path


def _llm(stage: str, model: Path) -> dict[str, Any]:
    """A 4-step LLM stage on the tiny model that checkpoints every 2 steps."""
    if stage == "rl":
        return tiny_rl(model, max_steps=4, save_steps=2)
    section = {"data": {"source": "addition", "size": 64}, "max_steps": 4, "batch_size": 8, "save_steps": 2,
               "logging_steps": 1, "eval": HELD_OUT}
    return {"device": "cpu", "stages": [stage], "model": {"name": str(model), "num_threads": 1}, stage: section}


def _config(stage: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The tiny pipeline testing ``stage``; every stage under test writes at least two checkpoints."""
    digits = {"source": "digits", "max_train": 200, "max_eval": 100}
    if stage == "imitate":  # 5 epochs (3 cloning + 2 critic warm-up), a checkpoint after each
        return {"stages": ["record", "imitate"], "env": {"id": "cartpole"}, "record": {"episodes": 3},
                "imitate": {"epochs": 3, "critic_warmup_epochs": 2, "checkpoint_every": 1}}
    if stage == "finetune":  # 512 PPO steps, a checkpoint every 128
        return {"stages": ["finetune"], "env": {"id": "cartpole"},
                "finetune": {"start_from": "scratch", "total_timesteps": 512, "n_envs": 2, "n_steps": 64,
                             "batch_size": 64, "n_epochs": 1, "checkpoint_every": 128, "eval_every": 0,
                             "eval_episodes": 1, "policy": {"net_arch": [16]}}}
    if stage in ("reward_model", "dpo"):  # 4 steps on 128 preference pairs, a checkpoint every 2
        return tiny_prefs_stage(stage, request.getfixturevalue("tiny_llm"), request.getfixturevalue("prefs"))
    if stage in LLM_STAGES:
        return _llm(stage, request.getfixturevalue("tiny_llm"))
    if stage == "classify":  # 2 epochs of 7 steps: checkpoints at 3, 6, 7, 10, 13, 14
        return {"stages": ["classify"],
                "classify": {"backbone": "mlp", "data": digits, "encoder": {"hidden": [16], "features_dim": 16},
                             "epochs": 2, "batch_size": 32, "lr": 1e-3, "checkpoint_every": 3}}
    if stage == "mlm":  # 6 steps, a checkpoint every 2
        return {"stages": ["mlm"],
                "mlm": {"backbone": str(request.getfixturevalue("tiny_mlm_bert")), "steps": 6, "batch_size": 16,
                        "max_length": 8, "lr": 1e-3, "checkpoint_every": 2,
                        "data": {"source": str(request.getfixturevalue("word_csv"))}}}
    if stage == "ssl_image":  # 2 epochs of 4 steps, a checkpoint every 2
        return {"stages": ["ssl_image"],
                "ssl_image": {"data": digits, "objective": "rotation", "epochs": 2, "batch_size": 64,
                              "checkpoint_every": 2, "encoder": {"channels": [4, 8], "features_dim": 16}}}
    raise AssertionError(stage)


# -- the interruption -----------------------------------------------------------------------------------------------


def interrupt_after_first_checkpoint(monkeypatch: pytest.MonkeyPatch, root: Path) -> Callable[[], None]:
    """Make the first completed checkpoint under ``root`` raise KeyboardInterrupt; returns the undo function."""
    real = Checkpointer.prune
    fired: list[Path] = []

    def prune(self: Checkpointer) -> None:
        real(self)
        if not fired and self.root.resolve() == root.resolve() and self.latest() is not None:
            fired.append(self.latest())  # type: ignore[arg-type]
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "prune", prune)
    return lambda: monkeypatch.setattr(Checkpointer, "prune", real)


def assert_checkpoint_layout(run: Path, stage: str) -> None:
    """``checkpoints/`` holds only ``<stage>/``, which holds only 9-digit step folders (and ``.hf`` for LLMs)."""
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [stage]
    for entry in (run / "checkpoints" / stage).iterdir():
        if stage in LLM_STAGES and entry.name == ".hf":
            continue
        assert entry.is_dir() and len(entry.name) == 9 and entry.name.isdigit(), f"unexpected {entry}"


def _newest(run: Path, stage: str) -> Path:
    latest = Checkpointer(run / "checkpoints" / stage).latest()
    assert latest is not None, f"no checkpoint of {stage} in {run}"
    return latest


# -- the test -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["imitate", "finetune", "pretrain", "sft", "rl", "reward_model", "dpo", "classify",
                                   "mlm", "ssl_image"])
def test_stage_resumes_after_its_first_checkpoint(stage: str, tmp_path: Path, request: pytest.FixtureRequest,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    data = _config(stage, request)
    straight, killed = tmp_path / "A", tmp_path / "B"
    results_a = run_pipeline(pipeline_from_dict(data), straight)
    assert len(Checkpointer(straight / "checkpoints" / stage).all()) >= 2, "the stage should checkpoint twice"

    restore = interrupt_after_first_checkpoint(monkeypatch, killed / "checkpoints" / stage)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(pipeline_from_dict(data), killed)
    restore()
    first = _newest(killed, stage)
    assert len(Checkpointer(killed / "checkpoints" / stage).all()) == 1
    assert not (killed / "final").exists(), "the interrupted run must not have finished"
    assert_checkpoint_layout(killed, stage)

    monkeypatch.setattr(logging.getLogger("rlft"), "propagate", True)  # `rlft` CLI tests switch it off
    caplog.set_level(logging.INFO, logger="rlft")
    results_b = run_pipeline(pipeline_from_dict(data), killed, resume=True)
    resumed = [r.getMessage() for r in caplog.records if "resuming from checkpoint" in r.getMessage()]
    assert resumed and first.name in resumed[0], f"no resume from {first.name} logged: {resumed}"

    assert _newest(straight, stage).name == _newest(killed, stage).name
    if stage in STEP_METRIC:
        key = STEP_METRIC[stage]
        assert results_a[stage].metrics[key] == results_b[stage].metrics[key] == int(_newest(straight, stage).name)
    assert int(first.name) < int(_newest(killed, stage).name)
    if stage in SAME_FIGURES:
        held_out = {k: v for k, v in results_a[stage].metrics.items() if k.startswith("eval/")}
        assert held_out and held_out == {k: results_b[stage].metrics[k] for k in held_out}
    for run in (straight, killed):
        assert_checkpoint_layout(run, stage)
    assert (killed / "final").is_dir() or stage in ("mlm", "ssl_image", "reward_model")  # artifacts, not finals
