"""Hyper-parameter search with Optuna: a study in a database, trials that are ordinary rlft run folders.

A :class:`Tuner` holds what every worker of one study shares: the base pipeline config (with ``--set`` overrides),
the :class:`~rlft.tune.space.Space`, the study folder and the database. :meth:`Tuner.work` is one worker: it runs
trials until the study holds ``trials`` finished ones (complete or pruned), so any number of workers -- processes here,
or the same command on other machines against one PostgreSQL URL -- share the budget exactly.

* **A trial** is ``run_pipeline`` of the base config with the trial's values into ``DIR/trials/<number>``; its value is
  the run's headline (the last stage's), negated when the headline is lower-is-better, so a study always maximises.
* **Pruning**: every periodic evaluation a stage reports (``ctx.report``, e.g. finetune's ``eval_every``) is reported
  to the trial with step = its ordinal in the trial (0, 1, 2, ...), and the pruner (median by default, Hyperband
  optional) may stop the trial there.
* **Kills**: workers write a heartbeat; a RUNNING trial whose heartbeat is older than the grace period is failed and
  re-queued with the same parameters (Optuna's ``RetryHeartbeatStaleTrialCallback``), so a killed study rerun with
  the same command continues without redoing finished trials.

Example::

    tuner = Tuner.create(read_yaml("configs/cartpole.yaml"), [], load_space("configs/spaces/cartpole.yaml"),
                         "runs/tune-cartpole", trials=12)
    tuner.work()
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import socket
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlft.core.config import apply_overrides, set_dotted_key
from rlft.core.errors import ConfigError, RlftError
from rlft.core.metrics import log
from rlft.pipeline.config import PipelineConfig, pipeline_from_dict, pipeline_yaml
from rlft.pipeline.results import run_headline
from rlft.pipeline.runner import run_pipeline
from rlft.tune.space import Space

PRUNERS = ("median", "hyperband", "none")
FINISHED = ("COMPLETE", "PRUNED")
"""Trial states that count towards the budget."""
SURPLUS = "surplus"
"""User attribute of a trial that two workers created at once beyond the budget (failed at once, never run)."""


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as e:
        raise ConfigError("`rlft tune` needs Optuna: pip install 'rlft[tune]' (optuna, matplotlib, psycopg)."
                          ) from e
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def default_storage(run_dir: str | Path) -> str:
    """SQLite in the study folder: ``sqlite:///DIR/study.db``."""
    return f"sqlite:///{Path(run_dir).resolve() / 'study.db'}"


def hide_password(url: str) -> str:
    """``url`` with its password masked, for messages and files."""
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:  # not a URL SQLAlchemy can parse: keep only what follows the credentials
        return url.rsplit("@", 1)[-1]


def make_storage(url: str, heartbeat: int = 10) -> Any:
    """Optuna's RDB storage for ``url`` with a heartbeat every ``heartbeat`` s and stale trials re-queued."""
    optuna = _optuna()
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):  # several local processes write one file: wait for the lock instead of failing
        engine_kwargs["connect_args"] = {"timeout": 120}
    else:
        engine_kwargs["pool_pre_ping"] = True
    for attempt in range(5):
        try:
            with quiet_warnings():
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
        except Exception as e:  # a bad URL, a driver that is not installed, a server that does not answer
            # Workers started at once on a new database race to create its tables (PostgreSQL: "duplicate key ...
            # pg_type"): the loser tries again, and then finds them.
            if type(e).__name__ in ("IntegrityError", "OperationalError", "ProgrammingError") and attempt < 4:
                time.sleep(0.5 + random.random() * 2)
                continue
            raise ConfigError(f"Cannot open the study database '{hide_password(url)}': {type(e).__name__}: {e}. "
                              "Pass an SQLAlchemy URL such as sqlite:///study.db or postgresql://user:pw@host:5432/db "
                              "(PostgreSQL needs psycopg 3, in rlft[tune]; postgresql+psycopg2:// uses psycopg2)."
                              ) from e
    raise AssertionError("unreachable")


def make_pruner(name: str, startup_trials: int = 3, warmup_evals: int = 1) -> Any:
    """``median`` (Optuna's MedianPruner), ``hyperband`` (HyperbandPruner) or ``none``."""
    optuna = _optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_evals)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup_evals), reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"Unknown pruner '{name}': choose one of {', '.join(PRUNERS)}.")


