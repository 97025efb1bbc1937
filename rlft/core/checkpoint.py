"""Trainer state (optimizer + RNG + counters) in safetensors/JSON, and the one checkpointer every stage uses.

A checkpoint is a folder ``DIR/checkpoints/<stage>/<step>/`` with safetensors weights and JSON metadata -- never a
pickle -- written atomically; the newest ``keep`` are kept. Resume picks the newest complete checkpoint.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from rlft.core.errors import CheckpointError
from rlft.core.metrics import log
from rlft.core.rundir import AtomicDir, load_safetensors, read_json, write_json


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, pstate in state["state"].items():
        for name, value in pstate.items():
            key = f"optim.{idx}.{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach().cpu().contiguous()
            else:
                scalars[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[Any, Any]:
    state: dict[Any, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        if not key.startswith("optim."):
            continue
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The Python, NumPy and torch RNG states as (tensors, JSON)."""
    np_state: Any = np.random.get_state()
    py_state = random.getstate()
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
    }
    meta = {
        "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(tensors["rng.torch"])
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["rng.numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


def save_trainer_state(
    folder: str | Path,
    optimizer: torch.optim.Optimizer | None,
    counters: dict[str, Any],
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Save optimizer state, RNG states and counters to ``folder/trainer_state.{safetensors,json}``."""
    folder = Path(folder)
    tensors, rng_meta = rng_state()
    opt_meta: dict[str, Any] | None = None
    if optimizer is not None:
        opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
        tensors.update(opt_tensors)
    for key, value in (extra_tensors or {}).items():
        tensors[f"extra.{key}"] = value.detach().cpu().contiguous()
    save_file(tensors, str(folder / "trainer_state.safetensors"))
    write_json(folder / "trainer_state.json", {"counters": counters, "rng": rng_meta, "optimizer": opt_meta})


@dataclass
class TrainerState:
    """What :func:`load_trainer_state` returns; call :meth:`restore` to apply it."""

    counters: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    def restore(self, optimizer: torch.optim.Optimizer | None) -> None:
        """Load the optimizer state and the RNG states."""
        if optimizer is not None and self.meta.get("optimizer") is not None:
            optimizer.load_state_dict(_unflatten_optimizer(self.tensors, self.meta["optimizer"]))
        set_rng_state(self.tensors, self.meta["rng"])

    def extra(self, key: str) -> torch.Tensor | None:
        """An extra tensor saved with ``extra_tensors``."""
        return self.tensors.get(f"extra.{key}")


def load_trainer_state(folder: str | Path) -> TrainerState:
    """Read what :func:`save_trainer_state` wrote."""
    folder = Path(folder)
    meta = read_json(folder / "trainer_state.json", "trainer state")
    tensors = load_safetensors(folder / "trainer_state.safetensors", "trainer state")
    return TrainerState(counters=meta["counters"], tensors=tensors, meta=meta)


class Checkpointer:
    """The checkpoints of one stage: ``root/<step>/`` folders (zero-padded), each written atomically.

    ``write(step)`` yields a temporary folder and renames it into place when the block ends without an error, then
    removes all but the newest ``keep`` checkpoints (0 keeps all). ``adopt`` moves a folder another library wrote
    (a Hugging Face ``checkpoint-N``) into place the same way. ``latest()`` ignores anything that is not a complete
    checkpoint (temporary folders of a killed write).

    Example::

        ckpt = Checkpointer(run.checkpoints_dir / "imitate", keep=2)
        with ckpt.write(step=5) as folder:
            save_file(weights, str(folder / "model.safetensors"))
        ckpt.latest()  # .../checkpoints/imitate/000000005
    """

    def __init__(self, root: str | Path, keep: int = 2) -> None:
        self.root = Path(root)
        self.keep = keep

    def path(self, step: int) -> Path:
        return self.root / f"{int(step):09d}"

    @contextmanager
    def write(self, step: int) -> Iterator[Path]:
        """A temporary folder that becomes checkpoint ``step`` when the block completes."""
        self.root.mkdir(parents=True, exist_ok=True)
        with AtomicDir(self.path(step)) as tmp:
            yield tmp
        self.prune()

    def adopt(self, folder: str | Path, step: int) -> Path:
        """Move a finished checkpoint folder written elsewhere (on the same disk) into place as ``step``."""
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.path(step)
        if target.exists():
            shutil.rmtree(target)
        os.replace(folder, target)
        self.prune()
        return target

    def all(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(d for d in self.root.iterdir() if d.is_dir() and d.name.isdigit())

    def latest(self) -> Path | None:
        """The newest complete checkpoint (None when there is none)."""
        found = self.all()
        return found[-1] if found else None

    def newest_readable(self, read: Callable[[Path], object], what: str = "checkpoint") -> Path | None:
        """The newest checkpoint that ``read(folder)`` (a check that only reads) accepts.

        A damaged newest checkpoint (``read`` raises CheckpointError: a truncated or overwritten file) is renamed to
        ``.<step>.damaged`` with a warning -- so it is neither resumed nor kept as "newest" -- and the one before it
        is tried. None when there is no readable checkpoint (the stage starts from the beginning).
        """
        for folder in reversed(self.all()):
            try:
                read(folder)
                return folder
            except CheckpointError as e:
                damaged = folder.with_name(f".{folder.name}.damaged")
                shutil.rmtree(damaged, ignore_errors=True)
                os.replace(folder, damaged)
                log.warning("The %s '%s' is damaged (%s); it was set aside as '%s' and the one before it is used.",
                            what, folder, e, damaged.name)
        return None

    def step_of(self, folder: Path) -> int:
        return int(folder.name)

    def prune(self) -> None:
        """Remove all but the newest ``keep`` checkpoints."""
        if self.keep > 0:
            for old in self.all()[:-self.keep]:
                shutil.rmtree(old, ignore_errors=True)
