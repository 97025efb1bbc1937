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
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from rlft.core.errors import CheckpointError, RlftError, RunDirError

RUN_FILE = "run.json"
LOCK_FILE = ".lock"


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename). NaN and infinities are written as ``null`` (valid JSON)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_finite(data), indent=2, sort_keys=False, default=_json_default, allow_nan=False))
    os.replace(tmp, path)


def _finite(data: Any) -> Any:
    """``data`` with every non-finite float (and NumPy scalar) replaced by None."""
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    if isinstance(data, float | np.floating):
        return float(data) if math.isfinite(data) else None
    return data


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


_TEMPORARY = re.compile(r"^\..+\.(tmp|old)(-\d+)?$")
"""Names of the temporaries an atomic write leaves behind when it is killed (``.final.tmp-123``, ``.run.json.tmp``)."""
_HELD: dict[Path, int] = {}
"""Run folders this process holds the lock of (path -> open file descriptor, kept open for the process's life)."""
_WORK = ("checkpoints", "data", "stages", "final")
"""Sub-folders whose content is work a run did (a folder holding none of it may be reused by a new run)."""


class RunDir:
    """A run folder: one process at a time (an OS lock), never overwritten, progress tracked in ``run.json``.

    The resolved config is written (atomically) before anything else, so a run killed at any moment can be continued
    with ``--resume``; a folder in which no stage finished and nothing was saved (a run that failed on bad input at
    start, or was killed in its first seconds) may be reused by a new run.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- creation ------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, resume: bool = False, config: str | None = None) -> RunDir:
        """Open ``path`` for a new run (absent, empty, or holding no work) or, with ``resume``, an existing run.

        ``config`` (YAML text) is written to ``config.yaml`` first, before ``run.json``.
        """
        run = cls(path)
        p = run.path
        if resume:
            if not run.config_path.is_file():
                raise RunDirError(
                    f"Nothing to resume in '{p}': it holds no run (config.yaml is missing). Start a new run into it "
                    "without --resume.")
            run.lock()
            run.sweep()
            if not (p / RUN_FILE).is_file():  # killed between config.yaml and run.json: nothing finished yet
                write_json(p / RUN_FILE, {"created": time.time(), "stages": {}})
            return run
        if p.exists() and not p.is_dir():
            raise RunDirError(f"The run folder '{p}' is a file; choose another --run-dir.")
        p.mkdir(parents=True, exist_ok=True)
        run.lock()
        if not run.holds_no_work():
            raise RunDirError(
                f"The run folder '{p}' already holds a run; rlft never overwrites one. Pass --resume to continue it, "
                "or choose another --run-dir.")
        for leftover in (RUN_FILE, "config.yaml", "run.log", "results.json", "tb"):  # an unstarted run's files
            target = p / leftover
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        run.sweep()
        if config is not None:
            write_text(run.config_path, config)
        write_json(p / RUN_FILE, {"created": time.time(), "stages": {}})
        return run

    def holds_no_work(self) -> bool:
        """True when no stage finished and no stage saved anything (checkpoints, datasets, models)."""
        try:
            finished = read_json(self.path / RUN_FILE, "run progress file").get("stages") if (
                self.path / RUN_FILE).is_file() else {}
        except RlftError:
            finished = None  # an unreadable progress file: treat as work, never delete it
        if finished is None or finished:
            return False
        known = {RUN_FILE, "config.yaml", "run.log", "results.json", "tb", LOCK_FILE, *_WORK}
        if any(e.name not in known and not _TEMPORARY.match(e.name) for e in self.path.iterdir()):
            return False  # something rlft did not write: not ours to reuse
        return not any((self.path / d).is_dir() and any((self.path / d).iterdir()) for d in _WORK)

    def lock(self) -> None:
        """Hold an exclusive OS lock on the folder for the life of this process (the kernel releases it when the
        process dies); a second process gets a RunDirError."""
        key = self.path.resolve()
        if key in _HELD:
            return
        try:
            import fcntl
        except ImportError:  # not on POSIX: no lock
            return
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise RunDirError(
                f"The run folder '{self.path}' is in use by another rlft process (it holds the folder's lock). Wait "
                "for it to finish, or choose another --run-dir.") from e
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        _HELD[key] = fd

    def sweep(self) -> None:
        """Remove the temporaries of writes that were killed (this process holds the lock: nobody else writes)."""
        for root, dirs, files in os.walk(self.path):
            for name in [*dirs, *files]:
                if _TEMPORARY.match(name):
                    target = Path(root) / name
                    shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
            dirs[:] = [d for d in dirs if not _TEMPORARY.match(d)]

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
