"""The classify stage on a tiny locally built BERT: tuning modes train exactly the intended parameters, LoRA
adapters save/load/merge faithfully, resume continues a run exactly, and the stage runs end to end from the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from rlft.core.tuning import TuningConfig, count_parameters, merge_lora
from rlft.encoder.config import ClassifyConfig
from rlft.encoder.data import DataConfig, load_splits
from rlft.encoder.evaluate import evaluate
from rlft.encoder.models import load_classifier, save_classifier
from rlft.encoder.training import Trainer, build_model

WORDS = ["good", "great", "fine", "nice", "happy", "love", "bad", "awful", "sad", "hate", "poor", "ugly"]
V, H, L, INTER, P = 5 + len(WORDS), 32, 2, 64, 32  # vocab, hidden, layers, intermediate, positions

EMBEDDINGS = V * H + P * H + 2 * H + 2 * H  # word + position + token type + LayerNorm
LAYER = 4 * (H * H + H) + 2 * H + (H * INTER + INTER) + (INTER * H + H) + 2 * H  # q k v o, LN, intermediate, output, LN
HEAD = H * 2 + 2
R = 4
LORA_PER_LAYER = 4 * R * (H + H) + R * (H + INTER) + R * (INTER + H)  # A (r x in) + B (out x r) on the 6 linears


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with a word-level vocabulary, saved as a Hugging Face folder (no download)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    # transformers 5: `vocab=` (a dict or a path); the old `vocab_file=` is ignored and every word becomes [UNK].
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tokenizer = BertTokenizerFast(vocab=vocab)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=2,
                        intermediate_size=INTER, max_position_embeddings=P)
    BertModel(config, add_pooling_layer=False).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def sentiment_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(120):
        words = rng.choice(WORDS[:6] if rng.random() < 0.5 else WORDS[6:], size=3)
        rows.append((" ".join(words), "pos" if words[0] in WORDS[:6] else "neg"))
    return write_csv(tmp_path_factory.mktemp("data") / "sentiment.csv", rows)


def _cfg(tiny_bert: Path, csv_path: Path, mode: str, **kw: object) -> ClassifyConfig:
    return ClassifyConfig(data=DataConfig(source=str(csv_path)), backbone=str(tiny_bert), max_length=8,
                          tuning=TuningConfig(mode=mode, trainable_layers=1, lora_r=R, lora_alpha=8),  # type: ignore[arg-type]
                          dropout=0.0, **kw)  # type: ignore[arg-type]


def _changed_after_step(model: torch.nn.Module, texts: list[str]) -> set[str]:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(model.prepare(texts)), torch.tensor([0, 1] * (len(texts) // 2)))
    loss.backward()
    opt.step()
    return {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}


TEXTS = ["good great", "awful sad", "love nice", "hate ugly"]


def test_full_mode_trains_every_parameter(tiny_bert: Path, sentiment_csv: Path) -> None:
    model, counts = build_model(_cfg(tiny_bert, sentiment_csv, "full"), 2, seed=0)
    assert counts["trainable_params"] == counts["total_params"] == EMBEDDINGS + L * LAYER + HEAD
    changed = _changed_after_step(model, TEXTS)
    assert any(k.startswith("encoder.model.embeddings.word") for k in changed)
    assert any(".layer.0." in k for k in changed) and "head.weight" in changed


def test_freeze_mode_trains_last_layer_and_head_only(tiny_bert: Path, sentiment_csv: Path) -> None:
    model, counts = build_model(_cfg(tiny_bert, sentiment_csv, "freeze"), 2, seed=0)
    assert counts["trainable_params"] == LAYER + HEAD
    assert counts["total_params"] == EMBEDDINGS + L * LAYER + HEAD
    changed = _changed_after_step(model, TEXTS)
    assert "head.weight" in changed and any(".layer.1." in k for k in changed)
    assert not any(".layer.0." in k or "embeddings" in k for k in changed)


def test_lora_mode_trains_adapters_and_head_only(tiny_bert: Path, sentiment_csv: Path) -> None:
    model, counts = build_model(_cfg(tiny_bert, sentiment_csv, "lora"), 2, seed=0)
    assert counts["trainable_params"] == L * LORA_PER_LAYER + HEAD
    assert counts["total_params"] == EMBEDDINGS + L * LAYER + HEAD + L * LORA_PER_LAYER
    changed = _changed_after_step(model, TEXTS)
    assert changed and all("lora_" in k or k.startswith("head.") for k in changed)
    assert any("lora_B" in k for k in changed)  # B starts at zero: it must move for the adapter to matter


def test_lora_adapters_save_load_and_merge_to_identical_outputs(tiny_bert: Path, sentiment_csv: Path,
                                                                tmp_path: Path) -> None:
    from rlft.core.checkpoint import Checkpointer

    cfg = _cfg(tiny_bert, sentiment_csv, "lora", epochs=2, batch_size=16, lr=0.01, head_lr=0.01)
    train, held_out = load_splits(cfg.data, seed=0)
    model, _ = build_model(cfg, 2, seed=0)
    checkpoints = Checkpointer(tmp_path / "ckpt")
    trainer = Trainer(model, cfg, train, held_out, seed=0, device="cpu", checkpoints=checkpoints)
    trainer.fit()
    batch = model.prepare(held_out.inputs)
    model.eval()
    with torch.no_grad():
        reference = model(batch)
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)

    # Load: a fresh model with adapters injected + the checkpoint's trainable tensors (adapters and head only).
    fresh, _ = build_model(cfg, 2, seed=123)
    resumed = Trainer(fresh, cfg, train, held_out, seed=0, device="cpu", checkpoints=checkpoints)
    assert resumed.maybe_resume()
    saved = set(resumed.trainable_state())
    assert saved and all("lora_" in k or k.startswith("head.") for k in saved)
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(batch), reference)

    # Merge: plain weights, no adapters left, same outputs.
    merged = merge_lora(fresh)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert count_parameters(merged)[1] == EMBEDDINGS + L * LAYER + HEAD
    with torch.no_grad():
        torch.testing.assert_close(merged(batch), reference, rtol=1e-5, atol=1e-5)

    # Export (HF save_pretrained + head) and reload: same outputs again.
    save_classifier(tmp_path / "export", merged, train.label_names)
    assert (tmp_path / "export" / "encoder" / "config.json").is_file()
    loaded, meta = load_classifier(tmp_path / "export")
    assert meta["label_names"] == train.label_names
    with torch.no_grad():
        torch.testing.assert_close(loaded(loaded.prepare(held_out.inputs)), reference, rtol=1e-5, atol=1e-5)


class _Interrupt(Exception):
    pass


class _StopAt:
    """A metrics sink that interrupts training at a given step (as Ctrl-C or a kill would)."""

    def __init__(self, step: int) -> None:
        self.stop = step

    def log(self, scalars: dict[str, float], step: int) -> None:
        if step >= self.stop:
            raise _Interrupt


def test_resume_continues_to_the_same_weights(tmp_path: Path) -> None:
    from rlft.core.checkpoint import Checkpointer

    cfg = ClassifyConfig(data=DataConfig(source="digits", max_train=200, max_eval=100), backbone="mlp",
                         epochs=2, batch_size=32, lr=1e-3, log_every=1, checkpoint_every=3)

    def fresh() -> tuple[torch.nn.Module, object, object]:
        train, held_out = load_splits(cfg.data, seed=0)
        torch.manual_seed(0)
        model, _ = build_model(cfg, 10, seed=0)
        return model, train, held_out

    model, train, held_out = fresh()
    Trainer(model, cfg, train, held_out, seed=0, device="cpu").fit()  # type: ignore[arg-type]
    straight = {k: v.clone() for k, v in model.state_dict().items()}

    checkpoints = Checkpointer(tmp_path / "run" / "checkpoints" / "classify")
    model, train, held_out = fresh()
    with pytest.raises(_Interrupt):
        Trainer(model, cfg, train, held_out, seed=0, device="cpu", checkpoints=checkpoints,  # type: ignore[arg-type]
                metrics=_StopAt(10)).fit()  # type: ignore[arg-type]
    model, train, held_out = fresh()
    trainer = Trainer(model, cfg, train, held_out, seed=0, device="cpu",  # type: ignore[arg-type]
                      checkpoints=checkpoints)
    assert trainer.maybe_resume() and trainer.step == 9
    trainer.fit()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, straight[key], rtol=0, atol=1e-6)


def test_tiny_bert_learns_the_toy_task(tiny_bert: Path, sentiment_csv: Path) -> None:
    cfg = _cfg(tiny_bert, sentiment_csv, "full", epochs=4, batch_size=16, lr=3e-3)
    train, held_out = load_splits(cfg.data, seed=0)
    torch.manual_seed(0)
    model, _ = build_model(cfg, 2, seed=0)
    Trainer(model, cfg, train, held_out, seed=0, device="cpu").fit()
    assert evaluate(model, held_out, "cpu")["accuracy"] >= 0.9


def test_mlm_stage_feeds_classify(tiny_bert: Path, sentiment_csv: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from rlft.pipeline.config import pipeline_from_dict
    from rlft.pipeline.runner import run_pipeline

    cfg = pipeline_from_dict({
        "stages": ["mlm", "classify"],
        "mlm": {"backbone": str(tiny_bert), "steps": 6, "batch_size": 16, "lr": 1e-3, "checkpoint_every": 3,
                "data": {"source": str(sentiment_csv)}},
        "classify": {"backbone": "previous", "data": {"source": str(sentiment_csv)}, "max_length": 8,
                     "epochs": 1, "tuning": {"mode": "lora", "lora_r": R}},
    })
    results = run_pipeline(cfg, tmp_path / "run")
    encoder = Path(str(results["mlm"].outputs.encoder))
    assert (encoder / "config.json").is_file() and (encoder / "tokenizer.json").is_file()
    assert results["mlm"].metrics["steps"] == 6 and results["mlm"].metrics["loss"] > 0
    before = load_file(str(tiny_bert / "model.safetensors"))
    after = load_file(str(encoder / "model.safetensors"))
    key = "embeddings.word_embeddings.weight"
    assert not torch.equal(before[key], after[key])  # masked-LM training moved the encoder
    assert results["classify"].metrics["backbone"] == "previous"
    exported = load_file(str(tmp_path / "run" / "final" / "encoder" / "model.safetensors"))
    assert torch.equal(exported[key], after[key])  # classify started from the mlm stage's encoder (LoRA leaves
    assert not torch.equal(exported[key], before[key])  # embeddings alone), not from the original backbone
