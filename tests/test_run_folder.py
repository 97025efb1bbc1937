"""Run folders that cannot get stuck: config.yaml is written first, a folder with no work in it can be reused, a
run killed before run.json existed resumes, one process at a time (an OS lock), and killed writes' temporaries are
swept on the next start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlft.cli.main import main
from rlft.core.errors import RunDirError
from rlft.core.rundir import RunDir

TINY = {"stages": ["record"], "env": {"id": "cartpole"}, "record": {"agent": "expert", "episodes": 1}}


def _config(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_is_written_before_progress_and_a_run_killed_in_between_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunDir.create(run, config=yaml.safe_dump(TINY))
    assert (run / "config.yaml").is_file() and (run / "run.json").is_file()
    (run / "run.json").unlink()  # as if killed right after config.yaml
    assert main(["train", "--run-dir", str(run), "--resume", "-q"]) == 0
    assert (run / "data" / "record" / "data" / "metadata.json").is_file()


def test_a_run_that_failed_on_bad_input_at_start_can_be_rerun_into_its_folder(tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert main(["finetune", "--env", "no_such_env", "--run-dir", str(run), "-q"]) == 2
    assert "Unknown env 'no_such_env'" in capsys.readouterr().err and (run / "config.yaml").is_file()
    assert main(["train", str(_config(tmp_path, TINY)), "--run-dir", str(run), "-q"]) == 0  # reused: nothing lost


def test_a_folder_with_work_is_never_reused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert main(["train", str(_config(tmp_path, TINY)), "--run-dir", str(run), "-q"]) == 0
    before = (run / "run.json").read_text()
    assert main(["train", str(_config(tmp_path, TINY)), "--run-dir", str(run), "-q"]) == 2
    assert "already holds a run" in capsys.readouterr().err and (run / "run.json").read_text() == before
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("not rlft's")
    with pytest.raises(RunDirError, match="already holds a run"):
        RunDir.create(stranger)
    assert (stranger / "notes.txt").read_text() == "not rlft's"


def test_resume_without_a_config_says_to_start_a_new_run(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="config.yaml is missing"):
        RunDir.create(tmp_path / "empty", resume=True)


def test_temporaries_of_killed_writes_are_swept_on_the_next_start(tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunDir.create(run, config=yaml.safe_dump(TINY))
    leftovers = [run / ".final.tmp-123", run / "checkpoints" / "imitate" / ".000000005.tmp-77",
                 run / "stages" / ".imitate.old-9"]
    for d in leftovers:
        d.mkdir(parents=True)
    (run / ".run.json.tmp").write_text("{")
    RunDir.create(run, resume=True)
    assert not any(p.exists() for p in [*leftovers, run / ".run.json.tmp"])
    assert (run / "checkpoints" / "imitate").is_dir()  # only the temporaries go


def _hold(run: Path) -> subprocess.Popen[str]:
    code = ("import sys, time; from rlft.core.rundir import RunDir; "
            f"RunDir.create({str(run)!r}, resume={(run / 'config.yaml').exists()}); print('locked', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_on_the_same_folder_is_refused_until_the_first_dies(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()  # written by hand: this test process must not hold the folder's lock itself
    (run / "config.yaml").write_text(yaml.safe_dump(TINY))
    holder = _hold(run)
    try:
        code = f"from rlft.core.rundir import RunDir; RunDir.create({str(run)!r}, resume=True)"
        refused = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert refused.returncode != 0 and "in use by another rlft process" in refused.stderr
    finally:
        holder.kill()
        holder.wait()
    subprocess.run([sys.executable, "-c", code], check=True)  # the kernel released the lock of the killed process


@pytest.mark.slow
def test_two_processes_started_together_exactly_one_proceeds(tmp_path: Path) -> None:
    code = ("import sys; from rlft.core.rundir import RunDir; from rlft.core.errors import RunDirError\n"
            "try:\n    RunDir.create(sys.argv[1], config='stages: [record]\\n')\nexcept RunDirError:\n    sys.exit(3)\n"
            "import time; time.sleep(0.5)")
    for trial in range(100):
        run = tmp_path / f"run{trial}"
        procs = [subprocess.Popen([sys.executable, "-c", code, str(run)]) for _ in range(2)]
        codes = sorted(p.wait() for p in procs)
        assert codes == [0, 3], (trial, codes)


def test_ctrl_c_before_anything_is_saved_suggests_a_command_that_works(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import rlft.cli.pipeline as cli

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", interrupted)
    assert main(["train", str(_config(tmp_path, TINY)), "--run-dir", str(tmp_path / "run"), "-q"]) == 130
    assert "run the same command again" in capsys.readouterr().err


def test_resume_sets_a_damaged_newest_checkpoint_aside_and_uses_the_one_before(
        tmp_path: Path, expert_dataset: Path, caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging
    import shutil

    from rlft.pipeline.config import pipeline_from_dict
    from rlft.pipeline.runner import run_pipeline

    cfg = pipeline_from_dict({"stages": ["imitate"], "keep_checkpoints": 0, "imitate": {
        "dataset": str(expert_dataset), "epochs": 4, "critic_warmup_epochs": 0, "checkpoint_every": 1}})
    run = tmp_path / "run"
    run_pipeline(cfg, run)
    # Back to "killed after epoch 3": the epoch-4 checkpoint and the stage's outputs gone, epoch 3's file damaged.
    shutil.rmtree(run / "checkpoints" / "imitate" / "000000004")
    for d in ("final", "stages"):
        shutil.rmtree(run / d)
    progress = json.loads((run / "run.json").read_text())
    progress["stages"] = {}
    (run / "run.json").write_text(json.dumps(progress))
    weights = run / "checkpoints" / "imitate" / "000000003" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with caplog.at_level(logging.INFO, logger="rlft"):
        run_pipeline(cfg, run, resume=True)
    assert (run / "checkpoints" / "imitate" / ".000000003.damaged").is_dir()
    assert "is damaged" in caplog.text and "resuming from checkpoint 000000002" in caplog.text
    assert (run / "final" / "model.safetensors").is_file()


def test_resume_with_its_config_file_accepts_fields_added_since(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A run's saved config.yaml without a field that a later rlft added (its default) still matches the config file
    it was started from; a config that really differs is refused (exit 2) and the run is untouched."""
    run, cfg = tmp_path / "run", _config(tmp_path, TINY)
    assert main(["train", str(cfg), "--run-dir", str(run), "-q"]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["record"]["deterministic"]  # as written by an rlft without that field
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert main(["train", str(cfg), "--run-dir", str(run), "--resume", "-q"]) == 0
    other = _config(tmp_path, {**TINY, "record": {"agent": "expert", "episodes": 2}})
    assert main(["train", str(other), "--run-dir", str(run), "--resume", "-q"]) == 2
    assert "differs from the one the run" in capsys.readouterr().err
