"""Models and tokenizers: build a tiny one offline, load any Hugging Face causal LM, save a stage's model.

* :func:`train_tokenizer` -- a char- or word-level ``tokenizers`` WordLevel model wrapped in
  ``PreTrainedTokenizerFast`` (pad/bos/eos set, left padding for generation).
* :func:`build_tiny_model` -- a Qwen2-style causal LM from a few numbers (about 80k parameters at the defaults).
* :func:`load_model` / :func:`load_tokenizer` -- any hub id or local folder; failures become a clear
  :class:`~rlft.core.errors.CheckpointError`.
* :func:`save_model` -- a standard HF folder (``save_pretrained`` model + tokenizer) plus ``agent.json`` (kind
  ``llm``) so ``rlft.load_agent`` can load it. A PEFT model is saved merged, its adapter kept in ``adapter/``.

Example::

    tok = train_tokenizer(["1+2=3", "4+5=9"], level="char")
    model = build_tiny_model(tok, BuildConfig())
    save_model(model, tok, "runs/x/stages/init")
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from rlft.core.errors import CheckpointError, ConfigError
from rlft.core.rundir import AtomicDir, write_json
from rlft.core.tuning import TuningConfig, apply_tuning
from rlft.llm.config import BuildConfig

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def train_tokenizer(texts: list[str], level: str = "char", vocab_size: int = 1000) -> Any:
    """A WordLevel tokenizer over the characters (or words) of ``texts``, ready for TRL and ``generate``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS.values())
    tok = Tokenizer(models.WordLevel(unk_token=SPECIAL_TOKENS["unk_token"]))
    if level == "char":
        tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # type: ignore[assignment]
        tok.decoder = decoders.Fuse()  # type: ignore[assignment]
        vocab_size = len(specials) + len({c for t in texts for c in t})
    else:
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # type: ignore[assignment]
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=specials, min_frequency=1)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="left", **SPECIAL_TOKENS)
    return fast


def build_tiny_model(tokenizer: Any, cfg: BuildConfig, seed: int = 0) -> Any:
    """A randomly initialised Qwen2 causal LM sized by ``cfg`` for ``tokenizer``'s vocabulary."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    if cfg.hidden_size % cfg.num_heads or cfg.num_heads % cfg.num_kv_heads:
        raise ConfigError(f"init: num_heads ({cfg.num_heads}) must divide hidden_size ({cfg.hidden_size}) and "
                          f"num_kv_heads ({cfg.num_kv_heads}) must divide num_heads.")
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_length, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, use_cache=True)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    return model


def load_tokenizer(name: str, what: str = "model.name") -> Any:
    """The tokenizer of a hub id or local folder (left padding; a missing pad token becomes EOS)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name)
    except Exception as e:
        raise CheckpointError(_not_found(name, what, e)) from e
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name: str, dtype: str = "float32", trust_remote_code: bool = False, what: str = "model.name") -> Any:
    """A causal LM from a hub id or local folder; an unknown path or id is a CheckpointError naming it."""
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype: Any = "auto" if dtype == "auto" else getattr(torch, dtype)
    try:
        return AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    except Exception as e:
        raise CheckpointError(_not_found(name, what, e)) from e


def _not_found(name: str, what: str, e: Exception) -> str:
    if not name:
        return (f"No model to start from: {what} is empty and no earlier stage produced one. Add the `init` stage "
                "(a tiny model built offline) or set model.name to a Hugging Face id or local folder.")
    where = "a local folder" if Path(name).exists() else "not a local folder, and not in the Hugging Face cache"
    return (f"Cannot load the causal LM '{name}' ({what}): {where} ({type(e).__name__}: {str(e)[:300]}). "
            "Give a folder written by save_pretrained (config.json + weights + tokenizer), or a hub id that is "
            "cached locally (the machine may be offline: HF_HUB_OFFLINE=1).")


def peft_config(tuning: TuningConfig, task_type: str = "CAUSAL_LM") -> Any:
    """PEFT ``LoraConfig`` for ``tuning.mode == 'lora'`` (None otherwise), built from the shared TuningConfig."""
    if tuning.mode != "lora":
        return None
    from peft import LoraConfig

    return LoraConfig(r=tuning.lora_r, lora_alpha=tuning.lora_alpha, lora_dropout=tuning.lora_dropout,  # type: ignore[arg-type]
                      target_modules=list(tuning.lora_targets) or "all-linear", task_type=task_type)


def check_lora_targets(model: Any, tuning: TuningConfig, stage: str) -> None:
    """LoRA needs modules to adapt: each of ``tuning.lora_targets`` must name one (else every linear layer of the
    trunk is adapted, and there must be one). A ConfigError naming the model's linear layers otherwise."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear | Conv1D) and n]
    heads = {n for n, m in model.named_modules() if m is model.get_output_embeddings() or n.endswith("score")}
    trunk = [n for n in linear if n not in heads]
    short = sorted({n.rsplit(".", 1)[-1] for n in trunk})
    missing = [t for t in tuning.lora_targets if not any(n == t or n.endswith(f".{t}") for n in linear)]
    if missing or not trunk:
        what = f"no module named {missing}" if missing else "no linear layer in its trunk"
        fix = f"Its linear layers are: {', '.join(short)}. Set" if short else "Use tuning.mode full or freeze, or set"
        raise ConfigError(f"{stage}.tuning.mode=lora: the model has {what}, so LoRA has nothing to train. {fix} "
                          f"{stage}.tuning.lora_targets to modules it has (empty: every linear layer).")


def freeze_early_layers(model: Any, tuning: TuningConfig) -> dict[str, int]:
    """``freeze`` mode: embeddings and all but the last ``trainable_layers`` blocks frozen; the rest trains."""

    base = getattr(model, "model", model)
    layers = getattr(base, "layers", None)
    embed = model.get_input_embeddings()
    if layers is None:
        raise ConfigError("tuning.mode=freeze needs a decoder with `model.layers` (Llama/Qwen/Mistral-style); "
                          "use full or lora for this model.")
    groups = [[embed], *[[block] for block in layers]]
    heads = [m for m in (getattr(base, "norm", None), model.get_output_embeddings()) if m is not None]
    counts = apply_tuning(model, tuning, groups, heads)
    if getattr(model.config, "tie_word_embeddings", False) and tuning.trainable_layers < len(groups):
        # Tied input/output embeddings are one tensor: it trains with the output head.
        embed.weight.requires_grad_(True)
    return counts


def save_model(model: Any, tokenizer: Any, folder: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``folder`` atomically: HF model + tokenizer (+ ``adapter/`` when ``model`` is a PEFT model)."""
    folder = Path(folder)
    with AtomicDir(folder) as tmp:
        export = model
        if hasattr(model, "merge_and_unload"):  # a PEFT model: keep the adapter, export merged weights
            model.save_pretrained(tmp / "adapter")

            export = copy.deepcopy(model).merge_and_unload()
        export.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "agent.json", {"kind": "llm", "format": "huggingface", **(meta or {})})
    return folder


def count_parameters(model: Any) -> dict[str, int]:
    """Trainable and total parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable_params": trainable, "total_params": sum(p.numel() for p in model.parameters())}
