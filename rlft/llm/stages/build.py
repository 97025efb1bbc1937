"""The ``build`` stage and ``rlft llm-build``: a tokenizer trained on a corpus and a tiny causal LM, built offline.

The tokenizer's vocabulary is every character (``level: char``) or the most frequent words (``level: word``) of
``init.data``; the model is a randomly initialised Qwen2-style decoder sized by ``init`` (see
:func:`rlft.llm.model.build_tiny_model`). Nothing is downloaded, so the whole LLM chain runs with no hub.

Example::

    rlft llm-build --out models/tiny --set build.hidden_size=128
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rlft.core.metrics import log
from rlft.llm.config import BuildConfig
from rlft.llm.data import corpus_texts
from rlft.llm.model import build_tiny_model, count_parameters, save_model, train_tokenizer
from rlft.llm.trainer import stage_data
from rlft.pipeline.artifacts import Outputs
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import StageResult


def build_model(cfg: BuildConfig, out: str | Path, seed: int = 0, meta: dict[str, Any] | None = None
                ) -> dict[str, int]:
    """Train the tokenizer on ``cfg.data``, build the model, save both to ``out``; returns parameter counts."""
    texts = corpus_texts(cfg.data, seed, what="build.data")
    tokenizer = train_tokenizer(texts, cfg.level, cfg.vocab_size)
    model = build_tiny_model(tokenizer, cfg, seed)
    save_model(model, tokenizer, out, {"stage": "build", **(meta or {})})
    counts = count_parameters(model)
    log.info("build: vocabulary %d tokens, model %d parameters -> %s", len(tokenizer), counts["total_params"], out)
    return {"vocab_size": len(tokenizer), **counts}


def run(ctx: StageContext[BuildConfig]) -> StageResult:
    """Build the tiny model into ``DIR/stages/<stage>``."""
    folder = ctx.output_dir()
    env = ctx.artifacts.text.env if ctx.artifacts.text else ""
    cfg = dataclasses.replace(ctx.config, data=stage_data(ctx, ctx.config.data))
    counts = build_model(cfg, folder, ctx.seed, {"env": env} if env else None)  # a game's text: see game_text.agent
    return StageResult(outputs=Outputs(model=str(folder), agent=str(folder) if env else None),
                       metrics={f"model/{k}": v for k, v in counts.items()})
