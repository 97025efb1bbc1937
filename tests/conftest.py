"""Shared fixtures: offline settings, tiny configs and a recorded CartPole dataset."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """The tests train tiny models, which run fastest on one torch thread (and leave the other core free)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_overrides(**extra: Any) -> list[str]:
    """--set overrides that shrink the CartPole pipeline to a few seconds."""
    base = {
        "record.episodes": 4,
        "imitate.epochs": 3,
        "imitate.critic_warmup_epochs": 2,
        "imitate.checkpoint_every": 1,
        "finetune.total_timesteps": 512,
        "finetune.n_envs": 2,
        "finetune.n_steps": 64,
        "finetune.batch_size": 64,
        "finetune.n_epochs": 2,
        "finetune.eval_every": 256,
        "finetune.eval_episodes": 2,
        "finetune.checkpoint_every": 256,
        "eval.episodes": 2,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture(scope="session")
def expert_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 episodes of the CartPole expert (15,000 steps), recorded once per test session."""
    from rlft.policy.stages.record import record

    out = tmp_path_factory.mktemp("data") / "cartpole-expert"
    record("cartpole", "expert", 30, out, seed=0)
    return out
