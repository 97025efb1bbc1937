"""The ``finetune`` stage: PPO from the behaviour-cloned policy (or scratch, or any pretrained policy).

Built on Stable-Baselines3 (sb3-contrib's MaskablePPO when the env has action masks) through :mod:`rlft.ppo`, which
adds a KL penalty toward the frozen starting policy. Envs are vectorised (``n_envs``, optional subprocesses); the
agent is evaluated every ``eval_every`` steps (and once before the first update) and checkpointed every
``checkpoint_every`` steps. ``--resume`` continues from the newest checkpoint with the optimizer, RNG states and step
counters restored, and ends at the same total step count as an uninterrupted run.

Example::

    rlft finetune --env cartpole --init runs/bc --run-dir runs/ppo --set finetune.total_timesteps=50000
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.policies import ActorCriticPolicy

from rlft.core.checkpoint import load_trainer_state, save_trainer_state
from rlft.core.config import param
from rlft.core.errors import ConfigError
from rlft.core.metrics import MetricLogger, log
from rlft.core.rundir import AtomicDir, RunDir
from rlft.core.tuning import TuningConfig, apply_tuning
from rlft.policies.networks import PolicySpec, head_modules, layer_groups, policy_kwargs
from rlft.policy.config import SelfPlayConfig

if TYPE_CHECKING:
    from rlft.pipeline.runner import StageContext


@dataclass
class FinetuneConfig:
    """Settings of the ``finetune`` stage (PPO hyper-parameters follow SB3's names)."""

    init: str = "imitate"
    """Start from: `imitate` (the imitate stage's policy), `scratch`, or a run / checkpoint / SB3 .zip path."""
    policy: PolicySpec = field(default_factory=PolicySpec)
    """Network used when `init` is `scratch`."""
    total_timesteps: int = param(20_000, ge=1)
    """Env steps of fine-tuning (summed over the vectorised envs)."""
    n_envs: int = param(8, ge=1)
    """Parallel env copies."""
    subprocess: bool = False
    """Run the env copies in subprocesses (SubprocVecEnv) instead of in-process."""
    n_steps: int = param(32, ge=1)
    """Steps per env per rollout."""
    batch_size: int = param(256, ge=1)
    """Minibatch size of the PPO update."""
    n_epochs: int = param(10, ge=1)
    """Passes over each rollout."""
    learning_rate: float = param(3e-4, gt=0)
    """Adam learning rate."""
    lr_schedule: Literal["constant", "linear"] = "linear"
    """Learning-rate schedule over training (`linear` decays to 0)."""
    gamma: float = param(0.99, gt=0, le=1)
    """Discount factor."""
    gae_lambda: float = param(0.95, ge=0, le=1)
    """GAE lambda."""
    clip_range: float = param(0.2, gt=0)
    """PPO clipping range."""
    ent_coef: float = param(0.0, ge=0)
    """Entropy bonus coefficient."""
    vf_coef: float = param(0.5, ge=0)
    """Value loss coefficient."""
    max_grad_norm: float = param(0.5, gt=0)
    """Gradient clipping norm."""
    target_kl: float | None = None
    """Stop an update early when the approximate KL to the rollout policy exceeds 1.5x this (None: never)."""
    kl_coef: float = param(0.1, ge=0)
    """Coefficient of KL(policy || starting policy) in the loss; 0 disables the penalty."""
    kl_decay: Literal["constant", "linear", "exponential"] = "linear"
    """How the KL coefficient changes over training."""
    kl_coef_final: float = param(0.0, ge=0)
    """`linear` decay: the coefficient at the end of training."""
    kl_half_life: float = param(0.25, gt=0)
    """`exponential` decay: fraction of training after which the coefficient halves."""
    tuning: TuningConfig = field(default_factory=TuningConfig)
    """Which parameters train: full / freeze / lora."""
    eval_every: int = param(5_000, ge=0)
    """Evaluate every N env steps (0: only before and after training)."""
    eval_episodes: int = param(10, ge=1)
    """Episodes per evaluation."""
    checkpoint_every: int = param(10_000, ge=1)
    """Write a resumable checkpoint every N env steps."""
    stop_at: float | None = None
    """Stop early once the headline eval metric (the first `eval/...` key) reaches this value (None: never)."""
    trust_pickle: bool = False
    """Allow a full SB3 .zip load for `init` (unpickles: can execute code from the file)."""
    self_play: SelfPlayConfig = field(default_factory=SelfPlayConfig)
    """Two-player games: fixed opponents, snapshot pool and evaluation opponents (see rlft.games)."""


# --------------------------------------------------------------------------------------------------------------
# Evaluation and checkpoint callback
# --------------------------------------------------------------------------------------------------------------

Evaluator = Callable[[Any], dict[str, float]]
"""Takes an agent, returns ``eval/...`` scalars (one headline key first)."""


def gym_evaluator(env_spec: str, env_kwargs: dict[str, Any], episodes: int, seed: int) -> Evaluator:
    """Mean/std return over ``episodes`` fixed-seed episodes of a Gymnasium env, deterministic actions."""
    from rlft.core.envs import resolve_env
    from rlft.policy.envs import make_gym_env
    from rlft.policy.evaluate import evaluate_gym

    env = make_gym_env(resolve_env(env_spec), env_kwargs)

    def evaluate(agent: Any) -> dict[str, float]:
        result = evaluate_gym(agent, env, episodes, seed=seed, deterministic=True)
        return {"eval/mean_return": result.mean, "eval/std_return": result.std}

    return evaluate


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
    run: RunDir | None
    env_spec: str
    env_kwargs: dict[str, Any]
    seed: int
    device: str
    evaluator: Evaluator | None = None
    metrics: MetricLogger | None = None
    progress: bool = False
    adapter_kwargs: dict[str, Any] = field(default_factory=dict)
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
        from rlft.policy.envs import make_vec_env
        from rlft.policy.ppo import RlftMaskablePPO, RlftPPO

        cfg = self.cfg
        self.spec = spec
        venv = make_vec_env(self.env_spec, cfg.n_envs, seed=self.seed, env_kwargs=self.env_kwargs,
                            subprocess=cfg.subprocess, adapter_kwargs=self.adapter_kwargs)
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
            kl_half_life=cfg.kl_half_life,
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
        if self.run is not None:
            self.model.set_logger(configure(str(self.run.tb_dir("finetune")), ["tensorboard"]))
        else:
            self.model.set_logger(configure(None, []))

    # -- evaluation / checkpoints ---------------------------------------------------------------------------
    def agent(self) -> Any:
        from rlft.policy.agents import PolicyAgent

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
        log.debug("finetune: step %d %s", step, scalars)

    def maybe_checkpoint(self, force: bool = False) -> None:
        step = int(self.model.num_timesteps)
        if self.run is None or step == 0 or step == self._last_ckpt:
            return
        if force or step - self._last_ckpt >= self.cfg.checkpoint_every:
            self.save_checkpoint(self.run.checkpoint_dir("finetune", step))
            self._last_ckpt = step

    def save_checkpoint(self, folder: Path) -> None:
        """Policy + reference policy + optimizer/RNG/counters, written atomically."""
        from rlft.policies.checkpoint import save_policy

        with AtomicDir(folder) as tmp:
            save_policy(tmp, self.model.policy, self.spec, masked=self.masked, env=self.env_spec,
                        step=int(self.model.num_timesteps), extra={"stage": "finetune"})
            save_policy(tmp / "reference", self.model.ref_policy, self.spec, masked=self.masked,
                        env=self.env_spec, step=0)
            if "self_play" in self.adapter_kwargs:
                from rlft.policy.games.pool import save_pool

                save_pool(tmp / "pool", self.model.get_env(), self.last_snapshot)
            save_trainer_state(tmp, self.model.policy.optimizer, {
                "num_timesteps": int(self.model.num_timesteps), "n_updates": int(self.model._n_updates),
                "last_eval": self._last_eval, "history": self.history})

    def restore_checkpoint(self, folder: Path) -> None:
        """Load what :meth:`save_checkpoint` wrote into the built model."""
        from rlft.policies.checkpoint import load_policy

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
        if "self_play" in self.adapter_kwargs and (folder / "pool").is_dir():
            from rlft.policy.games.pool import load_pool

            self.last_snapshot = load_pool(folder / "pool", self.model.get_env())

    # -- training ------------------------------------------------------------------------------------------
    def learn(self) -> None:
        remaining = self.cfg.total_timesteps - int(self.model.num_timesteps)
        callbacks: list[BaseCallback] = [_EvalAndCheckpoint(self)]
        if "self_play" in self.adapter_kwargs:  # two-player games: feed snapshots of the learner to the envs
            from rlft.policy.games.pool import SnapshotCallback

            callbacks.append(SnapshotCallback(self, self.cfg.self_play))
        if remaining > 0 and not self.reached_target:
            self.model.learn(remaining, callback=callbacks, reset_num_timesteps=False,
                             progress_bar=self.progress)
        self.maybe_evaluate(force=True)


def _is_maskable(policy: ActorCriticPolicy) -> bool:
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

    return isinstance(policy, MaskableActorCriticPolicy)


def load_start_policy(init: str, outputs: dict[str, Any], spec: PolicySpec, device: str, trust_pickle: bool,
                      env_spec: str) -> tuple[ActorCriticPolicy | None, PolicySpec]:
    """Resolve ``finetune.init`` to a policy (None for scratch) and its network spec."""
    from rlft.core.agent import load_agent
    from rlft.policy.agents import PolicyAgent

    if init == "scratch":
        return None, spec
    path = outputs.get("agents", {}).get("imitate") if init == "imitate" else init
    if init == "imitate" and not path:
        raise ConfigError("finetune.init is 'imitate' but no imitate stage ran before finetune. Add `imitate` to "
                          "stages, or set finetune.init to `scratch` or to a checkpoint path.")
    agent = load_agent(path, device=device, trust_pickle=trust_pickle, env=env_spec)
    if not isinstance(agent, PolicyAgent):
        raise ConfigError(f"finetune.init '{init}' is not a policy checkpoint that PPO can fine-tune.")
    saved = agent.meta.get("policy")
    return agent.policy, PolicySpec(**saved) if saved else spec


def run(ctx: StageContext) -> dict[str, Any]:
    """Fine-tune with PPO; write ``DIR/stages/finetune``."""
    from rlft.core.tuning import merge_lora
    from rlft.policies.checkpoint import save_policy

    cfg = ctx.cfg.finetune
    env_spec, env_kwargs = ctx.cfg.env.id, ctx.cfg.env.kwargs
    from rlft.core.envs import check_env, resolve_env

    plugin = resolve_env(env_spec)
    if not plugin.builtin:
        check_env(plugin, env_kwargs)
    init_policy, spec = load_start_policy(cfg.init, ctx.outputs, cfg.policy, ctx.device, cfg.trust_pickle, env_spec)
    evaluator, adapter_kwargs = make_evaluator(ctx)
    with MetricLogger(ctx.run.tb_dir("finetune")) as metrics:
        runner = FinetuneRunner(cfg=cfg, run=ctx.run, env_spec=env_spec, env_kwargs=env_kwargs, seed=ctx.seed,
                                device=ctx.device, evaluator=evaluator, metrics=metrics, progress=ctx.progress,
                                adapter_kwargs=adapter_kwargs)
        runner.build(init_policy, spec)
        latest = ctx.run.latest_checkpoint("finetune") if ctx.resume else None
        if latest is not None:
            runner.restore_checkpoint(latest)
            log.info("finetune: resuming from %s (step %d)", latest.name, runner.model.num_timesteps)
        runner.learn()
        runner.maybe_checkpoint(force=True)
    out = ctx.run.stage_dir("finetune")
    policy = runner.model.policy
    export = merge_lora(copy.deepcopy(policy)) if cfg.tuning.mode == "lora" else policy
    with AtomicDir(out) as tmp:
        save_policy(tmp, export, spec, masked=runner.masked, env=env_spec, step=int(runner.model.num_timesteps),
                    extra={"stage": "finetune"})
    final = runner.history[-1][1] if runner.history else {}
    log.info("finetune: %d steps, %s", runner.model.num_timesteps,
             ", ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in final.items()))
    return {"outputs": {"agent": str(out)},
            "metrics": {"total_timesteps": int(runner.model.num_timesteps), **runner.param_counts,
                        **{k.split("/", 1)[-1]: v for k, v in final.items()}},
            "history": runner.history}


def make_evaluator(ctx: StageContext) -> tuple[Evaluator, dict[str, Any]]:
    """The evaluator for the run's env (games get win rates vs opponents) and the self-play adapter settings."""
    from rlft.core.envs import is_pettingzoo, resolve_env

    plugin = resolve_env(ctx.cfg.env.id)
    probe = plugin.make(**ctx.cfg.env.kwargs)
    multi = is_pettingzoo(probe)
    if hasattr(probe, "close"):
        probe.close()
    if multi:
        from rlft.policy.games.arena import game_evaluator
        from rlft.policy.games.selfplay import self_play_kwargs

        return game_evaluator(ctx), self_play_kwargs(ctx)
    return gym_evaluator(ctx.cfg.env.id, ctx.cfg.env.kwargs, ctx.cfg.finetune.eval_episodes,
                         seed=10_000 + ctx.seed), {}
