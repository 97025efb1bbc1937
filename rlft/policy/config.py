"""Config sections of the policy stages (``record``, ``imitate``, ``finetune``, ``eval``) and of self-play.

A leaf module: plain dataclasses with a docstring under every field, importing only the core and the network specs.

Example::

    stages: [record, imitate, finetune, eval]
    finetune: {start_from: imitate, total_timesteps: 20000, kl_coef: 0.1, self_play: {opponents: [random]}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from rlft.core.config import param
from rlft.core.tuning import TuningConfig
from rlft.policies.networks import PolicySpec


@dataclass
class RecordConfig:
    """Settings of the ``record`` stage."""

    agent: str = "expert"
    """Who plays: a built-in agent of the env (`expert`, `random`, ...), a run/checkpoint/.zip, or `module:Class`."""
    episodes: int = param(50, ge=1)
    """Number of episodes (games) to record."""
    out: str = ""
    """Dataset folder. Empty: `DIR/data/record` inside the run folder."""
    deterministic: bool = True
    """Let the agent act greedily (False: sample, for more varied demonstrations)."""
    trust_pickle: bool = False
    """Allow a full SB3 `.zip` load for the agent (unpickles, so it can execute code from the file)."""


@dataclass
class ImitateConfig:
    """Settings of the ``imitate`` stage."""

    renamed: ClassVar[dict[str, str]] = {"init": "start_from"}

    dataset: str = ""
    """Minari dataset folder (or local dataset id). Empty: the dataset the `record` stage wrote."""
    replay: list[str] = field(default_factory=list)
    """More datasets to learn from together with `dataset`: names of earlier `record` stages of this run, or dataset
    folders. Expert iteration uses it as a replay window (the last rounds' search games) and to keep the first
    demonstrations in the mix. They must have the same spaces (and, with `targets: search`, search targets)."""
    start_from: str = ""
    """Start from this run / checkpoint / SB3 .zip, or the agent of an earlier stage (by name), instead of a freshly
    initialised network. Empty: a fresh network."""
    policy: PolicySpec = field(default_factory=PolicySpec)
    """The network to clone into (ignored when `start_from` is set)."""
    epochs: int = param(20, ge=0)
    """Behaviour-cloning passes over the training split."""
    batch_size: int = param(256, ge=1)
    """Minibatch size."""
    lr: float = param(1e-3, gt=0)
    """Adam learning rate for behaviour cloning."""
    holdout_fraction: float = param(0.1, ge=0, lt=1)
    """Fraction of episodes held out to measure action agreement with the expert."""
    targets: Literal["auto", "actions", "search"] = "auto"
    """What the policy imitates: `actions` (the recorded moves, log-likelihood), `search` (a search agent's visit
    distribution per move, cross-entropy; the dataset must carry it), `auto` (search targets when present)."""
    augment: bool = False
    """Also learn from the game's symmetric positions (Connect Four: the mirror image): every epoch each training
    sample is replaced, with equal odds, by itself or one of its images (the move, mask and targets transformed
    with it). Needs an env whose game state offers ``symmetries()`` (rlft.envs.game_state); the held-out episodes are
    scored as recorded."""
    critic_warmup_epochs: int = param(20, ge=0)
    """Passes fitting the value head to the recorded returns (0 disables critic warm-up)."""
    critic_lr: float = param(1e-3, gt=0)
    """Adam learning rate for critic warm-up."""
    gamma: float = param(0.99, gt=0, le=1)
    """Discount of the returns the critic is fitted to (use the fine-tuning gamma)."""
    value_target: Literal["returns", "search", "mix"] = "returns"
    """What the critic is fitted to: `returns` (the recorded discounted returns), `search` (a search agent's root
    value per move, recorded as `search_value`), `mix` (the mean of the two). Steps without a search value (e.g.
    replayed alpha-beta games) keep their returns."""
    tuning: TuningConfig = field(default_factory=TuningConfig)
    """Which parameters train: full / freeze / lora."""
    checkpoint_every: int = param(5, ge=1)
    """Write a resumable checkpoint every N epochs."""
    trust_pickle: bool = False
    """Allow a full SB3 .zip load for `start_from` (unpickles: can execute code from the file)."""


@dataclass
class SelfPlayConfig:
    """Opponents of the learner during fine-tuning on a two-player game (``finetune.self_play``)."""

    opponents: list[str] = field(default_factory=lambda: ["random"])
    """Fixed opponents (agent specs: `random`, `greedy`, `alphabeta:2`, a run folder, `module:Class`)."""
    pool_size: int = param(5, ge=0)
    """Frozen snapshots of the learner kept in the pool (0: no self-play, fixed opponents only)."""
    snapshot_every: int = param(20_000, ge=1)
    """Env steps between snapshots (the starting policy is the first snapshot)."""
    self_play_fraction: float = param(0.5, ge=0, le=1)
    """Probability that an episode's opponent is a snapshot rather than a fixed opponent (when both exist)."""
    pfsp_power: float = param(1.0, ge=0)
    """Prioritised fictitious self-play: weight ``(1 - score) ** power``; 0 samples uniformly."""
    pfsp_floor: float = param(0.05, ge=0)
    """Added to every weight, so an opponent the learner always beats is still played now and then."""
    snapshot_deterministic: bool = False
    """Snapshots play greedily (False: they sample from their policy, for more varied games)."""
    eval_opponents: list[str] = field(default_factory=lambda: ["random"])
    """Opponents of the periodic evaluation; the first one's win rate is the headline (and `stop_at`'s metric)."""
    elo_games: int = param(20, ge=0)
    """Games per pair of evaluation opponents to rate them once (for the learner's Elo curve; 0: no Elo)."""
    game_core: bool = True
    """Play the training games on the env plugin's game state (its fast rules core, checked move for move against
    the PettingZoo env; rlft.policy.games.core) when it offers one; False: always on the PettingZoo env (needed when
    env kwargs change the rules, which the core does not know)."""

    def validate(self) -> None:
        if not self.opponents and self.pool_size == 0:
            raise ValueError("self_play needs fixed opponents or pool_size > 0: the learner has nobody to play.")


@dataclass
class FinetuneConfig:
    """Settings of the ``finetune`` stage (PPO hyper-parameters follow SB3's names)."""

    renamed: ClassVar[dict[str, str]] = {"init": "start_from"}

    start_from: str = "previous"
    """Start from: `previous` (the newest agent an earlier stage produced, e.g. the cloned policy), the agent of an
    earlier stage by name (`imitate`, `finetune`), `scratch`, or a run / checkpoint / SB3 .zip path."""
    policy: PolicySpec = field(default_factory=PolicySpec)
    """Network used when `start_from` is `scratch`."""
    total_timesteps: int = param(20_000, ge=1)
    """Env steps of fine-tuning (summed over the vectorised envs)."""
    n_envs: int = param(8, ge=1)
    """Parallel env copies."""
    subprocess: bool = False
    """Run the env copies in subprocesses (SubprocVecEnv) instead of in-process (the same as `vec_env: subprocess`)."""
    vec_env: Literal["inprocess", "subprocess", "ray"] = "inprocess"
    """Where the env copies step: `inprocess` (DummyVecEnv), `subprocess` (SubprocVecEnv) or `ray` (Ray actors, on
    this machine or a Ray cluster; needs rlft[ray])."""
    ray_actors: int = param(0, ge=0)
    """`vec_env: ray`: actors the env copies are split over (0: one actor per copy)."""
    ray_address: str | None = None
    """`vec_env: ray`: the Ray cluster to join (None: Ray's RAY_ADDRESS variable, else a local Ray)."""
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
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    """Precision of the network trunk in PPO's update and rollouts: `fp32` (SB3's PPO, bit for bit), `bf16`
    (bfloat16 autocast; weights, heads, losses and Adam stay fp32), or `auto` (bf16 where it is faster: a CPU with AMX
    or a GPU with bf16, else fp32). Evaluation always runs fp32. With `auto`, results depend on the machine as well
    as the seed."""
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
    """Allow a full SB3 .zip load for `start_from` (unpickles: can execute code from the file)."""
    self_play: SelfPlayConfig = field(default_factory=SelfPlayConfig)
    """Two-player games: fixed opponents, snapshot pool and evaluation opponents (see rlft.policy.games)."""

    def validate(self) -> None:
        if self.subprocess and self.vec_env == "ray":
            raise ValueError("`subprocess: true` and `vec_env: ray` contradict each other: keep one (vec_env).")


@dataclass
class EvalConfig:
    """Settings of the ``eval`` stage."""

    episodes: int = param(20, ge=1)
    """Episodes (games) per agent (and per opponent, for games)."""
    seed: int = param(100_000, ge=0)
    """First episode seed; episode i uses seed + i (distinct from training seeds)."""
    deterministic: bool = True
    """Greedy actions (False: sample from the policy)."""
    opponents: list[str] = field(default_factory=lambda: ["random"])
    """Two-player games: opponent specs to play against (both seats)."""
    ray_actors: int = param(0, ge=0)
    """Two-player games: play each agent's games in this many Ray actors (needs rlft[ray]), the games of each match
    split into contiguous slices with the same seeds, so the same results as in this process (0: in this process)."""
    ray_address: str | None = None
    """`ray_actors`: the Ray cluster to join (None: Ray's RAY_ADDRESS variable, else a local Ray)."""
