"""Self-supervised objectives for encoders: BERT's masked-LM masking, and image rotation, masked pixels and SimCLR.

* :func:`mask_tokens` -- 15% of the (non-special) tokens are chosen; of those 80% become ``[MASK]``, 10% a random
  token, 10% stay; the loss is cross-entropy on the chosen tokens only.
* :class:`ImagePretrainer` -- ``rotation``: predict which of 0/90/180/270 degrees an image was rotated by (Gidaris
  et al., 2018); ``masked_pixels``: hide random 2x2 patches and reconstruct the hidden pixels (MSE on them only);
  ``contrastive``: SimCLR's NT-Xent over two random views of each image.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from rlft.encoder.models import SmallEncoder
from rlft.policies.encoders import EncoderSpec

if TYPE_CHECKING:
    pass


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab_size: int, prob: float,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: returns (corrupted ids, labels with -100 where no prediction is asked).

    ``special`` is True at tokens never chosen ([CLS], [SEP], padding).
    """
    labels = input_ids.clone()
    chosen = (torch.rand(input_ids.shape, generator=generator) < prob) & ~special
    labels[~chosen] = -100
    corrupted = input_ids.clone()
    roll = torch.rand(input_ids.shape, generator=generator)
    corrupted[chosen & (roll < 0.8)] = mask_id
    random_tokens = torch.randint(vocab_size, input_ids.shape, generator=generator)
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    corrupted[swap] = random_tokens[swap]
    return corrupted, labels


def rotation_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image rotated by 0, 90, 180 and 270 degrees, with the rotation index as label."""
    rotated = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4, device=images.device).repeat_interleave(len(images))
    return rotated, labels


def patch_mask(shape: torch.Size, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A (N, 1, H, W) mask with random 2x2 patches set to 1."""
    n, _, h, w = shape
    patches = (torch.rand((n, 1, math.ceil(h / 2), math.ceil(w / 2)), generator=generator) < ratio).float()
    return patches.repeat_interleave(2, 2).repeat_interleave(2, 3)[:, :, :h, :w]


def augment(images: torch.Tensor, generator: torch.Generator | None = None, shift: int = 1) -> torch.Tensor:
    """A random view of each image: shifted by up to ``shift`` pixels each way, one random 2x2 patch erased."""
    n, _, h, w = images.shape
    padded = F.pad(images, (shift, shift, shift, shift))
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (n, 1, h, 1): the crop window of each image
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    index = (torch.arange(n)[:, None, None, None], torch.arange(images.shape[1])[None, :, None, None], rows, cols)
    views = padded[tuple(i.to(images.device) for i in index)]
    return views * (1 - patch_mask(images.shape, 1.0 / ((h // 2) * (w // 2)), generator).to(images.device))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view must pick its partner out of the other 2N - 2 views of the batch."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(z1)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, targets)


class ImagePretrainer(nn.Module):
    """An encoder with a throw-away self-supervised head."""

    def __init__(self, spec: EncoderSpec, objective: str, mask_ratio: float = 0.5, temperature: float = 0.2) -> None:
        super().__init__()
        self.encoder = SmallEncoder(spec)
        self.objective = objective
        self.mask_ratio = mask_ratio
        self.temperature = temperature
        d = spec.features_dim
        self.head: nn.Module
        if objective == "contrastive":  # SimCLR's projection head; the encoder's features are what is kept
            self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 64))
        else:
            self.head = nn.Linear(d, 4 if objective == "rotation" else math.prod(spec.input_shape))

    def loss(self, images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        if self.objective == "rotation":
            x, y = rotation_batch(images)
            logits = self.head(self.encoder(x))
            return F.cross_entropy(logits, y), {"accuracy": float((logits.argmax(-1) == y).float().mean())}
        if self.objective == "contrastive":
            z1 = self.head(self.encoder(augment(images, generator)))
            z2 = self.head(self.encoder(augment(images, generator)))
            return nt_xent(z1, z2, self.temperature), {}
        mask = patch_mask(images.shape, self.mask_ratio, generator).to(images.device)
        recon = self.head(self.encoder(images * (1 - mask))).view_as(images)
        err = ((recon - images) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)
        return err, {}
