"""The ``imitate`` stage: behaviour cloning from recorded games, then critic warm-up.

1. **Behaviour cloning** maximises the log-likelihood of the recorded actions under the policy (masked logits when
   the games carry action masks, so illegal actions get no probability and no gradient).
2. **Critic warm-up** fits the value head -- and only the value head -- to the discounted returns of the recorded
   episodes (bootstrapped with the critic's own estimate where an episode was cut by a time limit). PPO then starts
   with advantages that mean something, so its first updates do not wreck the cloned policy.

Checkpoints are written every ``checkpoint_every`` epochs; a resumed run continues from the newest one and, because
each epoch's shuffling is seeded by (seed, epoch), ends with exactly the weights of an uninterrupted run.

Example::

    rlft imitate --env cartpole --dataset data/cartpole-expert --run-dir runs/bc
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from tqdm.auto import tqdm

from rlft.core.checkpoint import load_trainer_state, save_trainer_state
from rlft.core.errors import ConfigError, DatasetError, PluginError
from rlft.core.metrics import MetricLogger, log
from rlft.core.rundir import AtomicDir
from rlft.core.tuning import apply_tuning, merge_lora
from rlft.pipeline.artifacts import Outputs
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import Headline, StageResult
from rlft.policies.checkpoint import load_policy, save_policy
from rlft.policies.networks import (
    PolicySpec,
    action_logits,
    build_policy,
    critic_parameters,
    head_modules,
    layer_groups,
    masked_logits,
)
from rlft.policy.agents import PolicyAgent, check_agent_fits, start_policy
from rlft.policy.config import ImitateConfig
from rlft.policy.datasets import Transitions, check_spaces, concat_transitions, load_transitions
from rlft.policy.hooks import env_hooks
from rlft.policy.search import game_state_class

# --------------------------------------------------------------------------------------------------------------
# The algorithm
# --------------------------------------------------------------------------------------------------------------


def _tensors(data: Transitions, idx: np.ndarray, device: torch.device, symmetries: list[Any] | None = None,
             draw: np.ndarray | None = None) -> tuple[Any, Any, Any]:
    """(observations, targets, masks) of a minibatch; the targets are the actions, or the soft targets when the
    data carries them (see :func:`use_search_targets`). With ``symmetries``, sample ``i`` is replaced by its image
    under ``symmetries[draw[i] - 1]`` (``draw[i] == 0``: kept as recorded)."""
    # indexing with an index array copies, so the images are written into the minibatch, never into `data`
    obs = data.observations[idx]
    targets = (data.actions if data.action_targets is None else data.action_targets)[idx]
    masks = None if data.action_masks is None else data.action_masks[idx]
    for k, sym in enumerate(symmetries or [], start=1):
        chosen = np.flatnonzero(draw == k)
        if len(chosen):
            obs[chosen] = sym.observations(obs[chosen])
            if data.action_targets is None:
                targets[chosen] = sym.actions[targets[chosen]]
            else:
                targets[chosen[:, None], sym.actions] = data.action_targets[idx[chosen]]
            if masks is not None:
                masks[chosen[:, None], sym.actions] = data.action_masks[idx[chosen]]  # type: ignore[index]
    return (torch.as_tensor(obs, device=device), torch.as_tensor(targets, device=device),  # type: ignore[return-value]
            None if masks is None else torch.as_tensor(masks, device=device))


def game_symmetries(env_spec: str, name: str) -> list[Any]:
    """The symmetries the env's game state offers (``imitate.augment``); a ConfigError when it offers none."""
    try:
        state_cls = game_state_class(env_spec)
    except PluginError:
        state_cls = None
    found = getattr(state_cls, "symmetries", None)
    if found is None:
        raise ConfigError(f"{name}.augment is on, but the env '{env_spec}' offers no symmetries (its game state, "
                          "extras['game_state'] of the plugin, has no symmetries() method; see "
                          "rlft.envs.game_state). Built-in: connect_four. Set augment: false.")
    return list(found())


def use_search_targets(data: Transitions, targets: str, dataset: str) -> Transitions:
    """The data with soft targets kept (``search``, or ``auto`` when present) or dropped (``actions``)."""
    if targets == "search" and data.action_targets is None:
        raise DatasetError(f"imitate.targets is 'search', but the dataset '{dataset}' holds no search_policy (it was "
                           "not recorded by a search agent). Record it with `agent: mcts:RUN` or set targets: actions.")
    if targets == "actions":
        data.action_targets = None
    return data


