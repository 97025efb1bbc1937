"""The whole loop on a tiny budget: record -> game_text -> build -> sft -> GRPO with the env reward -> eval.

GRPO changes the weights and logs ``train/reward`` and the win rate of the played moves; the final agent loads with
``rlft.load_agent`` and plays the real env; the `eval` stage reports every stage's agent, with its move counts."""

from __future__ import annotations

from pathlib import Path

import torch

from rlft.pipeline.config import pipeline_from_dict
from rlft.pipeline.runner import run_pipeline


def _scalars(tb_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[float]] = {}
    for events in tb_dir.glob("**/events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return out


def test_tiny_game_grpo_run_changes_parameters_and_logs_reward_and_win_rate(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    import rlft
    from rlft.bridges.game_text.agent import GameLLMAgent

    HELD_OUT = {"data": {"source": "game_text:test", "limit": 16}, "max_new_tokens": 2}
    cfg = pipeline_from_dict({
        "seed": 0, "device": "cpu", "env": {"id": "tictactoe"}, "model": {"num_threads": 1},
        "stages": ["record", "game_text", "build", "sft", "rl", "eval"],
        "record": {"agent": "perfect:0.3", "episodes": 30},
        "game_text": {"label_agent": "perfect", "test_fraction": 0.2},
        "build": {"data": {"source": "game_text:transcripts"}, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                 "num_kv_heads": 1, "intermediate_size": 64, "max_length": 32},
        "sft": {"data": {"source": "game_text"}, "max_steps": 5, "batch_size": 16, "lr": 1e-3, "max_length": 32,
                "logging_steps": 1, "eval": HELD_OUT},
        "rl": {"data": {"source": "game_text"}, "max_steps": 3, "batch_size": 8, "num_generations": 4,
               "max_completion_length": 2, "lr": 1e-2, "save_steps": 2, "logging_steps": 1,
               "play_games": 2, "play_repeat": 2, "eval": HELD_OUT,
               "rewards": [{"fn": "game_outcome", "kwargs": {"env": "tictactoe", "opponents": ["random", "perfect"],
                                                              "rollout": "perfect"}}]},
        "eval": {"episodes": 4, "opponents": ["random"]},
    })
    results = run_pipeline(cfg, tmp_path / "run")
    before = load_file(str(tmp_path / "run" / "stages" / "sft" / "model.safetensors"))
    after = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) >= len(before) // 2, f"GRPO changed only {changed}"
    tags = _scalars(tmp_path / "run" / "tb" / "rl")
    for tag in ("train/reward", "train/rewards/game_outcome/mean", "train/win_rate", "train/illegal_rate",
                "train/unparsable_rate", "eval/reward"):
        assert tag in tags, f"{tag} missing from TensorBoard (has {sorted(tags)})"
    assert len(tags["train/reward"]) == 3
    assert all(0.0 <= w <= 1.0 for w in tags["train/win_rate"])
    table = results["eval"].details["table"]
    assert set(table) == {"build", "sft", "rl"}
    for row in table.values():
        assert row["per_opponent"]["random"]["games"] == 4
        assert row["moves"]["moves"] >= 4 * 3
    agent = rlft.load_agent(tmp_path / "run")
    assert isinstance(agent, GameLLMAgent) and agent.env == "tictactoe"
