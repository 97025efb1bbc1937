"""Config sections of the encoder stages (``classify``, ``mlm``, ``ssl_image``): dataclasses, a docstring per field.

This is a leaf module (it imports only the core and the network specs), so loading a config never imports a trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rlft.core.config import param
from rlft.core.tuning import TuningConfig
from rlft.policies.encoders import EncoderSpec


@dataclass
class DataConfig:
    """Where the labelled examples come from, and how the held-out split is made."""

    source: str = "vader_words"
    """A named dataset (`bbc_news`, `tweets_sentiment`, `mnist_5k`, `digits`, `vader_words`: docs/datasets.md), a
    .csv/.jsonl/.parquet file, or a `datasets` save_to_disk folder."""
    eval_source: str = ""
    """A separate held-out file or folder; empty: hold out `eval_fraction` of `source` (stratified)."""
    input_column: str = "text"
    """Column with the input: a string (text encoders) or a list of numbers (CNN/MLP encoders). The default `text`
    also finds the `image` column of an image dataset that has no `text` column."""
    label_column: str = "label"
    """Column with the label (any values; they are mapped to class indices in sorted order)."""
    eval_fraction: float = param(0.2, gt=0, lt=1)
    """Share of `source` held out for evaluation when `eval_source` is empty."""
    split_seed: int = param(0, ge=0)
    """Seed of the held-out split (fixed across runs, so runs with different seeds share the held-out set)."""
    label_fraction: float = param(1.0, gt=0, le=1)
    """Share of the training labels used (stratified, drawn with the run's seed); e.g. 0.1 for a 10% label budget."""
    max_train: int = param(0, ge=0)
    """Use at most this many training examples (0: all); for quick runs."""
    max_eval: int = param(0, ge=0)
    """Evaluate on at most this many held-out examples (0: all)."""




@dataclass
class MLMConfig:
    """Settings of the ``mlm`` stage (masked-language-model training of a text encoder)."""

    data: DataConfig = field(default_factory=DataConfig)
    """The texts to learn from: the inputs of the training split (labels are ignored; the held-out split is never
    seen). Use the `classify` stage's data (a YAML anchor: `data: &text {...}` there, `data: *text` here)."""
    backbone: str = "minilm"
    """The encoder to train: `minilm`, an HF model folder, or a cached hub id."""
    steps: int = param(200, ge=1)
    """Optimizer steps."""
    batch_size: int = param(32, ge=1)
    """Texts per step."""
    lr: float = param(5e-5, gt=0)
    """AdamW learning rate (linear decay to 0)."""
    mask_prob: float = param(0.15, gt=0, lt=1)
    """Share of tokens chosen for prediction (BERT: 0.15)."""
    max_length: int = param(64, ge=4)
    """Truncate texts to this many tokens."""
    checkpoint_every: int = param(100, ge=1)
    """Write a resumable checkpoint every N steps (the newest `keep_checkpoints` are kept)."""


@dataclass
class SSLImageConfig:
    """Settings of the ``ssl_image`` stage (self-supervised image encoder training)."""

    data: DataConfig = field(default_factory=DataConfig)
    """The images to learn from: the inputs of the training split (labels are ignored; the held-out split is never
    seen). Use the `classify` stage's data (a YAML anchor)."""
    objective: Literal["rotation", "masked_pixels", "contrastive"] = "contrastive"
    """`rotation`: predict the rotation (0/90/180/270); `masked_pixels`: reconstruct hidden 2x2 patches;
    `contrastive`: SimCLR -- two random shifts/erasures of an image should map close, other images far."""
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    """The encoder network (classify reuses it with `backbone: previous`)."""
    epochs: int = param(20, ge=1)
    """Passes over the unlabelled images."""
    batch_size: int = param(64, ge=1)
    """Images per step (rotation: x4 after rotating each image four ways)."""
    lr: float = param(1e-3, gt=0)
    """AdamW learning rate (linear decay to 0)."""
    mask_ratio: float = param(0.5, gt=0, lt=1)
    """`masked_pixels`: share of 2x2 patches hidden."""
    temperature: float = param(0.2, gt=0)
    """`contrastive`: softmax temperature of the NT-Xent loss."""
    checkpoint_every: int = param(200, ge=1)
    """Write a resumable checkpoint every N steps (the newest `keep_checkpoints` are kept)."""




LR_BY_MODE = {"full": 5e-5, "freeze": 1e-4, "lora": 5e-4}
"""Default peak learning rate per tuning mode (`classify.lr: null`): fine-tuning every weight of a pretrained
transformer wants a small step; adapters and a few top layers tolerate larger ones."""


@dataclass
class ClassifyConfig:
    """Settings of the ``classify`` stage."""

    data: DataConfig = field(default_factory=DataConfig)
    """The labelled examples and the held-out split."""
    backbone: str = "minilm"
    """`minilm` (packaged MiniLM-L6), `efficientnet-lite0` (ImageNet weights), `cnn`, `mlp`, `previous` (an earlier
    stage's encoder), a folder, or an HF id."""
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    """Shape of a fresh `cnn` / `mlp` backbone (ignored for pretrained backbones)."""
    pooling: str = "mean"
    """Text encoders: `mean` of the token vectors, or `cls` (the first token)."""
    max_length: int = param(64, ge=2)
    """Text encoders: truncate inputs to this many tokens."""
    image_size: int = param(224, ge=32)
    """`efficientnet-lite0`: images are resized to this many pixels square (its ImageNet weights saw 224; smaller
    runs faster on a CPU)."""
    tuning: TuningConfig = field(default_factory=TuningConfig)
    """Which parameters train: `full`, `freeze` (last `trainable_layers` layers + head), or `lora`."""
    epochs: int = param(3, ge=1)
    """Passes over the training examples."""
    batch_size: int = param(32, ge=1)
    """Examples per optimizer step."""
    lr: float | None = param(None, gt=0)
    """Peak learning rate of the backbone's trainable parameters (LoRA adapters included), decaying linearly to 0.
    None: the usual value for the tuning mode (`LR_BY_MODE`: full 5e-5, freeze 1e-4, lora 5e-4), which suits
    pretrained transformers; set it for small networks."""
    head_lr: float | None = None
    """Learning rate of the new head (None: `lr`). A new head usually wants more than a pretrained trunk."""
    weight_decay: float = param(0.0, ge=0)
    """AdamW weight decay."""
    dropout: float = param(0.1, ge=0, lt=1)
    """Dropout on the features before the head."""
    max_grad_norm: float = param(1.0, gt=0)
    """Gradient clipping norm."""
    log_every: int = param(10, ge=1)
    """Log the training loss every N steps."""
    eval_every: int = param(1, ge=1)
    """Score the held-out split every N epochs (and after the last); evaluation is costly for large models on CPU."""
    checkpoint_every: int = param(200, ge=1)
    """Write a resumable checkpoint every N steps (and at the end); the newest `keep_checkpoints` are kept."""
    seeds: int = param(1, ge=1)
    """Train this many times (seeds `seed`, `seed+1`, ...) and report the mean; the first run is exported."""
    scratch_baseline: bool = False
    """Also train the same network from a random initialisation (tuning mode `full`) on the same examples."""

    def validate(self) -> None:
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
