"""x"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from rlft.core.metrics import MetricLogger, log
from rlft.core.rundir import AtomicDir
from rlft.core.runtime import ResourceMeter
from rlft.core.tuning import merge_lora
from rlft.encoder.config import ClassifyConfig
from rlft.encoder.data import load_splits
from rlft.encoder.models import Classifier, resolve_backbone, save_classifier
from rlft.encoder.training import Trainer, build_model

if TYPE_CHECKING:
    from rlft.pipeline.runner import StageContext


def run(ctx: StageContext) -> dict[str, Any]:
    """Train (and, with `seeds`/`scratch_baseline`, repeat); export the first model to ``DIR/stages/classify``."""
    cfg: ClassifyConfig = ctx.cfg.classify  # type: ignore[attr-defined]
    meter = ResourceMeter(ctx.device)
    previous = ctx.outputs.get("encoder")
    base = resolve_backbone(cfg.backbone, previous=previous, encoder_spec=cfg.encoder, pooling=cfg.pooling,
                            max_length=cfg.max_length)
    variants = [(kind, i) for i in range(cfg.seeds) for kind in (["pretrained", "scratch"] if cfg.scratch_baseline
                                                                   else ["pretrained"])]
    results: dict[str, list[dict[str, float]]] = {"pretrained": [], "scratch": []}
    exported: dict[str, Any] = {}
    for kind, i in variants:
        seed = ctx.seed + i
        train, held_out = load_splits(cfg.data, seed=seed)
        model, counts = build_model(cfg, len(train.label_names), seed, backbone=base, scratch=kind == "scratch")
        name = "classify" if (kind, i) == variants[0] else f"classify_{kind}_seed{i}"
        with MetricLogger(ctx.run.tb_dir("classify") / name) as metrics:
            trainer = Trainer(model, cfg, train, held_out, seed, ctx.device, name=name, run=ctx.run, metrics=metrics,
                              verbosity=logging.INFO if name == "classify" else logging.DEBUG)
            if ctx.resume:
                trainer.maybe_resume()
            scores = trainer.fit()
        results[kind].append(scores)
        log.info("classify: %s seed %d (%d labelled examples): accuracy %.4f, macro-F1 %.4f", kind, seed,
                 len(train), scores["accuracy"], scores["macro_f1"])
        if (kind, i) == variants[0]:
            exported = {"model": model, "counts": counts, "labels": train.label_names, "n_train": len(train),
                        "n_eval": len(held_out), "history": trainer.history}
    out = ctx.run.stage_dir("classify")
    final: Classifier = exported["model"].cpu()
    if cfg.tuning.mode == "lora":
        final = merge_lora(copy.deepcopy(final))  # type: ignore[assignment]
    metrics_out: dict[str, Any] = _summary(results)
    if results["scratch"]:
        log.info("classify: held-out accuracy %.4f (pretrained) vs %.4f (same network from scratch), mean of %d "
                 "seed(s): %+.2f points", metrics_out["accuracy"], metrics_out["scratch_accuracy"], cfg.seeds,
                 100 * metrics_out["gain_over_scratch"])
    metrics_out.update(exported["counts"], train_examples=exported["n_train"], eval_examples=exported["n_eval"],
                       tuning=cfg.tuning.mode, backbone=cfg.backbone, **meter.read())
    with AtomicDir(out) as tmp:
        save_classifier(tmp, final, exported["labels"], extra={"metrics": metrics_out})
    return {"outputs": {"model": str(out)}, "metrics": metrics_out, "history": exported["history"],
            "per_seed": results}


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