def trial_config(base: dict[str, Any], space: Space, params: dict[str, Any], overrides: list[str] | None = None
                 ) -> PipelineConfig:
    """One trial's config, validated: the base config < the space's fixed keys < ``--set`` < the trial's ``params``."""
    data = copy.deepcopy(base)
    for key, value in space.fixed.items():
        set_dotted_key(data, key, value, space.source)
    apply_overrides(data, overrides or [])
    for key, value in params.items():
        set_dotted_key(data, key, value, space.source)
    try:
        return pipeline_from_dict(data, source="the tuned config")
    except ConfigError as e:
        raise ConfigError(f"{e} (with {space.source}: {params or space.fixed})") from e


def check_space(base: dict[str, Any], space: Space, overrides: list[str] | None = None) -> None:
    """Every searched key exists in the config and accepts the ends of its range (every option of a choice)."""
    for key in (o.split("=", 1)[0].strip() for o in overrides or []):
        if key in {p.key for p in space.params}:
            raise ConfigError(f"--set {key}=... fixes a key that {space.source} searches: drop one of the two.")
    for param in space.params:
        for value in param.extremes():
            others = {p.key: p.extremes()[0] for p in space.params if p is not param}
            try:
                trial_config(base, space, {**others, param.key: value}, overrides)
            except ConfigError as e:
                raise ConfigError(f"{space.source}: '{param.key}' = {value!r} does not make a valid config: {e}"
                                  ) from e


