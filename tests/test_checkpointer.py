"""The one checkpointer and the trainer state, unit by unit: what `--resume` can rely on.

Folder names, ordering, atomic writes, pruning, adoption of folders another library wrote, damaged checkpoints set
aside, and trainer state (optimizer, RNG streams, counters, extra tensors) that restores to the exact same values.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rlft.core.checkpoint import (
    Checkpointer,
    _flatten_optimizer,
    _unflatten_optimizer,
    load_trainer_state,
    save_trainer_state,
)
from rlft.core.errors import CheckpointError


def _write(ckpt: Checkpointer, step: int, text: str = "") -> Path:
    with ckpt.write(step) as folder:
        (folder / "weights.txt").write_text(text or str(step))
    return ckpt.path(step)


def test_folders_are_zero_padded_and_ordered_by_step(tmp_path: Path) -> None:
    ckpt = Checkpointer(tmp_path / "stage", keep=0)
    assert ckpt.path(42) == tmp_path / "stage" / "000000042"
    assert ckpt.all() == [] and ckpt.latest() is None  # no folder yet
    for step in (9, 100, 10):
        _write(ckpt, step)
    assert [ckpt.step_of(p) for p in ckpt.all()] == [9, 10, 100]
    assert ckpt.latest() == ckpt.path(100)
    assert (ckpt.latest() / "weights.txt").read_text() == "100"


def test_only_complete_checkpoints_count(tmp_path: Path) -> None:
    ckpt = Checkpointer(tmp_path, keep=0)
    _write(ckpt, 1)
    with pytest.raises(RuntimeError), ckpt.write(2) as folder:  # a write that fails half-way
        (folder / "weights.txt").write_text("half")
        raise RuntimeError("killed")
    (tmp_path / ".000000003.tmp").mkdir()  # what a killed process leaves
    (tmp_path / "notes").mkdir()
    (tmp_path / "000000004").write_text("a file, not a folder")
    assert ckpt.all() == [ckpt.path(1)]
    assert ckpt.latest() == ckpt.path(1)


@pytest.mark.parametrize("keep, left", [(1, [5]), (2, [4, 5]), (0, [1, 2, 3, 4, 5]), (None, [4, 5])])
def test_write_keeps_the_newest(tmp_path: Path, keep: int | None, left: list[int]) -> None:
    ckpt = Checkpointer(tmp_path) if keep is None else Checkpointer(tmp_path, keep=keep)  # None: the default, 2
    for step in range(1, 6):
        _write(ckpt, step)
    assert [ckpt.step_of(p) for p in ckpt.all()] == left


def test_rewriting_a_step_replaces_it(tmp_path: Path) -> None:
    ckpt = Checkpointer(tmp_path, keep=0)
    _write(ckpt, 3, "old")
    _write(ckpt, 3, "new")
    assert ckpt.all() == [ckpt.path(3)]
    assert (ckpt.path(3) / "weights.txt").read_text() == "new"


def test_adopt_moves_a_finished_folder_into_place(tmp_path: Path) -> None:
    ckpt = Checkpointer(tmp_path / "ckpts", keep=2)
    _write(ckpt, 1)
    _write(ckpt, 2, "stale")
    hf = tmp_path / "staging" / "checkpoint-2"
    hf.mkdir(parents=True)
    (hf / "weights.txt").write_text("from trainer")
    target = ckpt.adopt(hf, 2)
    assert target == ckpt.path(2) and not hf.exists()
    assert (target / "weights.txt").read_text() == "from trainer"  # replaced, not merged
    other = tmp_path / "staging" / "checkpoint-7"
    other.mkdir()
    ckpt.adopt(other, 7)
    assert [ckpt.step_of(p) for p in ckpt.all()] == [2, 7]  # adopting prunes too
    fresh = Checkpointer(tmp_path / "new" / "nested" / "stage")  # adopting into a stage that has no folder yet
    third = tmp_path / "staging" / "checkpoint-1"
    third.mkdir()
    assert fresh.adopt(third, 1) == fresh.path(1) and fresh.path(1).is_dir()


def test_a_damaged_newest_checkpoint_is_set_aside(tmp_path: Path) -> None:
    ckpt = Checkpointer(tmp_path, keep=0)
    for step in (1, 2, 3):
        _write(ckpt, step)
    (ckpt.path(3) / "weights.txt").write_text("garbage")
    (tmp_path / ".000000003.damaged").mkdir()  # an older set-aside copy (with files in it) is replaced
    (tmp_path / ".000000003.damaged" / "older.txt").write_text("set aside by an earlier run")

    def read(folder: Path) -> None:
        if (folder / "weights.txt").read_text() != str(int(folder.name)):
            raise CheckpointError(f"{folder} is corrupt")

    assert ckpt.newest_readable(read) == ckpt.path(2)
    assert ckpt.all() == [ckpt.path(1), ckpt.path(2)]
    assert sorted(f.name for f in (tmp_path / ".000000003.damaged").iterdir()) == ["weights.txt"]
    assert (tmp_path / ".000000003.damaged" / "weights.txt").read_text() == "garbage"
    assert ckpt.newest_readable(read) == ckpt.path(2)  # stable: nothing else is touched

    def broken(folder: Path) -> None:
        raise CheckpointError("unreadable")

    assert ckpt.newest_readable(broken) is None
    assert ckpt.all() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".000000001.damaged", ".000000002.damaged",
                                                          ".000000003.damaged"]


def test_other_errors_while_reading_are_not_swallowed(tmp_path: Path) -> None:
    ckpt = Checkpointer(tmp_path, keep=0)
    _write(ckpt, 1)

    def bug(folder: Path) -> None:
        raise KeyError("a bug in the reader, not a damaged file")

    with pytest.raises(KeyError):
        ckpt.newest_readable(bug)
    assert ckpt.all() == [ckpt.path(1)]  # not set aside


def _trained_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.9))
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(4, 3)).pow(2).sum().backward()
        optimizer.step()
    return model, optimizer


def test_trainer_state_round_trip_restores_optimizer_rng_counters_and_extras(tmp_path: Path) -> None:
    model, optimizer = _trained_optimizer()
    torch.manual_seed(11)
    np.random.seed(12)
    random.seed(13)
    save_trainer_state(tmp_path, optimizer, {"step": 3, "epoch": 1}, extra_tensors={"ema": torch.arange(4.0)})
    expected_draws = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn(2))

    fresh = torch.optim.Adam(model.parameters(), lr=0.5)
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    state = load_trainer_state(tmp_path)
    assert state.counters == {"step": 3, "epoch": 1}
    assert torch.equal(state.extra("ema"), torch.arange(4.0)) and state.extra("missing") is None
    state.restore(fresh)
    draws = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn(2))
    assert torch.equal(draws[0], expected_draws[0])
    assert np.array_equal(draws[1], expected_draws[1]) and np.array_equal(draws[3], expected_draws[3])
    assert draws[2] == expected_draws[2]
    saved, loaded = optimizer.state_dict(), fresh.state_dict()
    (group,) = loaded["param_groups"]  # lr 0.01 and the betas came back, not lr 0.5 (JSON turns tuples into lists)
    assert group == {**saved["param_groups"][0], "betas": [0.8, 0.9]}
    assert saved["state"].keys() == loaded["state"].keys() == {0, 1}
    for idx, pstate in saved["state"].items():
        assert pstate.keys() == loaded["state"][idx].keys()
        for name, value in pstate.items():
            assert torch.equal(torch.as_tensor(loaded["state"][idx][name]), torch.as_tensor(value)), (idx, name)


def test_numpy_gaussian_cache_survives(tmp_path: Path) -> None:
    """NumPy's legacy RNG caches the second value of a Gaussian pair; the saved state keeps that cache."""
    np.random.seed(5)
    np.random.randn(1)  # leaves a cached Gaussian
    save_trainer_state(tmp_path, None, {})
    expected = np.random.randn(3)
    np.random.seed(0)
    load_trainer_state(tmp_path).restore(None)
    assert np.array_equal(np.random.randn(3), expected)


