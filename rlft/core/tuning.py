"""The three parameter-tuning modes, for any ``torch.nn.Module``: ``full``, ``freeze`` and ``lora``.

* ``full`` -- every parameter trains (retrain all parameters).
* ``freeze`` -- transfer learning: the early layers are frozen; the last ``trainable_layers`` layer groups and the
  output heads train.
* ``lora`` -- PEFT LoRA adapters are injected into the trunk's linear/conv layers; only the adapters and the output
  heads train (heads are new or tiny, as PEFT's ``modules_to_save`` for classifier heads). Export merges the adapters
  into plain weights (:func:`merge_lora`).

A model tells this module its structure with ``groups`` (its trunk from input to output, as lists of modules) and
``heads`` (modules that always train). Policies get these from :mod:`rlft.policies.networks`; LLM and encoder
stages pass their own.

Example::

    counts = apply_tuning(policy, TuningConfig(mode="freeze", trainable_layers=1),
                          layer_groups(policy), head_modules(policy))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from rlft.core.config import param
from rlft.core.errors import RlftError


@dataclass
class TuningConfig:
    """Which parameters a stage trains."""

    mode: Literal["full", "freeze", "lora"] = "full"
    """`full`: retrain all parameters; `freeze`: freeze early layers (transfer learning); `lora`: PEFT LoRA."""
    trainable_layers: int = param(1, ge=0)
    """`freeze` mode: how many of the last trunk layer groups stay trainable (output heads always train)."""
    lora_r: int = param(8, ge=1)
    """`lora` mode: adapter rank."""
    lora_alpha: float = param(16.0, gt=0)
    """`lora` mode: scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = param(0.0, ge=0, lt=1)
    """`lora` mode: dropout on the adapter input."""
    lora_targets: list[str] = field(default_factory=list)
    """`lora` mode: module names to adapt; empty means every linear/conv layer of the trunk."""


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _names_of(model: nn.Module, modules: list[nn.Module]) -> list[str]:
    wanted = {id(m) for m in modules}
    return [name for name, m in model.named_modules() if id(m) in wanted]


def inject_lora(model: nn.Module, r: int, alpha: float, dropout: float, targets: list[str]) -> nn.Module:
    """Inject LoRA adapters (in place) into the modules named in ``targets``; see :func:`lora_info`."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as e:  # pragma: no cover - peft is an extra

        raise RlftError("Tuning mode 'lora' needs PEFT: pip install 'rlft[lora]'.") from e
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,  # type: ignore[arg-type]
                        target_modules=list(targets))
    inject_adapter_in_model(config, model)
    model._rlft_lora = {"r": r, "alpha": alpha, "dropout": dropout, "targets": list(targets)}  # type: ignore[assignment]
    return model


def lora_info(model: nn.Module) -> dict[str, Any] | None:
    """The LoRA settings injected into ``model`` (None if it has no unmerged adapters)."""
    info = getattr(model, "_rlft_lora", None)
    return dict(info) if info else None


def merge_lora(model: nn.Module) -> nn.Module:
    """Merge every LoRA adapter into its base layer and put the plain layer back (in place)."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
    if hasattr(model, "_rlft_lora"):
        del model._rlft_lora
    return model


def apply_tuning(
    model: nn.Module,
    cfg: TuningConfig,
    groups: list[list[nn.Module]],
    heads: list[nn.Module],
) -> dict[str, int]:
    """Set ``requires_grad`` (and inject LoRA) according to ``cfg``. Returns trainable/total counts."""
    if cfg.mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    elif cfg.mode == "freeze":
        for p in model.parameters():
            p.requires_grad_(False)
        keep = groups[len(groups) - cfg.trainable_layers:] if cfg.trainable_layers > 0 else []
        for module in [m for g in keep for m in g] + heads:
            for p in module.parameters():
                p.requires_grad_(True)
        _train_free_parameters(model)
    elif cfg.mode == "lora":
        if lora_info(model) is None:
            trunk = [m for g in groups for m in g]
            leaf_types = (nn.Linear, nn.Conv2d)
            # Grouped (e.g. depthwise) convolutions are left out: a low-rank update does not fit their weight shape.
            candidates: list[nn.Module] = [sub for m in trunk for sub in m.modules()
                                           if isinstance(sub, leaf_types) and getattr(sub, "groups", 1) == 1]
            targets = cfg.lora_targets or _names_of(model, candidates)
            inject_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, targets)
        for name, p in model.named_parameters():
            p.requires_grad_("lora_" in name)
        for module in heads:
            for p in module.parameters():
                p.requires_grad_(True)
        _train_free_parameters(model)
    trainable, total = count_parameters(model)
    return {"trainable_params": trainable, "total_params": total}


def _train_free_parameters(model: nn.Module) -> None:
    """Parameters registered directly on the model (e.g. a Gaussian policy's ``log_std``) belong to the head."""
    for name, p in model.named_parameters(recurse=False):
        if "lora_" not in name:
            p.requires_grad_(True)