def check_value_target(data: Transitions, value_target: str, dataset: str) -> None:
    """``value_target: search / mix`` needs search values in the data (a DatasetError naming the fix if none)."""
    if value_target != "returns" and data.value_targets is None:
        raise DatasetError(f"imitate.value_target is '{value_target}', but the dataset '{dataset}' (and what it "
                           "replays) holds no search_value (it was not recorded by an mcts: agent). Record it with "
                           "`agent: mcts:RUN` or set value_target: returns.")


def _evaluate(policy: ActorCriticPolicy, obs: torch.Tensor, actions: torch.Tensor,
              masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probability of ``actions``, greedy action) under the (masked) policy."""
    logits = masked_logits(action_logits(policy, obs), masks)
    dist = torch.distributions.Categorical(logits=logits)
    return dist.log_prob(actions.long().flatten()), logits.argmax(-1)


def bc_loss_and_accuracy(policy: ActorCriticPolicy, obs: Any, actions: Any, masks: Any) -> tuple[torch.Tensor, float]:
    """Negative log-likelihood of the recorded actions, and greedy action agreement.

    For Discrete actions the logits are masked (illegal actions cannot be imitated); with soft targets ((B, n)
    float distributions instead of actions) the loss is the cross-entropy to them and "accuracy" is agreement with
    their most likely action; for continuous actions the
    policy's Gaussian log-probability is used and "accuracy" is reported as NaN.
    """

    if isinstance(policy.action_space, gym.spaces.Discrete) and actions.dim() == 2 and actions.is_floating_point():
        # soft targets (a search's visit distribution): cross-entropy; masked actions have target 0 and no gradient
        logits = masked_logits(action_logits(policy, obs), masks)
        log_p = torch.log_softmax(logits, dim=-1)
        loss = -(actions * torch.where(actions > 0, log_p, torch.zeros_like(log_p))).sum(-1).mean()
        return loss, (logits.argmax(-1) == actions.argmax(-1)).float().mean().item()
    if isinstance(policy.action_space, gym.spaces.Discrete):
        log_prob, greedy = _evaluate(policy, obs, actions, masks)
        accuracy = (greedy == actions.long().flatten()).float().mean().item()
        return -log_prob.mean(), accuracy
    _, log_prob, _ = policy.evaluate_actions(obs, actions.float())
    return -log_prob.mean(), float("nan")


def discounted_targets(data: Transitions, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo returns per step, and gamma**(steps to the episode end) for bootstrapping truncated episodes."""
    returns = np.zeros(len(data), dtype=np.float32)
    to_end = np.zeros(len(data), dtype=np.float32)
    running, discount = 0.0, 1.0
    for t in range(len(data) - 1, -1, -1):
        if t == len(data) - 1 or data.episode[t] != data.episode[t + 1]:
            running, discount = 0.0, 1.0
        running = data.rewards[t] + gamma * running
        discount *= gamma
        returns[t] = running
        to_end[t] = discount
    return returns, to_end


def critic_targets(returns: np.ndarray, search_values: np.ndarray | None, value_target: str) -> np.ndarray:
    """What the critic is fitted to per step: the returns, the search's root value (``search``) or their mean
    (``mix``); steps without a search value (NaN) keep their returns."""
    if value_target == "returns" or search_values is None:
        return returns
    known = ~np.isnan(search_values)
    out = returns.copy()
    out[known] = search_values[known] if value_target == "search" else (returns[known] + search_values[known]) / 2
    return out


@dataclass
class _Split:
    train: np.ndarray
    holdout: np.ndarray


def split_by_episode(data: Transitions, holdout_fraction: float, seed: int) -> _Split:
    """Hold out whole episodes (states within an episode are correlated)."""
    episodes = np.unique(data.episode)
    rng = np.random.default_rng(seed)
    rng.shuffle(episodes)
    n_hold = int(round(len(episodes) * holdout_fraction))
    if holdout_fraction > 0 and len(episodes) > 1:
        n_hold = max(1, n_hold)
    hold = set(episodes[:n_hold].tolist())
    is_hold = np.array([e in hold for e in data.episode])
    return _Split(train=np.flatnonzero(~is_hold), holdout=np.flatnonzero(is_hold))


