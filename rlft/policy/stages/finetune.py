"""The ``finetune`` stage: PPO from the behaviour-cloned policy (or scratch, or any pretrained policy).

Built on Stable-Baselines3 (sb3-contrib's MaskablePPO when the env has action masks) through :mod:`rlft.policy.ppo`,
which adds a KL penalty toward the frozen starting policy. Envs are vectorised (``n_envs``, optional subprocesses);
the agent is evaluated every ``eval_every`` steps (and once before the first update) and checkpointed every
``checkpoint_every`` steps. ``--resume`` continues from the newest checkpoint with the optimizer, RNG states and step
counters restored, and ends at the same total step count as an uninterrupted run. What differs on a two-player game
(self-play envs, the opponent pool in checkpoints, W/D/L evaluation) comes from the env hooks.

Example::

    rlft finetune --env cartpole --init runs/bc --run-dir runs/ppo --set finetune.total_timesteps=50000
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.policies import ActorCriticPolicy

from rlft.core.checkpoint import Checkpointer, load_trainer_state, save_trainer_state
from rlft.core.errors import ConfigError
from rlft.core.metrics import MetricLogger, log
from rlft.core.rundir import AtomicDir
from rlft.core.tuning import apply_tuning, merge_lora
from rlft.pipeline.artifacts import Outputs
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import Headline, StageResult
from rlft.policies.checkpoint import load_policy, save_policy
from rlft.policies.networks import PolicySpec, head_modules, layer_groups, policy_kwargs
from rlft.policy.agents import PolicyAgent, start_policy
from rlft.policy.config import FinetuneConfig
from rlft.policy.envs import make_vec_env
from rlft.policy.games.pool import read_pool
from rlft.policy.hooks import EnvHooks, Evaluator, env_hooks
from rlft.policy.ppo import RlftMaskablePPO, RlftPPO


class _EvalAndCheckpoint(BaseCallback):
    """Evaluates and checkpoints at rollout boundaries, after the previous update (so a checkpoint is resumable)."""

    def __init__(self, stage: FinetuneRunner) -> None:
        super().__init__()
        self.stage = stage

    def _on_training_start(self) -> None:
        if self.num_timesteps == 0 or self.stage.resumed_at != self.num_timesteps:
            self.stage.maybe_evaluate(force=self.num_timesteps == 0)

    def _on_rollout_start(self) -> None:
        self.stage.maybe_evaluate()
        self.stage.maybe_checkpoint()

    def _on_step(self) -> bool:
        return not self.stage.reached_target


# --------------------------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------------------------


@dataclass
class FinetuneRunner:
    """Builds the SB3 model from the starting policy, runs PPO, evaluates and checkpoints."""

    cfg: FinetuneConfig
    env_spec: str
    env_kwargs: dict[str, Any]
    seed: int
    device: str
    checkpoints: Checkpointer | None = None
    """Where checkpoints go (None: no checkpoints)."""
    tb_dir: Path | None = None
    """SB3's TensorBoard folder (None: no SB3 logs)."""
    evaluator: Evaluator | None = None
    metrics: MetricLogger | None = None
    progress: bool = False
    hooks: EnvHooks | None = None
    """What differs on this kind of env (None: chosen from ``env_spec``, see :mod:`rlft.policy.hooks`)."""
    name: str = "finetune"
    """The stage's name (in checkpoint metadata)."""
    report: Callable[[int, float], None] | None = None
    """Receives (step, headline value) after each evaluation (``ctx.report``: a hyper-parameter search prunes here)."""
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    resumed_at: int = -1
    model: Any = None
    spec: PolicySpec = field(default_factory=PolicySpec)
    masked: bool = False
    reached_target: bool = False
    last_snapshot: int = -1
    """Step of the newest self-play snapshot (-1: none yet); checkpoints keep it with the pool."""
    _last_eval: int = -1
    _last_ckpt: int = 0

    # -- setup ---------------------------------------------------------------------------------------------
    def build(self, init_policy: ActorCriticPolicy | None, spec: PolicySpec) -> None:
        """Create the vectorised env and the (Maskable)PPO model; load ``init_policy`` weights if given."""
        cfg = self.cfg
        self.spec = spec
        if self.hooks is None:
            self.hooks = env_hooks(self.env_spec, self.env_kwargs, check=False)
        venv = make_vec_env(self.env_spec, cfg.n_envs, seed=self.seed, env_kwargs=self.env_kwargs,
                            subprocess=cfg.subprocess, adapter=self.hooks.adapter(cfg, self.seed),
                            vec_env=cfg.vec_env, ray_actors=cfg.ray_actors, ray_address=cfg.ray_address)
        venv = self.hooks.vectorised(venv)  # games: network opponents' replies batched across in-process envs
        self.masked = bool(init_policy is not None and _is_maskable(init_policy)) or bool(
            venv.has_attr("action_masks"))
        algo = RlftMaskablePPO if self.masked else RlftPPO
        lr: Any = cfg.learning_rate if cfg.lr_schedule == "constant" else (lambda p: p * cfg.learning_rate)
        self.model = algo(
            "MlpPolicy", venv, learning_rate=lr, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
            n_epochs=cfg.n_epochs, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range,
            ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm, target_kl=cfg.target_kl,
            policy_kwargs=policy_kwargs(spec), seed=self.seed, device=self.device, verbose=0,
            kl_coef=cfg.kl_coef, kl_decay=cfg.kl_decay, kl_coef_final=cfg.kl_coef_final,
            kl_half_life=cfg.kl_half_life, precision=cfg.precision,
        )
        if init_policy is not None:
            try:
                self.model.policy.load_state_dict(init_policy.state_dict())
            except RuntimeError as e:
                raise ConfigError(f"The starting policy does not fit the env '{self.env_spec}': {e}") from e
        # The KL reference is the starting policy (for `scratch`, the random initialisation).
        self.model.set_reference(self.model.policy)
        counts = apply_tuning(self.model.policy, cfg.tuning, layer_groups(self.model.policy),
                              head_modules(self.model.policy))
        policy = self.model.policy
        policy.optimizer = policy.optimizer_class(
            [p for p in policy.parameters() if p.requires_grad], lr=cfg.learning_rate, **policy.optimizer_kwargs)
        self.param_counts = counts
        self.model.set_logger(configure(str(self.tb_dir), ["tensorboard"]) if self.tb_dir else configure(None, []))

    # -- evaluation / checkpoints ---------------------------------------------------------------------------
    def agent(self) -> Any:
        return PolicyAgent(self.model.policy)

    def maybe_evaluate(self, force: bool = False) -> None:
        step = int(self.model.num_timesteps)
        if self.evaluator is None or step == self._last_eval:
            return
        due = self.cfg.eval_every > 0 and (self._last_eval < 0 or step - self._last_eval >= self.cfg.eval_every)
        if not (force or due):
            return
        scalars = self.evaluator(self.agent())
        self.model.policy.set_training_mode(False)
        self._last_eval = step
        self.history.append((step, scalars))
        headline = next(iter(scalars.values()), None)
        if self.cfg.stop_at is not None and headline is not None and headline >= self.cfg.stop_at:
            self.reached_target = True
        if self.metrics is not None:
            self.metrics.log(scalars, step=step)
        log.debug("%s: step %d %s", self.name, step, scalars)
        # The evaluation before the first update is left out: it judges the starting policy, the same in every trial
        # of a search (and Optuna's median pruner keeps a trial's best value so far, so it would mask later ones).
        if self.report is not None and headline is not None and step > 0:
            self.report(step, float(headline))

    def maybe_checkpoint(self, force: bool = False) -> None:
        step = int(self.model.num_timesteps)
        if self.checkpoints is None or step == 0 or step == self._last_ckpt:
            return
        if force or step - self._last_ckpt >= self.cfg.checkpoint_every:
            self.save_checkpoint(self.checkpoints, step)
            self._last_ckpt = step

    def save_checkpoint(self, checkpoints: Checkpointer, step: int) -> None:
        """Policy + reference policy + the env hooks' state + optimizer/RNG/counters, written atomically."""
        assert self.hooks is not None, "build() first"
        with checkpoints.write(step) as tmp:
            save_policy(tmp, self.model.policy, self.spec, masked=self.masked, env=self.env_spec,
                        step=int(self.model.num_timesteps), extra={"stage": self.name})
            save_policy(tmp / "reference", self.model.ref_policy, self.spec, masked=self.masked,
                        env=self.env_spec, step=0)
            self.hooks.save_state(tmp, self)
            save_trainer_state(tmp, self.model.policy.optimizer, {
                "num_timesteps": int(self.model.num_timesteps), "n_updates": int(self.model._n_updates),
                "last_eval": self._last_eval, "history": self.history})

    def restore_checkpoint(self, folder: Path) -> None:
        """Load what :meth:`save_checkpoint` wrote into the built model."""
        assert self.hooks is not None, "build() first"
        saved, _ = load_policy(folder, device=self.device)
        self.model.policy.load_state_dict(saved.state_dict())
        ref, _ = load_policy(folder / "reference", device=self.device)
        self.model.set_reference(ref)
        state = load_trainer_state(folder)
        state.restore(self.model.policy.optimizer)
        self.model.num_timesteps = int(state.counters["num_timesteps"])
        self.model._n_updates = int(state.counters["n_updates"])
        self._last_eval = int(state.counters["last_eval"])
        self.history = [(int(s), dict(v)) for s, v in state.counters["history"]]
        self._last_ckpt = self.resumed_at = self.model.num_timesteps
        self.hooks.load_state(folder, self)

    # -- training ------------------------------------------------------------------------------------------
    def learn(self) -> None:
        remaining = self.cfg.total_timesteps - int(self.model.num_timesteps)
        assert self.hooks is not None, "build() first"
        callbacks: list[BaseCallback] = [_EvalAndCheckpoint(self), *self.hooks.callbacks(self)]
        if remaining > 0 and not self.reached_target:
            self.model.learn(remaining, callback=callbacks, reset_num_timesteps=False,
                             progress_bar=self.progress)
        self.maybe_evaluate(force=True)


