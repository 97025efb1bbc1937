"""A stage shipped by a user package (entry-point group ``rlft.stages``) runs inside ``rlft train`` like a built-in.

The package is the example in ``tests/stage_pkg/`` (``rlft_test_stage_pkg`` and its ``.dist-info`` with
``entry_points.txt``), copied into a temporary ``site/`` folder that goes on ``PYTHONPATH`` of a fresh ``rlft``
process -- so ``importlib.metadata`` discovers the entry point exactly as it would for a pip-installed package.
Also: a config naming a stage kind that does not exist is a clear error (exit 2, the name in the message).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlft.cli.main import main

EXAMPLE = Path(__file__).parent / "stage_pkg"
TEXT = "to be or not to be that is the question"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site folder holding the example stage package and its dist-info (the test's "installed" package)."""
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    assert (folder / "rlft_test_stage_pkg-0.1.dist-info" / "entry_points.txt").is_file()
    return folder


def _rlft(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "rlft.cli.main", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_entry_point_stage_runs_in_rlft_train(site: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"name": "plugin", "stages": ["count_words"],
                                   "count_words": {"text": TEXT, "min_length": 2}}))
    run = tmp_path / "run"
    done = _rlft(site, "train", str(cfg), "--run-dir", str(run), "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    words = [w for w in TEXT.split() if len(w) >= 2]  # the config section reached the stage
    assert json.loads((run / "stages" / "count_words" / "counts.json").read_text()) == {
        "words": len(words), "distinct": len(set(words))}
    result = json.loads((run / "results.json").read_text())["count_words"]
    assert result["kind"] == "count_words"
    assert result["headline"] == {"name": "words", "value": float(len(words)), "higher_is_better": True}
    peak = result["metrics"].pop("peak_memory_mb")  # the pipeline adds every stage's cost (`rlft compare`)
    assert result["metrics"] == {"words": len(words), "distinct": len(set(words))} and peak > 0
    assert list((run / "tb" / "count_words").glob("events.out.tfevents.*")), "ctx.metrics() wrote no TensorBoard log"
    assert yaml.safe_load((run / "config.yaml").read_text())["count_words"] == {"text": TEXT, "min_length": 2}

    listed = _rlft(site, "stages", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "count_words" in listed.stdout and "rlft_test_stage_pkg" in listed.stdout


def test_plugin_section_is_validated_like_a_builtin(site: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"stages": ["count_words"], "count_words": {"txet": TEXT}}))
    done = _rlft(site, "train", str(cfg), "--run-dir", str(tmp_path / "run"), "-q", cwd=tmp_path)
    assert done.returncode == 2 and "txet" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("stages, section", [(["count_wordz"], {}),
                                             (["words"], {"words": {"kind": "count_wordz"}})])
def test_unknown_stage_kind_exits_2_naming_it(stages: list[str], section: dict[str, object], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"stages": stages, **section}))
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "count_wordz" in err and "Unknown stage" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists(), "nothing should be written for a config that does not load"