def behaviour_clone(
    policy: ActorCriticPolicy,
    data: Transitions,
    cfg: ImitateConfig,
    *,
    seed: int,
    metrics: MetricLogger | None = None,
    checkpoint: Any = None,
    start_epoch: int = 0,
    restore: Any = None,
    progress: bool = False,
    symmetries: list[Any] | None = None,
) -> dict[str, float]:
    """Behaviour cloning then critic warm-up, epochs ``start_epoch .. epochs + critic_warmup_epochs``.

    ``symmetries`` (``imitate.augment``): each epoch, each training sample is seen as recorded or as one of its
    images, with equal odds (seeded by (seed, epoch), so a resumed run draws the same).
    ``checkpoint(epoch, optimizer)`` is called every ``cfg.checkpoint_every`` epochs and at the end of each phase;
    ``restore(optimizer)`` (when resuming) loads the saved optimizer and RNG states into the current phase.
    """

    device = policy.device
    split = split_by_episode(data, cfg.holdout_fraction, seed)
    hold_obs, hold_act, hold_mask = _tensors(data, split.holdout, device) if len(split.holdout) else (None,) * 3
    mc_returns, to_end = discounted_targets(data, cfg.gamma)
    truncated_eps = {int(e) for e in data.episode[data.truncated]}
    boot = np.array([e in truncated_eps for e in data.episode], dtype=np.float32) * to_end
    summary: dict[str, float] = {}
    total = cfg.epochs + cfg.critic_warmup_epochs
    bar = tqdm(total=total, initial=start_epoch, desc="imitate", disable=not progress, unit="epoch")

    bc_params = [p for p in policy.parameters() if p.requires_grad]
    critic_params = [p for p in critic_parameters(policy) if p.requires_grad]
    optimizer: torch.optim.Optimizer | None = None
    for epoch in range(start_epoch, total):
        bc_phase = epoch < cfg.epochs
        if optimizer is None or epoch == cfg.epochs:
            optimizer = torch.optim.Adam(bc_params if bc_phase else critic_params,
                                         lr=cfg.lr if bc_phase else cfg.critic_lr)
            if restore is not None:
                restore(optimizer)
                restore = None
        policy.set_training_mode(True)
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = split.train[torch.randperm(len(split.train), generator=generator).numpy()]
        draws = (np.random.default_rng([seed, epoch]).integers(0, len(symmetries) + 1, size=len(order))
                 if symmetries else None)
        if not bc_phase:
            with torch.no_grad():
                last_values = policy.predict_values(
                    torch.as_tensor(data.last_observations, device=device)).flatten().cpu().numpy()
            targets = critic_targets(mc_returns + boot * last_values[data.episode], data.value_targets,
                                     cfg.value_target)
        losses, accs = [], []
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            draw = None if draws is None else draws[start:start + cfg.batch_size]
            obs, actions, masks = _tensors(data, idx, device, symmetries, draw)
            if bc_phase:
                loss, acc = bc_loss_and_accuracy(policy, obs, actions, masks)
                accs.append(acc)
            else:
                values = policy.predict_values(obs).flatten()
                loss = torch.nn.functional.mse_loss(values, torch.as_tensor(targets[idx], device=device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        policy.set_training_mode(False)
        if bc_phase:
            summary["imitation/loss"] = float(np.mean(losses))
            summary["imitation/accuracy"] = float(np.mean(accs))
            if hold_obs is not None:
                with torch.no_grad():
                    hl, ha = bc_loss_and_accuracy(policy, hold_obs, hold_act, hold_mask)
                summary["imitation/holdout_loss"] = hl.item()
                summary["imitation/holdout_accuracy"] = ha
            scalars = {k: v for k, v in summary.items() if not k.startswith("imitation/critic")}
        else:
            summary["imitation/critic_loss"] = float(np.mean(losses))
            scalars = {"imitation/critic_loss": summary["imitation/critic_loss"]}
        if metrics is not None:
            metrics.log(scalars, step=epoch + 1)
        bar.update(1)
        bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in scalars.items()})
        phase_end = epoch + 1 == cfg.epochs or epoch + 1 == total
        if checkpoint is not None and ((epoch + 1) % cfg.checkpoint_every == 0 or phase_end):
            checkpoint(epoch + 1, optimizer)
    bar.close()
    return summary


# --------------------------------------------------------------------------------------------------------------
# Pipeline entry point
# --------------------------------------------------------------------------------------------------------------


