"""Small encoders for supervised and self-supervised fine-tuning: an image CNN and an MLP.

An encoder maps a batch of inputs to a feature vector (``features_dim``); heads (a classifier, a rotation predictor,
a pixel decoder) sit on top. :class:`EncoderSpec` describes the network and is saved beside the weights, so a
checkpoint rebuilds without code. :func:`encoder_groups` lists the trunk's layer groups from input to output for
the `freeze` tuning mode.

Example::

    spec = EncoderSpec(arch="cnn", input_shape=[1, 8, 8], channels=[32, 64], features_dim=128)
    encoder = build_encoder(spec)
    features = encoder(torch.zeros(16, 1, 8, 8))  # (16, 128)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn


@dataclass
class EncoderSpec:
    """A small encoder network. Saved in the metadata of every encoder and classifier checkpoint."""

    arch: Literal["cnn", "mlp"] = "cnn"
    """`cnn`: conv blocks over (C, H, W) images; `mlp`: flatten, then hidden layers."""
    input_shape: list[int] = field(default_factory=lambda: [1, 8, 8])
    """Shape of one input: (C, H, W) for `cnn`; any shape for `mlp` (it is flattened)."""
    channels: list[int] = field(default_factory=lambda: [32, 64])
    """`cnn`: channels of each conv block (3x3 conv + ReLU, twice; 2x2 max-pool after every block but the last)."""
    hidden: list[int] = field(default_factory=lambda: [128])
    """`mlp`: hidden layer sizes."""
    features_dim: int = 128
    """Size of the feature vector the encoder outputs."""


class ImageCNN(nn.Module):
    """Conv blocks -> flatten -> linear projection to ``features_dim`` (ReLU)."""

    def __init__(self, spec: EncoderSpec) -> None:
        super().__init__()
        c, h, w = spec.input_shape
        blocks: list[nn.Module] = []
        for i, out_c in enumerate(spec.channels):
            layers: list[nn.Module] = [nn.Conv2d(c, out_c, 3, padding=1), nn.ReLU(),
                                       nn.Conv2d(out_c, out_c, 3, padding=1), nn.ReLU()]
            if i < len(spec.channels) - 1:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            blocks.append(nn.Sequential(*layers))
            c = out_c
        self.blocks = nn.ModuleList(blocks)
        self.project = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, spec.features_dim), nn.ReLU())
        self.features_dim = spec.features_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.project(x)  # type: ignore[no-any-return]


class MLPEncoder(nn.Module):
    """Flatten -> hidden layers (ReLU) -> ``features_dim`` (ReLU)."""

    def __init__(self, spec: EncoderSpec) -> None:
        super().__init__()
        sizes = [math.prod(spec.input_shape), *spec.hidden, spec.features_dim]
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in zip(sizes, sizes[1:]))
        self.features_dim = spec.features_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1).float()
        for layer in self.layers:
            x = layer(x)
        return x


def build_encoder(spec: EncoderSpec) -> nn.Module:
    """A freshly initialised encoder for ``spec``."""
    if spec.arch == "cnn":
        if len(spec.input_shape) != 3:
            raise ValueError(f"arch 'cnn' needs input_shape (C, H, W), got {spec.input_shape}")
        return ImageCNN(spec)
    return MLPEncoder(spec)


def encoder_groups(encoder: nn.Module) -> list[list[nn.Module]]:
    """The trunk's layer groups from input to output (conv blocks then the projection; or the MLP layers)."""
    if isinstance(encoder, ImageCNN):
        return [[b] for b in encoder.blocks] + [[encoder.project]]
    if isinstance(encoder, MLPEncoder):
        return [[layer] for layer in encoder.layers]
    raise TypeError(f"no layer groups known for {type(encoder).__name__}")
