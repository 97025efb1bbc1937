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


CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
"""A ChatML template like SmolLM2's (without its default system message)."""


def write_tiny_gguf(path: Path, hidden: int = 16, layers: int = 2, seed: int = 0) -> Path:
    """A tiny Llama causal LM + byte-level tokenizer + chat template as one GGUF file (F32 tensors, ~8k params).

    What transformers' GGUF loader needs (STACK-FACTS.md): llama hyper-parameters, a `gpt2` tokenizer with token
    list, token types and token scores, bos/eos/pad ids, and the F32 tensors of every block.
    """
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    chars = [chr(c) for c in range(33, 127)] + ["Ġ", "Ċ"]  # GPT-2 byte-level alphabet: space is Ġ, newline Ċ
    tokens, heads, kv, ff = specials + chars, 2, 1, 32
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hidden // heads)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3] * len(specials) + [1] * len(chars))
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_merges([])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_chat_template(CHAT_TEMPLATE)

    def t(*shape: int) -> Any:
        return rng.normal(0, 0.1, shape).astype(np.float32)

    kv_dim = kv * hidden // heads
    w.add_tensor("token_embd.weight", t(len(tokens), hidden))
    w.add_tensor("output.weight", t(len(tokens), hidden))
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    for i in range(layers):
        for name, shape in (("attn_q", (hidden, hidden)), ("attn_k", (kv_dim, hidden)), ("attn_v", (kv_dim, hidden)),
                            ("attn_output", (hidden, hidden)), ("ffn_gate", (ff, hidden)), ("ffn_up", (ff, hidden)),
                            ("ffn_down", (hidden, ff))):
            w.add_tensor(f"blk.{i}.{name}.weight", t(*shape))
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_prefs(path: Path, n: int, seed: int = 0) -> Path:
    """``n`` preference pairs a tiny model can learn but a random head does not already know: after an ``a+b=``
    prompt, two random numbers of 1-3 digits; the chosen one ends in an even digit, the rejected one in an odd digit.
    Written as JSONL in TRL's format."""
    import json
    import random

    rng = random.Random(seed)

    def number(last: str) -> str:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 2))) + rng.choice(last)

    with path.open("w") as f:
        for _ in range(n):
            prompt = f"{rng.randint(0, 99)}+{rng.randint(0, 99)}="
            row = {"prompt": prompt, "chosen": number("02468"), "rejected": number("13579")}
            f.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="session")
def prefs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(train, held-out) preference files of :func:`write_prefs` (128 and 64 pairs)."""
    folder = tmp_path_factory.mktemp("prefs")
    return write_prefs(folder / "train.jsonl", 128, seed=0), write_prefs(folder / "test.jsonl", 64, seed=1)


def tiny_prefs_stage(kind: str, model: Path, prefs: tuple[Path, Path], **section: Any) -> dict[str, Any]:
    """A pipeline running one 4-step `reward_model` or `dpo` stage on ``model``, checkpointing every 2 steps."""
    base: dict[str, Any] = {"data": {"source": str(prefs[0])}, "max_steps": 4, "batch_size": 8, "save_steps": 2,
                            "logging_steps": 1}
    base["eval"] = {"data": {"source": str(prefs[1])}} if kind == "reward_model" else HELD_OUT
    base.update(section)
    return {"device": "cpu", "stages": [kind], "model": {"name": str(model), "num_threads": 1}, kind: base}
