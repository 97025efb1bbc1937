"""The ``classify`` stage: a pretrained backbone + a new head, trained on labelled examples.

The backbone is the packaged MiniLM, a Hugging Face encoder (folder or cached id), a small CNN/MLP, an rlft policy
checkpoint's trunk, or the encoder an earlier stage trained (``backbone: previous``). The loop is
:class:`~rlft.encoder.training.Trainer`; the tuning modes of :mod:`rlft.core.tuning` decide which parameters train:
``full``, ``freeze`` (early layers frozen) or ``lora``. The exported model (``DIR/stages/<stage>``) has LoRA merged.

``seeds > 1`` repeats training with seeds ``seed, seed+1, ...`` (a fresh label subset each when
``data.label_fraction < 1``) and reports means; ``scratch_baseline`` also trains the same architecture from a random
initialisation on the same examples, so a transfer gain is measured, not assumed.

Example::

    rlft train configs/text_classifier.yaml --run-dir runs/txt --set classify.tuning.mode=freeze
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np

from rlft.core.metrics import log
from rlft.core.rundir import AtomicDir
from rlft.core.runtime import ResourceMeter
from rlft.core.tuning import merge_lora
from rlft.encoder.config import ClassifyConfig
from rlft.encoder.data import load_splits
from rlft.encoder.models import Classifier, resolve_backbone, save_classifier
from rlft.encoder.training import Trainer, build_model
from rlft.pipeline.artifacts import Outputs
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import Headline, StageResult


def run(ctx: StageContext[ClassifyConfig]) -> StageResult:
    """Train (and, with `seeds`/`scratch_baseline`, repeat); export the first model to ``DIR/stages/<stage>``."""
    cfg = ctx.config
    meter = ResourceMeter(ctx.device)
    previous = ctx.artifacts.encoder
    base = resolve_backbone(cfg.backbone, previous=previous, encoder_spec=cfg.encoder, pooling=cfg.pooling,
                            max_length=cfg.max_length, image_size=cfg.image_size)
    variants = [(kind, i) for i in range(cfg.seeds) for kind in (["pretrained", "scratch"] if cfg.scratch_baseline
                                                                   else ["pretrained"])]
    results: dict[str, list[dict[str, float]]] = {"pretrained": [], "scratch": []}
    exported: dict[str, Any] = {}
    for kind, i in variants:
        seed = ctx.seed + i
        train, held_out = load_splits(cfg.data, seed=seed)
        model, counts = build_model(cfg, len(train.label_names), seed, backbone=base, scratch=kind == "scratch")
        main = (kind, i) == variants[0]
        variant = None if main else f"{kind}_seed{i}"  # repeats checkpoint into checkpoints/<stage>/<variant>/
        with ctx.metrics(variant or ctx.name) as metrics:
            trainer = Trainer(model, cfg, train, held_out, seed, ctx.device, name=f"{ctx.name}/{variant or 'main'}",
                              checkpoints=ctx.checkpointer(variant), metrics=metrics,
                              verbosity=logging.INFO if main else logging.DEBUG)
            if ctx.resume:
                trainer.maybe_resume()
            scores = trainer.fit()
        results[kind].append(scores)
        log.info("%s: %s seed %d (%d labelled examples): accuracy %.4f, macro-F1 %.4f", ctx.name, kind, seed,
                 len(train), scores["accuracy"], scores["macro_f1"])
        if (kind, i) == variants[0]:
            exported = {"model": model, "counts": counts, "labels": train.label_names, "n_train": len(train),
                        "n_eval": len(held_out), "history": trainer.history}
    out = ctx.output_dir()
    final: Classifier = exported["model"].cpu()
    if cfg.tuning.mode == "lora":
        final = merge_lora(copy.deepcopy(final))  # type: ignore[assignment]
    metrics_out: dict[str, Any] = _summary(results)
    if results["scratch"]:
        log.info("%s: held-out accuracy %.4f (pretrained) vs %.4f (same network from scratch), mean of %d "
                 "seed(s): %+.2f points", ctx.name, metrics_out["accuracy"], metrics_out["scratch_accuracy"], cfg.seeds,
                 100 * metrics_out["gain_over_scratch"])
    metrics_out.update(exported["counts"], train_examples=exported["n_train"], eval_examples=exported["n_eval"],
                       tuning=cfg.tuning.mode, backbone=cfg.backbone, **meter.read())
    with AtomicDir(out) as tmp:
        save_classifier(tmp, final, exported["labels"], extra={"metrics": metrics_out})
    return StageResult(outputs=Outputs(classifier=str(out)), metrics=metrics_out,
                       headline=Headline("accuracy", metrics_out["accuracy"]),
                       details={"history": exported["history"], "per_seed": results})


def _summary(results: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, prefix in (("pretrained", ""), ("scratch", "scratch_")):
        runs = results[kind]
        if not runs:
            continue
        for key in ("accuracy", "macro_f1"):
            values = [r[key] for r in runs]
            out[f"{prefix}{key}"] = float(np.mean(values))
            if len(values) > 1:
                out[f"{prefix}{key}_std"] = float(np.std(values))
    if results["scratch"]:
        out["gain_over_scratch"] = out["accuracy"] - out["scratch_accuracy"]
    out["seeds"] = len(results["pretrained"])
    return out
