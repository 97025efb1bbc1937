"""Reward functions for the LLM tests: well-behaved ones and ones that break the contract."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def starts_with_digit(prompts: list[str], completions: list[str], **_: Any) -> list[float | None]:
    """1.0 when the completion starts with a digit."""
    return [float(c[:1].isdigit()) for c in completions]


def raises(prompts: list[str], completions: list[str], **_: Any) -> list[float | None]:
    raise ValueError("boom: this reward is broken")


def wrong_count(prompts: list[str], completions: list[str], **_: Any) -> list[float | None]:
    return [1.0] * (len(completions) + 1)


def nan_reward(prompts: list[str], completions: list[str], **_: Any) -> list[float | None]:
    return [float("nan")] * len(completions)


def counting(prompts: list[str], completions: list[str], **_: Any) -> list[float | None]:
    """Exact-match-like reward that counts its calls in $RLFT_TEST_CALLS and simulates Ctrl-C after
    $RLFT_TEST_INTERRUPT_AFTER calls (to test resume)."""
    log = Path(os.environ["RLFT_TEST_CALLS"])
    calls = int(log.read_text()) + 1 if log.is_file() else 1
    log.write_text(str(calls))
    stop = int(os.environ.get("RLFT_TEST_INTERRUPT_AFTER", "0"))
    if stop and calls > stop:
        raise KeyboardInterrupt
    return [float(c[:1].isdigit()) for c in completions]
