"""One stage kind twice in a pipeline: ``[record, imitate, finetune, finetune_b, eval]`` on tic-tac-toe, where
``finetune_b`` is a second ``finetune`` (``kind: finetune``) that starts from the first one's policy and trains
against another opponent.

It proves that each copy keeps to its own name (``stages/``, ``checkpoints/``, ``tb/``) and its own section (its
opponents), that ``finetune_b`` really starts from ``finetune``'s policy (the KL reference it saves is exactly
``stages/finetune``), that ``eval`` rates all three agents, and that a run stopped right after ``finetune_b``'s
first checkpoint resumes to the same step count as an uninterrupted one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from rlft.core.checkpoint import Checkpointer
from rlft.pipeline.config import pipeline_from_dict
from rlft.pipeline.runner import run_pipeline

PPO = {"total_timesteps": 512, "n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2, "eval_every": 256,
       "eval_episodes": 4, "checkpoint_every": 256}
CONFIG: dict[str, Any] = {
    "name": "twice", "seed": 0, "num_threads": 1, "device": "cpu", "env": {"id": "tictactoe"},
    "stages": ["record", "imitate", "finetune", "finetune_b", "eval"],
    "record": {"agent": "perfect:0.2", "episodes": 40},
    "imitate": {"policy": {"net_arch": [32]}, "epochs": 3, "critic_warmup_epochs": 1, "batch_size": 64},
    "finetune": {**PPO, "start_from": "imitate",
                 "self_play": {"opponents": ["random"], "eval_opponents": ["random"], "elo_games": 0}},
    "finetune_b": {**PPO, "kind": "finetune", "start_from": "finetune",
                   "self_play": {"opponents": ["alphabeta:1"], "eval_opponents": ["alphabeta:1"], "elo_games": 0}},
    "eval": {"episodes": 4, "opponents": ["random"]},
}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _interrupt_after_first_checkpoint(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    real = Checkpointer.prune

    def prune(self: Checkpointer) -> None:
        real(self)
        if self.root.resolve() == root.resolve() and self.latest() is not None:
            monkeypatch.setattr(Checkpointer, "prune", real)  # once
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "prune", prune)


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    run = tmp_path_factory.mktemp("twice") / "A"
    return run, run_pipeline(pipeline_from_dict(CONFIG), run)


def test_each_copy_has_its_own_folders_and_section(straight: tuple[Path, dict[str, Any]]) -> None:
    run, results = straight
    for name in ("finetune", "finetune_b"):
        assert (run / "stages" / name / "model.safetensors").is_file()
        assert [c.name for c in Checkpointer(run / "checkpoints" / name).all()] == ["000000256", "000000512"]
        assert list((run / "tb" / name).glob("events.out.tfevents.*")), f"no TensorBoard log of {name}"
        assert results[name].kind == "finetune" and results[name].metrics["total_timesteps"] == 512
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["finetune", "finetune_b", "imitate"]
    # Each copy read its own section: its periodic evaluations are against its own opponents.
    assert all(set(s) == {"eval/win_rate_vs_random", "eval/loss_rate_vs_random"}
               for _, s in results["finetune"].details["history"])
    assert all(set(s) == {"eval/win_rate_vs_alphabeta_1", "eval/loss_rate_vs_alphabeta_1"}
               for _, s in results["finetune_b"].details["history"])
    assert results["finetune_b"].headline.name == "win_rate_vs_alphabeta_1"
    assert set(results["eval"].details["table"]) == {"imitate", "finetune", "finetune_b"}
    assert results["eval"].details["table"]["finetune_b"]["per_opponent"]["random"]["games"] == 4


def test_second_copy_starts_from_the_first_ones_policy(straight: tuple[Path, dict[str, Any]]) -> None:
    run, _ = straight
    first_b = Checkpointer(run / "checkpoints" / "finetune_b").all()[0]
    reference = weights(first_b / "reference")  # finetune_b's KL reference: the policy it started from
    assert same(reference, weights(run / "stages" / "finetune"))
    assert not same(reference, weights(run / "stages" / "imitate"))  # finetune moved away from the cloned policy
    assert not same(weights(first_b), reference)  # and finetune_b trained on from there


def test_second_copy_resumes_to_the_same_step_count(straight: tuple[Path, dict[str, Any]], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    run_a, results_a = straight
    run_b = tmp_path / "B"
    _interrupt_after_first_checkpoint(monkeypatch, run_b / "checkpoints" / "finetune_b")
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(pipeline_from_dict(CONFIG), run_b)
    assert [c.name for c in Checkpointer(run_b / "checkpoints" / "finetune_b").all()] == ["000000256"]
    assert not (run_b / "final").exists() and not (run_b / "stages" / "finetune_b").exists()

    monkeypatch.setattr(logging.getLogger("rlft"), "propagate", True)  # `rlft` CLI tests switch it off
    caplog.set_level(logging.INFO, logger="rlft")
    results_b = run_pipeline(pipeline_from_dict(CONFIG), run_b, resume=True)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("finetune_b: resuming from checkpoint 000000256") for m in messages), messages
    for name in ("record", "imitate", "finetune"):
        assert f"{name}: already finished, skipping (resume)" in messages
    assert results_b["finetune_b"].metrics["total_timesteps"] == results_a["finetune_b"].metrics["total_timesteps"]
    assert Checkpointer(run_b / "checkpoints" / "finetune_b").latest().name == "000000512"  # type: ignore[union-attr]
    assert set(results_b["eval"].details["table"]) == {"imitate", "finetune", "finetune_b"}
    assert (run_b / "final" / "model.safetensors").is_file()
