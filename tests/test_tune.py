"""`rlft tune`: the space file's checks, pruning, workers sharing one study exactly, a killed study continuing.

The search machinery is tested with a stage whose score is a config value (tests/plugins/tune_stage.py), so every
trial's value and the pruner's decisions are known; the real PPO stage runs in the two-worker study, whose best
config is trained again with `rlft train` to the same score.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import PLUGINS, tiny_overrides
from rlft.cli.main import main
from rlft.core.errors import ConfigError
from rlft.tune.space import load_space, parse_space

optuna = pytest.importorskip("optuna")

SCORE_STAGE = str(PLUGINS / "tune_stage.py") + ":STAGE"


def _toy_config(tmp_path: Path, sleep: float = 0.0) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump({"name": "toy", "stages": ["score"],
                                    "score": {"kind": SCORE_STAGE, "x": 0.5, "evals": 4, "sleep": sleep}}))
    return path


def _space(tmp_path: Path, entries: dict[str, Any]) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(entries))
    return path


def _trials(storage: str, name: str) -> list[Any]:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def _finished(trials: list[Any]) -> list[Any]:
    return [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]


def _tune_cmd(config: Path, space: Path, run_dir: Path, trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rlft.cli.main", "tune", str(config), "--space", str(space), "--trials",
            str(trials), "--run-dir", str(run_dir), "-q", *extra]


# ----------------------------------------------------------------------------------------------------------------
# The space file
# ----------------------------------------------------------------------------------------------------------------


def test_space_parses_every_distribution_and_fixed_values() -> None:
    space = parse_space({"finetune.learning_rate": {"log_uniform": [1.0e-5, 1.0e-3]},
                         "finetune.gae_lambda": {"uniform": [0.8, 0.99]}, "finetune.n_epochs": {"int": [3, 20]},
                         "finetune.batch_size": {"log_int": [32, 256]}, "finetune.n_steps": {"choice": [32, 64]},
                         "finetune.total_timesteps": 4000, "stages": ["finetune"],
                         "finetune.policy": {"fixed": {"arch": "mlp"}}})
    assert [(p.key, p.kind, p.values) for p in space.params] == [
        ("finetune.learning_rate", "log_uniform", (1e-5, 1e-3)), ("finetune.gae_lambda", "uniform", (0.8, 0.99)),
        ("finetune.n_epochs", "int", (3, 20)), ("finetune.batch_size", "log_int", (32, 256)),
        ("finetune.n_steps", "choice", (32, 64))]
    assert space.fixed == {"finetune.total_timesteps": 4000, "stages": ["finetune"],
                           "finetune.policy": {"arch": "mlp"}}
    from rlft.core.config import read_yaml
    from rlft.tune.study import check_space

    configs = Path(__file__).parents[1] / "configs"
    for name in ("cartpole", "tictactoe"):  # the shipped spaces fit the shipped configs at both ends of every range
        shipped = load_space(configs / "spaces" / f"{name}.yaml")
        assert {p.key for p in shipped.params} >= {"finetune.learning_rate", "finetune.n_epochs"}
        check_space(read_yaml(configs / f"{name}.yaml"), shipped)


@pytest.mark.parametrize(("entries", "message"), [
    ({"finetune.learning_rate": {"loguniform": [1.0e-5, 1.0e-3]}}, "is not a distribution"),
    ({"finetune.learning_rate": {"log_uniform": [0.0, 1.0e-3]}}, "low must be > 0"),
    ({"finetune.learning_rate": {"uniform": [0.5, 0.1]}}, "low < high"),
    ({"finetune.learning_rate": {"log_uniform": ["1e-5", 1.0e-3]}}, "YAML reads 1e-5 as a string"),
    ({"finetune.n_epochs": {"int": [1.5, 4]}}, "two integers"),
    ({"finetune.n_steps": {"choice": []}}, "needs a list"),
    ({"finetune.policy": {"choice": [{"arch": "mlp"}]}}, "plain values"),
    ({"finetune.total_timesteps": 4000}, "searches none"),
    ({"finetune..lr": {"uniform": [0, 1]}}, "not a dotted config key"),
])
def test_space_errors_name_the_key_and_the_fix(entries: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_space(entries, source="space.yaml")


def test_a_key_the_config_lacks_is_one_paragraph_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    space = _space(tmp_path, {"finetune.learnin_rate": {"log_uniform": [1.0e-5, 1.0e-3]}})
    code = main(["tune", "cartpole", "--space", str(space), "--trials", "2", "--run-dir", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "finetune.learnin_rate" in err and "Traceback" not in err
    space = _space(tmp_path, {"finetune.n_envs": {"int": [0, 4]}})  # the low end breaks the config's bounds
    assert main(["tune", "cartpole", "--space", str(space), "--trials", "2", "--run-dir", str(tmp_path / "s")]) == 2
    assert "'finetune.n_envs' = 0" in capsys.readouterr().err
    space = _space(tmp_path, {"finetune.n_envs": {"int": [1, 4]}})
    assert main(["tune", "cartpole", "--space", str(space), "--trials", "2", "--run-dir", str(tmp_path / "s"),
                 "--set", "finetune.n_envs=2"]) == 2
    assert "searches" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# Pruning, in one process
# ----------------------------------------------------------------------------------------------------------------


def test_median_pruner_stops_exactly_the_trials_below_the_median(tmp_path: Path) -> None:
    from rlft.core.config import read_yaml
    from rlft.tune.study import Tuner

    tuner = Tuner.create(read_yaml(_toy_config(tmp_path)), [], parse_space({"score.x": {"uniform": [0.0, 1.0]}}),
                         tmp_path / "study", trials=6)
    for x in (0.5, 0.6, 0.7, 0.2, 0.9, 0.1):  # three startup trials, then below / above / below their median
        tuner.study.enqueue_trial({"score.x": x})
    assert tuner.work() == 6
    trials = sorted(tuner.study.get_trials(), key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3 + ["PRUNED", "COMPLETE", "PRUNED"]
    assert [len(t.intermediate_values) for t in trials] == [4, 4, 4, 2, 4, 2]  # pruned at the 2nd evaluation
    assert [t.value for t in trials if t.state.name == "COMPLETE"] == [0.5, 0.6, 0.7, 0.9]
    assert tuner.work() == 0  # the budget is spent: another worker (or a rerun) runs nothing


# ----------------------------------------------------------------------------------------------------------------
# Two local workers on SQLite, with the real PPO stage
# ----------------------------------------------------------------------------------------------------------------


def test_two_workers_share_one_sqlite_study_and_best_yaml_reproduces(tmp_path: Path) -> None:
    space = _space(tmp_path, {"stages": ["finetune", "eval"], "finetune.start_from": "scratch",
                              "finetune.learning_rate": {"log_uniform": [1.0e-4, 3.0e-3]},
                              "finetune.n_epochs": {"int": [1, 3]}})
    sets = [x for o in tiny_overrides(**{"finetune.total_timesteps": 768})
            if not o.startswith(("record", "imitate", "finetune.n_epochs")) for x in ("--set", o)]
    run_dir = tmp_path / "study"
    subprocess.run(_tune_cmd(Path("configs/cartpole.yaml"), space, run_dir, 6, "--workers", "2", *sets),
                   check=True, cwd=Path(__file__).parents[1], timeout=600)
    trials = _trials(f"sqlite:///{run_dir / 'study.db'}", "study")
    finished = _finished(trials)
    assert len(finished) == 6 and len(trials) == 6  # exactly the budget, nothing beyond it
    assert sorted(t.number for t in trials) == list(range(6))
    assert len({t.user_attrs["host"] for t in finished}) == 2  # both worker processes ran trials
    assert all(t.intermediate_values for t in finished)  # finetune's periodic evaluations reached the pruner
    assert sorted(p.name for p in (run_dir / "trials").iterdir()) == [f"{n:04d}" for n in range(6)]
    for name in ("best.yaml", "trials.md", "history.png", "importances.png"):
        assert (run_dir / name).stat().st_size > 0, name
    best = max((t for t in finished if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert main(["train", str(run_dir / "best.yaml"), "--run-dir", str(tmp_path / "again"), "-q"]) == 0
    from rlft.pipeline.compare import summarize_run

    assert summarize_run(tmp_path / "again")["value"] == best.user_attrs["headline"]["value"] == best.value


# ----------------------------------------------------------------------------------------------------------------
# SIGKILL mid-study, then the same command
# ----------------------------------------------------------------------------------------------------------------


def test_a_killed_study_continues_without_redoing_finished_trials(tmp_path: Path) -> None:
    config = _toy_config(tmp_path, sleep=0.4)  # a trial runs ~1.6 s: the kill lands inside one
    space = _space(tmp_path, {"score.x": {"uniform": [0.0, 1.0]}})
    run_dir = tmp_path / "study"
    storage = f"sqlite:///{run_dir / 'study.db'}"
    cmd = _tune_cmd(config, space, run_dir, 6, "--heartbeat", "1", "--pruner", "none")
    proc = subprocess.Popen(cmd, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.3)
        if (run_dir / "study.db").exists():
            try:
                trials = _trials(storage, "study")
            except Exception:  # the study is still being created
                continue
            states = [t.state.name for t in trials]
            if states.count("COMPLETE") >= 2 and any(t.state.name == "RUNNING" and t.params for t in trials):
                break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {t.number: t for t in _trials(storage, "study")}
    done_before = {n: t.datetime_complete for n, t in before.items() if t.state.name == "COMPLETE"}
    killed = [n for n, t in before.items() if t.state.name == "RUNNING"]
    assert len(done_before) >= 2 and killed, "the study was not killed mid-trial"
    assert len(done_before) < 6

    subprocess.run(cmd, check=True, timeout=300)
    after = {t.number: t for t in _trials(storage, "study")}
    assert len(_finished(list(after.values()))) == 6
    assert {n: after[n].datetime_complete for n in done_before} == done_before  # finished trials kept, not rerun
    for n in killed:  # the killed trial failed (stale heartbeat) and its parameters were queued again
        assert after[n].state.name == "FAIL"
        retry = [t for t in after.values() if t.system_attrs.get("failed_trial") == n]
        assert len(retry) == 1 and retry[0].params == before[n].params and retry[0].state.name == "COMPLETE"
    assert (run_dir / "best.yaml").is_file()


# ----------------------------------------------------------------------------------------------------------------
# Two workers on a real PostgreSQL server
# ----------------------------------------------------------------------------------------------------------------


def _pg_bin() -> Path | None:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


@pytest.fixture
def postgres(tmp_path: Path) -> Any:
    """A throw-away PostgreSQL server on a free port (as the `postgres` user when the tests run as root)."""
    pytest.importorskip("psycopg", reason="psycopg (rlft[tune]: the driver of postgresql:// URLs) is not installed")
    import shutil
    import socket

    folder = _pg_bin()
    if folder is None:
        pytest.skip("no PostgreSQL server here (Debian: apt-get install postgresql)")
    prefix: list[str] = []
    data = tmp_path / "pg"
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without `runuser`: cannot start PostgreSQL as another user")
        prefix = ["runuser", "-u", "postgres", "--"]
        data = Path("/tmp") / f"rlft-pg-{os.getpid()}-{tmp_path.name}"
        data.mkdir(mode=0o700)
        shutil.chown(data, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        subprocess.run([*prefix, str(folder / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*prefix, str(folder / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(data / "log"),
                        "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as e:
        shutil.rmtree(data, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start here: {e}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(folder / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow  # starts a database server and three processes: ~40 s here
def test_two_workers_share_one_postgresql_study(tmp_path: Path, postgres: str) -> None:
    config = _toy_config(tmp_path, sleep=0.2)
    space = _space(tmp_path, {"score.x": {"uniform": [0.0, 1.0]}})
    cmd = _tune_cmd(config, space, tmp_path / "study", 8, "--storage", postgres, "--study", "pg-study")
    workers = [subprocess.Popen([*cmd, "--worker"]) for _ in range(2)]  # as if started on two machines
    assert [w.wait(timeout=300) for w in workers] == [0, 0]
    trials = _trials(postgres, "pg-study")
    finished = _finished(trials)
    assert len(finished) == 8
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))  # no collision
    assert len({t.user_attrs["host"] for t in finished}) == 2
    assert all(t.state.name in ("COMPLETE", "PRUNED") or t.user_attrs.get("surplus") for t in trials)
