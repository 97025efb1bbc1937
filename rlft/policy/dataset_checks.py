"""Integrity checks of a Minari dataset folder, run before Minari or pyarrow decode anything.

pyarrow and h5py trust the lengths stored in a file, so a truncated or overwritten dataset would otherwise crash the
process or exhaust the memory; these checks turn every such case into a :class:`DatasetError` that names the
dataset folder, what is wrong and the fix. :mod:`rlft.policy.datasets` calls them when it opens a dataset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlft.core.errors import DatasetError


def damaged(path: Path, what: str) -> DatasetError:
    """The error for a dataset whose files are damaged: names the dataset folder, what is wrong and the fix."""
    root = path.parent if path.name == "data" else path
    return DatasetError(
        f"The dataset '{root}' cannot be read: it is damaged ({what}). Restore it from a copy, or record it again "
        "(`rlft record --env ENV --agent AGENT --out DIR`)."
    )


def read_metadata(path: Path) -> dict[str, Any]:
    """``path/metadata.json`` as a dict, checked enough that Minari can open the dataset without crashing."""
    file = path / "metadata.json"
    try:
        meta = json.loads(file.read_bytes())
    except OSError as e:
        raise damaged(path, f"its metadata.json cannot be read: {e}") from e
    except (ValueError, RecursionError) as e:  # not JSON, or not UTF-8
        raise damaged(path, f"its metadata.json is not valid JSON: {e}") from e
    if not isinstance(meta, dict):
        raise damaged(path, f"its metadata.json holds a {type(meta).__name__}, not a JSON object")
    for key in ("total_episodes", "total_steps"):
        value = meta.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise damaged(path, f"its metadata.json has no valid '{key}' (a count >= 0), got {value!r}")
    return meta


def _first_missing(n: int, present: set[int]) -> int | None:
    """The first of ``0 .. n-1`` not in ``present`` (without looping over a huge, damaged ``n``)."""
    for i in range(min(n, len(present) + 1)):
        if i not in present:
            return i
    return None


def check_episode_files(path: Path, meta: dict[str, Any]) -> None:
    """Every episode metadata.json counts has its files (an Arrow folder ``path/<i>``, or a group in the HDF5 file)."""
    n = meta["total_episodes"]
    fmt = meta.get("data_format")
    if fmt in ("arrow", "parquet"):
        try:
            folders = {int(d.name): d for d in path.iterdir() if d.name.isdigit() and d.is_dir()}
        except OSError as e:
            raise damaged(path, f"its folder cannot be listed: {e}") from e
        missing = _first_missing(n, set(folders))
        if missing is not None:
            raise damaged(path, f"metadata.json lists {n} episodes but the episode folder '{path / str(missing)}' "
                                 "is missing")
        for i in range(n):
            # The files Minari reads: all but those whose name (or a folder's) starts with one of these prefixes.
            files = [f for f in sorted(folders[i].rglob("*")) if f.is_file() and not any(
                part.startswith(("_", ".", "metadata.json")) for part in f.relative_to(folders[i]).parts)]
            if not any(f.suffix == f".{fmt}" for f in files):
                raise damaged(path, f"the episode folder '{folders[i]}' holds no .{fmt} file")
            for file in files:
                _check_arrow_file(path, file, fmt)
    elif fmt == "hdf5":
        import h5py

        file = path / "main_data.hdf5"
        declared = 0

        def add(name: str, obj: Any) -> None:
            nonlocal declared
            if isinstance(obj, h5py.Dataset):
                declared += int(obj.size) * obj.dtype.itemsize

        try:
            with h5py.File(file, "r") as f:
                groups = {int(k[len("episode_"):]) for k in f.keys()
                          if k.startswith("episode_") and k[len("episode_"):].isdigit()}
                f.visititems(add)
            size = file.stat().st_size
        except Exception as e:  # h5py: OSError for a truncated file, others for damaged internals
            raise damaged(path, f"'{file}' cannot be opened ({type(e).__name__}: {e})") from e
        missing = _first_missing(n, groups)
        if missing is not None:
            raise damaged(path, f"metadata.json lists {n} episodes but '{file}' has no group 'episode_{missing}'")
        # Minari writes HDF5 uncompressed: arrays far larger than the file mean damaged shapes, which would
        # otherwise be allocated (and could exhaust the memory) before anything else notices.
        if declared > max(1 << 30, 64 * size):
            raise damaged(path, f"'{file}' ({size} bytes) declares arrays of {declared} bytes")
    else:
        raise damaged(path, f"metadata.json names the storage format {fmt!r}; Minari writes 'arrow', 'parquet' or "
                             "'hdf5'")


def _check_arrow_file(path: Path, file: Path, fmt: str) -> None:
    """Fully validate one episode file before Minari decodes it: pyarrow trusts the lengths and offsets stored in a
    file, so damaged ones would otherwise crash the process (a C++ check failure or a segmentation fault)."""
    import pyarrow as pa

    try:
        if fmt == "arrow":
            with pa.memory_map(str(file)) as source:
                reader = pa.ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    reader.get_batch(i).validate(full=True)
        else:
            import pyarrow.parquet as pq

            pq.read_table(file).validate(full=True)
    except Exception as e:  # ArrowInvalid, OSError, ... for a truncated or overwritten file
        raise damaged(path, f"the episode file '{file}' is not valid {fmt} data: {type(e).__name__}: {e}") from e
