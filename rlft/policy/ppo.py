"""PPO with a KL penalty toward a frozen reference policy -- the one point where rlft changes SB3's algorithm.

:class:`KLPenaltyMixin` replaces ``train()`` of SB3's ``PPO`` and sb3-contrib's ``MaskablePPO`` with the same
clipped-surrogate update plus ``kl_coef * KL(pi_theta || pi_ref)``, where ``pi_ref`` is the policy fine-tuning
started from (the behaviour-cloned policy). Everything else -- rollouts, GAE, buffers, vectorised envs -- is SB3's.
The penalty keeps the first RL updates close to the demonstrations; the coefficient decays on a schedule
(:func:`kl_schedule`) so RL can later move away. With ``kl_coef == 0`` the update is SB3's, at SB3's speed.

``precision="bf16"`` runs the network's trunk (features extractor and MLP) in bfloat16 autocast, in the update and
in the rollouts' forward passes alike, with fp32 weights, heads, losses and optimizer state (:func:`update_dtype`): on
CPUs with AMX (and on GPUs) the update is about twice as fast. The rollouts run the update's arithmetic
(:class:`RolloutTrunk`), so the first epoch's probability ratios start at 1 as they do in fp32; evaluation and
``predict()`` stay in fp32.

Example::

    model = RlftPPO("MlpPolicy", env, kl_coef=0.1, kl_decay="linear")
    model.set_reference(bc_policy)
    model.learn(20_000)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import explained_variance

from rlft.policy.precision import RolloutTrunk, evaluate_with_distribution, reference_distribution, update_dtype


def kl_schedule(kind: str, coef: float, final: float = 0.0, half_life: float = 0.25) -> Callable[[float], float]:
    """KL coefficient as a function of training progress ``p`` in [0, 1] (0 = start).

    ``constant``: ``coef``; ``linear``: from ``coef`` to ``final`` at the end; ``exponential``: halves every
    ``half_life`` of training.
    """
    if kind == "constant":
        return lambda p: coef
    if kind == "linear":
        return lambda p: coef + (final - coef) * p
    if kind == "exponential":
        return lambda p: coef * math.pow(0.5, p / half_life)
    raise ValueError(f"unknown KL decay schedule {kind!r}")


def categorical_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Exact KL(p || q) between categorical distributions given by (possibly masked) logits, per row.

    Masked actions carry logit -1e8 in both, so they have zero probability under p and contribute nothing.
    """
    return _log_prob_kl(torch.log_softmax(logits_p, dim=-1), torch.log_softmax(logits_q, dim=-1))


def _log_prob_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row from normalised log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def kl_to_reference(dist: Distribution, ref: Distribution | torch.distributions.Distribution) -> torch.Tensor:
    """KL(dist || ref) per sample, for SB3 categorical (masked or not) and diagonal-Gaussian distributions."""
    p = dist.distribution
    q = ref.distribution if isinstance(ref, Distribution) else ref
    if isinstance(p, torch.distributions.Categorical):  # torch keeps Categorical logits normalised
        return _log_prob_kl(p.logits, q.logits)  # type: ignore[arg-type, union-attr]
    # SB3's Gaussian is (batch, action dims) of independent Normals: their KLs add up
    return torch.distributions.kl_divergence(p, q).sum(-1)  # type: ignore[arg-type]


def _flatten_in_place(buffer: Any) -> None:
    """Have SB3 flatten the rollout buffer in place (``get()`` does it on first use) without consuming the global
    numpy RNG, so that the minibatch permutations drawn afterwards are the ones SB3 would draw."""
    if not buffer.generator_ready:
        rng_state = np.random.get_state()
        next(buffer.get())  # draws one permutation before flattening: undone below
        np.random.set_state(rng_state)


class _ReferenceCache:
    """The reference policy's distribution over a whole rollout, computed once per update (the reference is frozen
    and the rollout fixed), then sliced per minibatch -- instead of one reference forward pass per minibatch."""

    def __init__(self, ref: ActorCriticPolicy, buffer: Any, dtype: torch.dtype | None = None) -> None:
        n = buffer.buffer_size * buffer.n_envs
        _flatten_in_place(buffer)
        # private SB3 API: the only way to get the samples of given indices (here: in buffer order)
        everything = buffer._get_samples(np.arange(n))
        dist = reference_distribution(ref, everything.observations, getattr(everything, "action_masks", None), dtype)
        self.dist: Any = dist.distribution

    def kl(self, dist: Distribution, idx: np.ndarray) -> torch.Tensor:
        """KL(dist || reference) per sample of the minibatch ``idx`` (as :func:`kl_to_reference`)."""
        d, index = self.dist, torch.as_tensor(idx)
        if isinstance(d, torch.distributions.Categorical):  # sliced log-probabilities, no new distribution
            return _log_prob_kl(dist.distribution.logits, d.logits[index])  # type: ignore[arg-type, index, union-attr]
        return kl_to_reference(dist, torch.distributions.Normal(d.mean[index], d.stddev[index]))


