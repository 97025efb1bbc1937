"""The run folder: layout, refusal to overwrite, atomic folders and JSON, safetensors reads with clear errors.

Layout of a run folder ``DIR``::

    DIR/config.yaml              resolved config (what actually ran)
    DIR/run.json                 pipeline progress: finished stages and their results
    DIR/results.json             every stage's typed result (headline, metrics, outputs)
    DIR/run.log                  log of the run
    DIR/tb/<stage>/              TensorBoard event files, one folder per stage
    DIR/data/<name>/             datasets written by stages (Minari games, text)
    DIR/checkpoints/<stage>/<step>/   periodic checkpoints, each written atomically (rlft.core.checkpoint)
    DIR/stages/<stage>/          the model each stage ended with
    DIR/final/                   the final agent or model; `rlft.load_agent(DIR)` loads it

Folders are written under a temporary name and renamed when complete, so a run killed at any instant (SIGKILL
included) leaves either the old folder or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from rlft.core.errors import CheckpointError, RunDirError

RUN_FILE = "run.json"


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default))
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_json(path: str | Path, what: str = "file") -> Any:
    """Read JSON; a missing or corrupt file is a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"The {what} '{path}' does not exist.")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"The {what} '{path}' is corrupt (not valid JSON: {e}). It may have been truncated; "
            "use an earlier checkpoint or re-run the stage that wrote it."
        ) from e


class AtomicDir:
    """Context manager yielding a temporary folder that is renamed to ``final`` on success.

    An existing ``final`` is replaced only after the new one is complete (used for ``final/`` and stage outputs).
    """

    def __init__(self, final: str | Path) -> None:
        self.final = Path(final)
        self.tmp = self.final.with_name(f".{self.final.name}.tmp-{os.getpid()}")

    def __enter__(self) -> Path:
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
        if self.final.exists():
            os.replace(self.final, old)
        os.replace(self.tmp, self.final)
        shutil.rmtree(old, ignore_errors=True)


def load_safetensors(path: str | Path, what: str = "weights file") -> dict[str, torch.Tensor]:
    """Load a safetensors file; missing/corrupt/truncated files raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"The {what} '{path}' does not exist.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"The {what} '{path}' is corrupt or truncated ({e}). Use an earlier checkpoint, or re-run the stage."
        ) from e


class RunDir:
    """A run folder: refuses to reuse a non-empty folder unless resuming; tracks stage progress in ``run.json``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- creation ------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, resume: bool = False) -> RunDir:
        """Open ``path`` for a new run (must be empty or absent) or, with ``resume``, an existing run."""
        run = cls(path)
        p = run.path
        if resume:
            if not (p / RUN_FILE).is_file():
                raise RunDirError(
                    f"Nothing to resume in '{p}': it holds no run ({RUN_FILE} is missing). "
                    "Start a new run without --resume."
                )
            return run
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise RunDirError(
                f"The run folder '{p}' already exists and is not empty; rlft never overwrites a run. "
                "Pass --resume to continue it, or choose another --run-dir."
            )
        p.mkdir(parents=True, exist_ok=True)
        write_json(p / RUN_FILE, {"created": time.time(), "stages": {}})
        return run

    # -- layout --------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def final_dir(self) -> Path:
        return self.path / "final"

    def tb_dir(self, stage: str) -> Path:
        return self.path / "tb" / stage

    def stage_dir(self, stage: str) -> Path:
        return self.path / "stages" / stage

    def data_dir(self, name: str) -> Path:
        return self.path / "data" / name

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    # -- progress ------------------------------------------------------------------------------------------
    def progress(self) -> dict[str, Any]:
        return read_json(self.path / RUN_FILE, "run progress file")

    def stage_done(self, stage: str) -> dict[str, Any] | None:
        """The recorded result of a finished stage, or None."""
        return self.progress()["stages"].get(stage)

    def mark_done(self, stage: str, result: dict[str, Any]) -> None:
        data = self.progress()
        data["stages"][stage] = result
        write_json(self.path / RUN_FILE, data)