def test_trainer_state_without_optimizer(tmp_path: Path) -> None:
    _, optimizer = _trained_optimizer()
    save_trainer_state(tmp_path, None, {"step": 1})
    state = load_trainer_state(tmp_path)
    assert state.meta["optimizer"] is None
    before = optimizer.state_dict()
    state.restore(optimizer)  # nothing saved for it: left alone
    assert optimizer.state_dict()["param_groups"] == before["param_groups"]


def test_optimizer_flattening_keeps_tensors_and_scalars_apart() -> None:
    # A state name may itself hold dots (optimizers outside torch name their buffers freely).
    state = {"state": {0: {"step": 4, "exp_avg": torch.ones(2)}, 3: {"momentum.buffer.v2": torch.zeros(1, 2)}},
             "param_groups": [{"lr": 0.1, "params": [0, 3]}]}
    tensors, meta = _flatten_optimizer(state)
    assert set(tensors) == {"optim.0.exp_avg", "optim.3.momentum.buffer.v2"}
    assert meta["scalars"] == {"optim.0.step": 4} and meta["param_groups"] == state["param_groups"]
    back = _unflatten_optimizer({**tensors, "rng.torch": torch.zeros(1)}, meta)  # other tensors are ignored
    assert back["param_groups"] == state["param_groups"]
    assert back["state"].keys() == {0, 3} and back["state"][0]["step"] == 4
    assert torch.equal(back["state"][0]["exp_avg"], torch.ones(2))
    assert torch.equal(back["state"][3]["momentum.buffer.v2"], torch.zeros(1, 2))


def test_damaged_trainer_state_is_a_checkpoint_error(tmp_path: Path) -> None:
    save_trainer_state(tmp_path, None, {"step": 1})
    (tmp_path / "trainer_state.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match=r"\btrainer state\b"):  # the message names what is damaged
        load_trainer_state(tmp_path)
    save_trainer_state(tmp_path, None, {"step": 1})
    (tmp_path / "trainer_state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"\btrainer state\b"):
        load_trainer_state(tmp_path)