def _minibatches(buffer: Any, batch_size: int) -> Any:
    """SB3's minibatches as ``RolloutBuffer.get(batch_size)`` makes them -- one ``np.random.permutation`` per call,
    drawn on the first ``next()``, so the global RNG is consumed identically -- but yielding (indices, samples), so
    per-rollout caches can be sliced."""
    assert buffer.full, ""
    n = buffer.buffer_size * buffer.n_envs
    indices = np.random.permutation(n)
    _flatten_in_place(buffer)
    for start in range(0, n, batch_size):
        idx = indices[start:start + batch_size]
        yield idx, buffer._get_samples(idx)  # private SB3 API: get() does not expose the indices it slices


if TYPE_CHECKING:
    _Algorithm = PPO  # what the mixin is mixed into, for the type checker
else:
    _Algorithm = object


class KLPenaltyMixin(_Algorithm):
    """Adds ``kl_coef * KL(pi || pi_ref)`` to PPO's loss. Mix in before ``PPO`` or ``MaskablePPO``."""

    def __init__(self, *args: Any, kl_coef: float = 0.0, kl_decay: str = "constant", kl_coef_final: float = 0.0,
                 kl_half_life: float = 0.25, precision: str = "fp32", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.precision = precision
        self.update_dtype = update_dtype(precision, self.device)  # None: the update is SB3's, in fp32
        self.kl_coef = kl_coef
        self.kl_coef_fn = kl_schedule(kl_decay, kl_coef, kl_coef_final, kl_half_life)
        self.ref_policy: ActorCriticPolicy | None = None
        self._rollout_trunk: RolloutTrunk | None = None  # built on the first bf16 rollout

    def set_reference(self, policy: ActorCriticPolicy) -> None:
        """Freeze a copy of ``policy`` as the KL reference."""
        ref = copy.deepcopy(policy)
        ref.set_training_mode(False)
        for p in ref.parameters():
            p.requires_grad_(False)
        self.ref_policy = ref

    def collect_rollouts(self, *args: Any, **kwargs: Any) -> bool:
        """SB3's ``collect_rollouts()``, with the policy's trunk in the update's precision (:class:`RolloutTrunk`)."""
        if self.update_dtype is None:
            return bool(super().collect_rollouts(*args, **kwargs))
        if self._rollout_trunk is None or self._rollout_trunk.policy is not self.policy:
            self._rollout_trunk = RolloutTrunk(self.policy, self.update_dtype)
        with self._rollout_trunk.patch():
            return bool(super().collect_rollouts(*args, **kwargs))

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_rollout_trunk"]  # SB3 save(): a cache, rebuilt on use

    def current_kl_coef(self) -> float:
        progress = 1.0 - float(self._current_progress_remaining)
        return max(0.0, self.kl_coef_fn(progress)) if self.ref_policy is not None else 0.0

    def train(self) -> None:
        """One PPO update over the rollout buffer, with the KL-to-reference penalty.

        Line for line SB3's ``PPO.train()`` / sb3-contrib's ``MaskablePPO.train()`` (same minibatches, same order of
        operations, same early stop, same logs) plus ``loss += kl_coef * KL(pi || pi_ref)``; with ``kl_coef == 0``
        it leaves exactly the parameters SB3 leaves (tests/test_ppo_parity.py).
        """
        masked = isinstance(self, MaskablePPO)
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # private SB3 API, but the one SB3's own train() uses to apply the learning-rate schedule
        self._update_learning_rate(self.policy.optimizer)
        # _current_progress_remaining / _n_updates: SB3's own training state, which has no public accessor
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]
        kl_coef = self.current_kl_coef()  # 0 when there is no reference
        ref_cache = (_ReferenceCache(self.ref_policy, self.rollout_buffer, self.update_dtype)  # type: ignore[arg-type]
                     if kl_coef > 0 else None)

        entropy_losses: list[float] = []
        pg_losses: list[float] = []
        value_losses: list[float] = []
        clip_fractions: list[float] = []
        kl_refs: list[float] = []

        continue_training = True
        for epoch in range(self.n_epochs):
            approx_kl_divs: list[np.ndarray] = []  # per epoch, as SB3: train/approx_kl is the last epoch's mean
            # Without the penalty: SB3's own minibatches (same permutation, same order)
            batches = (_minibatches(self.rollout_buffer, self.batch_size) if ref_cache is not None
                       else ((None, b) for b in self.rollout_buffer.get(self.batch_size)))
            for idx, rollout_data in batches:
                actions = rollout_data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    # Convert discrete action from float to long
                    actions = rollout_data.actions.long().flatten()

                masks = rollout_data.action_masks if masked else None  # type: ignore[union-attr]
                if ref_cache is None and self.update_dtype is None:
                    kwargs = {"action_masks": masks} if masked else {}
                    values, log_prob, entropy = self.policy.evaluate_actions(
                        rollout_data.observations, actions, **kwargs)
                    dist = None
                else:  # one forward pass that also gives the distribution for the KL term (or runs in bf16)
                    values, log_prob, entropy, dist = evaluate_with_distribution(
                        self.policy, rollout_data.observations, actions, masks, self.update_dtype)
                values = values.flatten()
                # Normalize advantage (SB3's PPO skips it for minibatches of size 1, MaskablePPO does not)
                advantages = rollout_data.advantages
                if self.normalize_advantage and (masked or len(advantages) > 1):
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                # ratio between old and new policy, should be one at the first iteration
                ratio = torch.exp(log_prob - rollout_data.old_log_prob)

                # clipped surrogate loss
                policy_loss_1 = advantages * ratio
                policy_loss_2 = advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss = -torch.min(policy_loss_1, policy_loss_2).mean()

                pg_losses.append(policy_loss.item())
                clip_fractions.append(torch.mean((torch.abs(ratio - 1) > clip_range).float()).item())

                if self.clip_range_vf is None:
                    values_pred = values
                else:
                    # Clip the difference between old and new value
                    values_pred = rollout_data.old_values + torch.clamp(
                        values - rollout_data.old_values, -clip_range_vf, clip_range_vf
                    )
                # Value loss using the TD(gae_lambda) target
                value_loss = F.mse_loss(rollout_data.returns, values_pred)
                value_losses.append(value_loss.item())

                # Entropy loss favor exploration
                if entropy is None:
                    # Approximate entropy when no analytical form
                    entropy_loss = -torch.mean(-log_prob)
                else:
                    entropy_loss = -torch.mean(entropy)
                entropy_losses.append(entropy_loss.item())

                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss

                if ref_cache is not None:  # rlft's one change to SB3's update
                    kl_ref = ref_cache.kl(dist, idx)  # type: ignore[arg-type]
                    loss = loss + kl_coef * kl_ref.mean()
                    kl_refs.append(kl_ref.mean().item())

                # Approximate reverse KL to the rollout policy, for early stopping (numpy, as SB3 compares it)
                with torch.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = torch.mean((torch.exp(log_ratio) - 1) - log_ratio).cpu().numpy()
                    approx_kl_divs.append(approx_kl_div)

                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div:.2f}")
                    break

                # Optimization step
                self.policy.optimizer.zero_grad()
                loss.backward()
                # Clip grad norm
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()

            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())

        # Logs: SB3's, in SB3's order, then rlft's
        record = self.logger.record
        record("train/entropy_loss", np.mean(entropy_losses))
        record("train/policy_gradient_loss", np.mean(pg_losses))
        record("train/value_loss", np.mean(value_losses))
        record("train/approx_kl", np.mean(approx_kl_divs))
        record("train/clip_fraction", np.mean(clip_fractions))
        record("train/loss", loss.item())
        record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):  # Gaussian policies (never a maskable one)
            record("train/std", torch.exp(self.policy.log_std).mean().item())
        record("train/n_updates", self._n_updates, exclude="tensorboard")
        record("train/clip_range", clip_range)
        if self.clip_range_vf is not None:
            record("train/clip_range_vf", clip_range_vf)
        record("train/kl_coef", kl_coef)
        if kl_refs:
            record("train/kl_ref", np.mean(kl_refs))


class RlftPPO(KLPenaltyMixin, PPO):
    """SB3 PPO with the KL-to-reference penalty."""


class RlftMaskablePPO(KLPenaltyMixin, MaskablePPO):  # type: ignore[misc]
    """sb3-contrib MaskablePPO (action masks) with the KL-to-reference penalty."""
