"""The ``init`` stage and ``rlft llm-init``: a tokenizer trained on a corpus and a tiny causal LM, built offline.

The tokenizer's vocabulary is every character (``level: char``) or the most frequent words (``level: word``) of
``init.data``; the model is a randomly initialised Qwen2-style decoder sized by ``init`` (see
:func:`rlft.llm.model.build_tiny_model`). Nothing is downloaded, so the whole LLM chain runs with no hub.

Example::

    rlft llm-init --out models/tiny --set init.hidden_size=128
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlft.core.metrics import log
from rlft.llm.config import InitConfig
from rlft.llm.data import corpus_texts
from rlft.llm.model import build_tiny_model, count_parameters, save_model, train_tokenizer

if TYPE_CHECKING:
    from rlft.pipeline.runner import StageContext


def init_model(cfg: InitConfig, out: str | Path, seed: int = 0, meta: dict[str, Any] | None = None) -> dict[str, int]:
    """Train the tokenizer on ``cfg.data``, build the model, save both to ``out``; returns parameter counts."""
    texts = corpus_texts(cfg.data, seed, what="init.data")
    tokenizer = train_tokenizer(texts, cfg.level, cfg.vocab_size)
    model = build_tiny_model(tokenizer, cfg, seed)
    save_model(model, tokenizer, out, {"stage": "init", **(meta or {})})
    counts = count_parameters(model)
    log.info("init: vocabulary %d tokens, model %d parameters -> %s", len(tokenizer), counts["total_params"], out)
    return {"vocab_size": len(tokenizer), **counts}


def run(ctx: StageContext) -> dict[str, Any]:
    """Build the tiny model into ``DIR/stages/init``."""
    folder = ctx.run.stage_dir(ctx.stage)
    meta = {"env": ctx.outputs["text_env"]} if ctx.outputs.get("text_env") else None  # a game's text: see game_agent
    counts = init_model(ctx.cfg.init, folder, ctx.seed, meta)
    return {"outputs": {"model": str(folder)}, "metrics": {f"model/{k}": v for k, v in counts.items()}}