@dataclass
class Tuner:
    """One study: the base config, the space, the study folder and the database (see the module docstring)."""

    base: dict[str, Any]
    """The base pipeline config as plain data (the config file)."""
    overrides: list[str]
    """``--set KEY=VALUE`` overrides for every trial (they win over the space's fixed keys)."""
    space: Space
    run_dir: Path
    trials: int
    """Finished trials (complete + pruned) the study should hold."""
    storage_url: str
    study_name: str
    pruner: str = "median"
    heartbeat: int = 10
    """Seconds between a running trial's heartbeats; a trial silent for 3x this is failed and re-queued."""
    progress: bool = False
    _study: Any = field(default=None, repr=False)

    @classmethod
    def create(cls, base: dict[str, Any], overrides: list[str], space: Space, run_dir: str | Path, trials: int, *,
               storage: str | None = None, study_name: str | None = None, pruner: str = "median",
               heartbeat: int = 10, progress: bool = False) -> Tuner:
        """Check the space against the config, then create the study (or open it, refusing another space)."""
        if trials < 1:
            raise ConfigError(f"--trials {trials} is out of range: a study needs at least 1 trial.")
        if pruner not in PRUNERS:
            raise ConfigError(f"Unknown pruner '{pruner}': choose one of {', '.join(PRUNERS)}.")
        check_space(base, space, overrides)
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        tuner = cls(base=base, overrides=list(overrides), space=space, run_dir=run_dir, trials=trials,
                    storage_url=storage or default_storage(run_dir), study_name=study_name or run_dir.resolve().name,
                    pruner=pruner, heartbeat=heartbeat, progress=progress)
        tuner._open(create=True)
        return tuner

    # -- the study -----------------------------------------------------------------------------------------------
    def _open(self, create: bool = False) -> Any:
        optuna = _optuna()
        storage = make_storage(self.storage_url, self.heartbeat)
        sampler = optuna.samplers.TPESampler(constant_liar=True, n_startup_trials=min(10, max(3, self.trials // 3)))
        attrs = {"space": self.space.to_json(),
                 "config": pipeline_yaml(trial_config(self.base, self.space, {}, self.overrides))}
        with quiet_warnings():
            if create:
                study = optuna.create_study(storage=storage, study_name=self.study_name, direction="maximize",
                                            sampler=sampler, pruner=make_pruner(self.pruner), load_if_exists=True)
            else:
                study = optuna.load_study(storage=storage, study_name=self.study_name, sampler=sampler,
                                          pruner=make_pruner(self.pruner))
        saved = study.user_attrs
        if not saved:
            for key, value in attrs.items():
                study.set_user_attr(key, value)
        elif create:
            for key, what in (("space", "search space"), ("config", "base config (file + --set)")):
                if saved.get(key) != attrs[key]:
                    raise ConfigError(f"The study '{self.study_name}' in '{self.safe_url}' was started with another "
                                      f"{what}. Rerun it with the same CONFIG, --set and --space, or start a new study "
                                      "(another --run-dir or --study).")
        self._study = study
        return study

    @property
    def safe_url(self) -> str:
        """The storage URL without its password (what files and logs show)."""
        return hide_password(self.storage_url)

    @property
    def study(self) -> Any:
        return self._study if self._study is not None else self._open()

    def counts(self) -> dict[str, int]:
        """How many trials of the study are in each state (``COMPLETE``, ``PRUNED``, ``RUNNING``, ...)."""
        out: dict[str, int] = {}
        for t in self.study.get_trials(deepcopy=False):
            if not t.user_attrs.get(SURPLUS):
                out[t.state.name] = out.get(t.state.name, 0) + 1
        return out

    # -- a worker ------------------------------------------------------------------------------------------------
    def work(self, poll: float | None = None) -> int:
        """Run trials until the study holds ``trials`` finished ones; returns how many this worker ran."""
        optuna = _optuna()
        study = self.study
        ran = 0
        while True:
            with quiet_warnings():
                optuna.storages.fail_stale_trials(study)
            counts = self.counts()
            finished = sum(counts.get(s, 0) for s in FINISHED)
            if finished >= self.trials:
                return ran
            if counts.get("FAIL", 0) > max(3, self.trials):
                raise RlftError(f"{counts['FAIL']} trials of the study '{self.study_name}' failed; see the errors "
                                f"in {self.run_dir / 'tune.log'} (a config the space makes may be invalid).")
            if finished + counts.get("RUNNING", 0) >= self.trials and not counts.get("WAITING"):
                time.sleep(poll or min(self.heartbeat, 2))  # the rest of the budget runs elsewhere: wait for it
                continue
            with quiet_warnings():
                study.optimize(self._objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
            ran += 1

    def _surplus(self, number: int) -> bool:
        """True when the budget was already taken by trials numbered below ``number`` (two workers asked at once)."""
        taken = [t for t in self.study.get_trials(deepcopy=False)
                 if t.number < number and not t.user_attrs.get(SURPLUS)
                 and t.state.name in ("COMPLETE", "PRUNED", "RUNNING", "WAITING")]
        return len(taken) >= self.trials

    def _objective(self, trial: Any) -> float:
        optuna = _optuna()
        if self._surplus(trial.number):
            trial.set_user_attr(SURPLUS, True)
            raise RlftError(f"trial {trial.number} is beyond the budget of {self.trials} (another worker took it)")
        params = self.space.suggest(trial)
        cfg = trial_config(self.base, self.space, params, self.overrides)
        folder = self.run_dir / "trials" / f"{trial.number:04d}"
        trial.set_user_attr("run_dir", str(folder.resolve()))
        trial.set_user_attr("host", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("config", pipeline_yaml(cfg))
        log.info("trial %d: %s -> %s", trial.number, _fmt(params), folder)
        evals = [0]

        def on_eval(stage: str, step: int, value: float, higher_is_better: bool) -> None:
            score = value if higher_is_better else -value
            trial.report(score, evals[0])
            evals[0] += 1
            if trial.should_prune():
                raise optuna.TrialPruned(f"{stage} at step {step}: {value:.4g}")

        try:
            results = run_pipeline(cfg, folder, progress=self.progress, on_eval=on_eval)
        except optuna.TrialPruned as e:
            log.info("trial %d pruned (%s)", trial.number, e)
            raise
        except Exception as e:
            log.warning("trial %d failed: %s", trial.number, e)
            trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:2000])
            raise
        found = run_headline(results)
        if found is None:
            raise RlftError(f"The pipeline of trial {trial.number} has no stage with a headline metric to tune on.")
        stage, headline = found
        trial.set_user_attr("headline", {"stage": stage, **headline.to_json()})
        log.info("trial %d: %s %s = %.4g", trial.number, stage, headline.name, headline.value)
        return headline.value if headline.higher_is_better else -headline.value


def _fmt(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
