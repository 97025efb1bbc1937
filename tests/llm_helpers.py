"""Shared pieces of the LLM tests: a tiny model built once per session and a tiny GRPO config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rlft.llm.config import BuildConfig

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64,
        "max_length": 32}


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny char-level model for the addition task, built once per session."""
    from rlft.llm.stages.build import build_model

    out = tmp_path_factory.mktemp("llm") / "tiny"
    build_model(BuildConfig(**TINY), out, seed=0)  # type: ignore[arg-type]
    return out


def tiny_rl(model: Path, **rl: Any) -> dict[str, Any]:
    """A pipeline config running only a 3-step GRPO stage on ``model``."""
    base: dict[str, Any] = {
        "data": {"source": "addition", "size": 64}, "rewards": [{"fn": "exact_match"}], "max_steps": 3,
        "batch_size": 8, "num_generations": 4, "max_completion_length": 4, "lr": 1e-2, "save_steps": 2,
        "logging_steps": 1, "eval": HELD_OUT}
    base.update(rl)
    return {"device": "cpu", "stages": ["rl"], "model": {"name": str(model), "num_threads": 1}, "rl": base}


HELD_OUT: dict[str, Any] = {"data": {"source": "addition", "split": "test", "size": 8}, "max_new_tokens": 3}
"""A tiny held-out evaluation (the `eval` key of an LLM training stage, or an `llm_eval` section)."""