def run(ctx: StageContext[FinetuneConfig]) -> StageResult:
    """Fine-tune with PPO; write ``DIR/stages/<stage>``."""
    cfg = ctx.config
    env_spec, env_kwargs = ctx.env.id, ctx.env.kwargs
    hooks = env_hooks(env_spec, env_kwargs)
    start = start_policy(cfg.start_from, ctx.artifacts, by=f"{ctx.name}.start_from", device=ctx.device,
                         trust_pickle=cfg.trust_pickle, env=env_spec)
    init_policy, spec = (None, cfg.policy) if start is None else (
        start[0], PolicySpec(**start[1]["policy"]) if start[1].get("policy") else cfg.policy)
    with ctx.metrics() as metrics:
        runner = FinetuneRunner(cfg=cfg, env_spec=env_spec, env_kwargs=env_kwargs, seed=ctx.seed, device=ctx.device,
                                checkpoints=ctx.checkpointer(), tb_dir=ctx.run.tb_dir(ctx.name),
                                evaluator=hooks.evaluator(cfg, seed=10_000 + ctx.seed, name=ctx.name), metrics=metrics,
                                progress=ctx.progress, hooks=hooks, name=ctx.name, report=ctx.report)
        runner.build(init_policy, spec)
        latest = ctx.checkpointer().newest_readable(read_checkpoint) if ctx.resume else None
        if latest is not None:
            runner.restore_checkpoint(latest)
            log.info("%s: resuming from checkpoint %s (step %d)", ctx.name, latest.name, runner.model.num_timesteps)
        runner.learn()
        runner.maybe_checkpoint(force=True)
    policy = runner.model.policy
    export = merge_lora(copy.deepcopy(policy)) if cfg.tuning.mode == "lora" else policy
    with AtomicDir(ctx.output_dir()) as tmp:
        save_policy(tmp, export, spec, masked=runner.masked, env=env_spec, step=int(runner.model.num_timesteps),
                    extra={"stage": ctx.name})
    final = runner.history[-1][1] if runner.history else {}
    log.info("%s: %d steps, %s", ctx.name, runner.model.num_timesteps,
             ", ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in final.items()))
    headline = next(iter(final.items()), None)  # the evaluator's first key: mean return, or win rate vs the first
    return StageResult(outputs=Outputs(agent=str(ctx.output_dir())),
                       metrics={"total_timesteps": int(runner.model.num_timesteps), **runner.param_counts,
                                **{k.split("/", 1)[-1]: v for k, v in final.items()}},
                       headline=Headline(headline[0].split("/", 1)[-1], headline[1]) if headline else None,
                       details={"history": runner.history})


def read_checkpoint(folder: Path) -> None:
    """Read everything :meth:`FinetuneRunner.restore_checkpoint` needs (a CheckpointError when a file is damaged)."""
    load_policy(folder)
    load_policy(folder / "reference")
    load_trainer_state(folder)
    if (folder / "pool").is_dir():
        read_pool(folder / "pool")


def _is_maskable(policy: ActorCriticPolicy) -> bool:
    return isinstance(policy, MaskableActorCriticPolicy)
