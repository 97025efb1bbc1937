"""Fuzzing the dataset reader: a damaged dataset gives valid, finite Transitions or a DatasetError -- nothing else.

A tiny real dataset (3 CartPole episodes of a random agent) is recorded once, in Minari's Arrow format as rlft writes
it and converted to Minari's HDF5 format as other tools write it. Each example copies one of them, damages it
(truncates a file at some offset, overwrites or appends some bytes, deletes a file or a folder) and reads it back with
:func:`load_transitions`.

The default run takes a few seconds; ``pytest -m slow tests/robustness`` runs the same property on many more examples.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlft.core.errors import DatasetError
from rlft.policy.datasets import Transitions, load_transitions


def hdf5_copy(arrow: Path, out: Path) -> Path:
    """The dataset ``arrow`` rewritten by Minari in its HDF5 format (what ``minari.create_dataset_*`` writes)."""
    from minari.dataset.minari_storage import MinariStorage

    src = MinariStorage.read(arrow / "data")
    (out / "data").mkdir(parents=True)
    dst = MinariStorage.new(out / "data", observation_space=src.observation_space, action_space=src.action_space,
                            data_format="hdf5")
    dst.update_from_storage(src)
    dst.update_metadata({k: v for k, v in src.metadata.items() if k in ("dataset_id", "minari_version")})
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from rlft.policy.stages.record import record

    root = tmp_path_factory.mktemp("fuzz-data")
    record("cartpole", "random", 3, root / "arrow", seed=0)
    hdf5_copy(root / "arrow", root / "hdf5")
    for path in (root / "arrow", root / "hdf5"):
        check_valid(load_transitions(path))  # undamaged, both read
    return {"arrow": root / "arrow", "hdf5": root / "hdf5"}


def check_valid(data: Transitions) -> None:
    """What imitation relies on: equal lengths, finite numbers, the spaces' shapes, actions in the action space."""
    n = len(data)
    assert n > 0
    for name in ("observations", "rewards", "episode", "terminated", "truncated"):
        assert len(getattr(data, name)) == n, name
    for values in (data.observations, data.actions, data.rewards, data.last_observations):
        assert np.isfinite(values).all()
    assert data.observations.shape[1:] == data.observation_space.shape
    assert data.last_observations.shape[1:] == data.observation_space.shape
    assert ((data.actions >= 0) & (data.actions < data.action_space.n)).all()  # type: ignore[attr-defined]


DAMAGE = ("truncate", "overwrite", "append", "delete file", "delete folder")

damages = st.tuples(
    st.sampled_from(["arrow", "hdf5"]),
    st.sampled_from(DAMAGE),
    st.integers(min_value=0, max_value=10**6),  # which file / folder (modulo how many there are)
    st.floats(min_value=0, max_value=1),  # where in the file
    st.binary(min_size=1, max_size=64),  # the bytes written
)


def damage(root: Path, kind: str, which: int, where: float, junk: bytes) -> str:
    """Damage the dataset copy ``root`` in place; returns what was done (for the failure message)."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if kind == "delete folder":
        folders = sorted(p for p in root.rglob("*") if p.is_dir())
        target = folders[which % len(folders)]
        shutil.rmtree(target)
        return f"deleted {target.relative_to(root)}"
    target = files[which % len(files)]
    raw = target.read_bytes()
    at = int(where * len(raw))
    if kind == "truncate":
        target.write_bytes(raw[:at])
    elif kind == "overwrite":
        target.write_bytes(raw[:at] + junk + raw[at + len(junk):])
    elif kind == "append":
        target.write_bytes(raw + junk)
    else:
        target.unlink()
    return f"{kind} {target.relative_to(root)} at {at}/{len(raw)} with {junk!r}"


FUZZ = settings(max_examples=500, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow])
FUZZ_LONG = settings(max_examples=4000, deadline=None, database=None, print_blob=True,
                     suppress_health_check=[HealthCheck.too_slow])


def _check(datasets: dict[str, Path], args: tuple[str, str, int, float, bytes]) -> None:
    fmt, kind, which, where, junk = args
    with tempfile.TemporaryDirectory(prefix="rlft-fuzz-") as tmp:
        copy = Path(tmp) / "ds"
        shutil.copytree(datasets[fmt], copy)
        what = damage(copy, kind, which, where, junk)
        try:
            data = load_transitions(copy)
        except DatasetError as e:
            assert str(copy) in str(e), (what, str(e))  # names the dataset
            return
        except Exception as e:  # pragma: no cover - the failure this suite exists to catch
            raise AssertionError(f"{what}: {type(e).__name__} instead of DatasetError: {e}") from e
        check_valid(data)


def _fuzz(config: Any) -> Callable[..., None]:
    @config
    @given(args=damages)
    def test(datasets: dict[str, Path], args: tuple[str, str, int, float, bytes]) -> None:
        _check(datasets, args)

    return test


test_damaged_dataset = _fuzz(FUZZ)
test_damaged_dataset_long = pytest.mark.slow(_fuzz(FUZZ_LONG))