def _initial_policy(ctx: StageContext[ImitateConfig], obs_space: Any, act_space: Any, masked: bool
                    ) -> tuple[ActorCriticPolicy, PolicySpec]:
    cfg = ctx.config
    start = start_policy(cfg.start_from, ctx.artifacts, by=f"{ctx.name}.start_from", device=ctx.device,
                         trust_pickle=cfg.trust_pickle, env=ctx.env.id)
    if start is not None:
        policy, meta = start
        check_agent_fits(PolicyAgent(policy, meta), obs_space, act_space, ctx.env.id, f"{ctx.name}.start_from")
        return policy, PolicySpec(**meta["policy"]) if meta.get("policy") else cfg.policy
    return build_policy(cfg.policy, obs_space, act_space, masked=masked).to(ctx.device), cfg.policy


def run(ctx: StageContext[ImitateConfig]) -> StageResult:
    """Behaviour-clone the dataset into a policy; write ``DIR/stages/<stage>``."""
    cfg = ctx.config
    dataset = cfg.dataset or ctx.artifacts.dataset
    if not dataset:
        raise DatasetError(f"The {ctx.name} stage needs a dataset: set {ctx.name}.dataset (or --dataset), or run the "
                           "`record` stage before it.")
    sources = [str(dataset)] + [ctx.artifacts.dataset_of(r, by=f"{ctx.name}.replay") for r in cfg.replay]
    data = concat_transitions([use_search_targets(load_transitions(s), cfg.targets, s) for s in sources], sources)
    check_value_target(data, cfg.value_target, str(dataset))
    if cfg.replay:
        log.info("%s: %d steps from %d datasets (%s)", ctx.name, len(data), len(sources), ", ".join(sources))
    env_spec = ctx.env.id
    obs_space, act_space, env_masked = env_hooks(env_spec, ctx.env.kwargs).learner_spaces()
    check_spaces(data, obs_space, act_space, str(dataset), env_spec)
    masked = data.action_masks is not None or env_masked

    symmetries = game_symmetries(env_spec, ctx.name) if cfg.augment else None
    policy, spec = _initial_policy(ctx, obs_space, act_space, masked)
    counts = apply_tuning(policy, cfg.tuning, layer_groups(policy), head_modules(policy))
    checkpoints = ctx.checkpointer()
    start_epoch, restore = 0, None
    latest = checkpoints.newest_readable(lambda f: (load_policy(f), load_trainer_state(f))) if ctx.resume else None
    if latest is not None:
        saved, _ = load_policy(latest, device=ctx.device)
        policy.load_state_dict(saved.state_dict())
        state = load_trainer_state(latest)
        start_epoch = int(state.counters["epoch"])
        restore = state.restore
        log.info("%s: resuming from checkpoint %s (epoch %d)", ctx.name, latest.name, start_epoch)

    def checkpoint(epoch: int, optimizer: torch.optim.Optimizer) -> None:
        with checkpoints.write(epoch) as tmp:
            save_policy(tmp, policy, spec, masked=masked, env=env_spec, step=epoch, extra={"stage": ctx.name})
            save_trainer_state(tmp, optimizer, {"epoch": epoch})

    with ctx.metrics() as metrics:
        summary = behaviour_clone(policy, data, cfg, seed=ctx.seed, metrics=metrics, checkpoint=checkpoint,
                                  start_epoch=start_epoch, restore=restore, progress=ctx.progress,
                                  symmetries=symmetries)
    export = merge_lora(copy.deepcopy(policy)) if cfg.tuning.mode == "lora" else policy
    extra = {"stage": ctx.name, "dataset": str(dataset), **({"replay": sources[1:]} if cfg.replay else {})}
    with AtomicDir(ctx.output_dir()) as tmp:
        save_policy(tmp, export, spec, masked=masked, env=env_spec, step=cfg.epochs + cfg.critic_warmup_epochs,
                    extra=extra)
    metrics_out = {**{k.split("/")[-1]: v for k, v in summary.items()}, **counts}
    log.info("%s: holdout accuracy %.3f, critic loss %.3f, %d/%d params trained", ctx.name,
             summary.get("imitation/holdout_accuracy", float("nan")),
             summary.get("imitation/critic_loss", float("nan")),
             counts["trainable_params"], counts["total_params"])
    accuracy = summary.get("imitation/holdout_accuracy", summary.get("imitation/accuracy", float("nan")))
    return StageResult(outputs=Outputs(agent=str(ctx.output_dir())), metrics=metrics_out,
                       headline=Headline("holdout_accuracy", accuracy))
