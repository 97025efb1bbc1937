"""Held-out evaluation of a classifier: accuracy and macro-F1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rlft.encoder.data import Examples
from rlft.encoder.models import Classifier

if TYPE_CHECKING:
    pass


def accuracy_and_macro_f1(pred: np.ndarray, true: np.ndarray, num_labels: int) -> tuple[float, float]:
    """Accuracy and macro-averaged F1 (classes absent from both ``pred`` and ``true`` are skipped)."""
    accuracy = float(np.mean(pred == true)) if len(true) else 0.0
    f1s = []
    for c in range(num_labels):
        tp = np.sum((pred == c) & (true == c))
        fp = np.sum((pred == c) & (true != c))
        fn = np.sum((pred != c) & (true == c))
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return accuracy, float(np.mean(f1s)) if f1s else 0.0


@torch.no_grad()
def predict(model: Classifier, inputs: list[str] | np.ndarray, device: str, batch_size: int = 256) -> np.ndarray:
    """Predicted class indices for ``inputs``."""
    model.eval()
    preds = []
    for start in range(0, len(inputs), batch_size):
        batch = _to_device(model.prepare(inputs[start:start + batch_size]), device)
        preds.append(model(batch).argmax(-1).cpu().numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def evaluate(model: Classifier, data: Examples, device: str) -> dict[str, float]:
    """``{"accuracy", "macro_f1"}`` on ``data``."""
    acc, f1 = accuracy_and_macro_f1(predict(model, data.inputs, device), data.labels, len(data.label_names))
    return {"accuracy": acc, "macro_f1": f1}


def _to_device(batch: Any, device: str) -> Any:
    if isinstance(batch, dict):
        return {k: v.to(device) for k, v in batch.items()}
    return batch.to(device)
